import { useCallback, useEffect, useState } from 'react'
import { api, ApiError, formatDate } from './api'
import { FieldError } from './FieldError'
import { LearningCurves } from './LearningCurves'
import { ParamInput, PluginForm } from './PluginForm'
import { navigate } from './hooks'
import type { Dataset, Param, Plugin, Project, Run } from './types'

export function ProjectPage({ projectId }: { projectId: number }) {
  const [project, setProject] = useState<(Project & { config: Record<string, unknown> }) | null>(null)
  const [schema, setSchema] = useState<Param[]>([])
  const [config, setConfig] = useState<Record<string, unknown>>({})
  const [datasets, setDatasets] = useState<Dataset[]>([])
  const [plugins, setPlugins] = useState<Plugin[]>([])
  const [pluginId, setPluginId] = useState('')
  const [runs, setRuns] = useState<Run[]>([])
  const [compare, setCompare] = useState<number[]>([])
  const [shown, setShown] = useState<number[]>([])
  const [error, setError] = useState<ApiError | null>(null)
  const [notice, setNotice] = useState('')

  const loadRuns = useCallback(() => {
    api<{ results: Run[] }>(`/api/projects/${projectId}/runs/`).then((r) => setRuns(r.results)).catch(() => undefined)
  }, [projectId])
  useEffect(() => {
    api<Project & { config: Record<string, unknown> }>(`/api/projects/${projectId}/`)
      .then((p) => { setProject(p); setConfig(p.config) }).catch((e) => setError(e as ApiError))
    api<{ results: Param[] }>('/api/projects/config-schema/').then((r) => setSchema(r.results)).catch(() => undefined)
    api<{ results: Dataset[] }>('/api/datasets/').then((r) => setDatasets(r.results)).catch(() => undefined)
    api<{ results: Plugin[] }>('/api/plugins/?kind=training').then((r) => {
      setPlugins(r.results)
      if (r.results.length) setPluginId(r.results[0].id)
    }).catch(() => undefined)
    loadRuns()
  }, [projectId, loadRuns])

  const save = async (body: Record<string, unknown>) => {
    setError(null)
    setNotice('')
    try {
      const updated = await api<Project & { config: Record<string, unknown> }>(`/api/projects/${projectId}/`, { method: 'PATCH', body })
      setProject(updated)
      setConfig(updated.config)
      setNotice('Saved.')
    } catch (e) {
      setError(e as ApiError)
    }
  }

  if (!project) return <div className="page">{error ? <div className="error" role="alert">{error.message}</div> : 'Loading…'}</div>
  const plugin = plugins.find((p) => p.id === pluginId)
  const pct = (v?: number) => (v === undefined ? '—' : `${(100 * v).toFixed(1)}%`)
  const datasetSelect = (field: 'train_dataset' | 'valid_dataset', label: string) => (
    <label>{label}<select name={field} value={String(project[field] ?? '')} onChange={(e) => save({ [field]: e.target.value || null })}>
      <option value="">—</option>{datasets.map((d) => <option key={d.id} value={d.id}>{d.name} (#{d.id}, {d.rows} rows)</option>)}
    </select></label>
  )
  return (
    <div className="page">
      <p><a href="#/projects">← Projects</a></p>
      <h2 data-testid="project-name">{project.name}</h2>
      <div className="columns">
        <div className="card">
          <h3>Datasets</h3>
          {datasetSelect('train_dataset', 'Training dataset')}
          <FieldError error={error} field="train_dataset" />
          {datasetSelect('valid_dataset', 'Validation dataset')}
          <FieldError error={error} field="valid_dataset" />
          <h3>Config</h3>
          <form onSubmit={(e) => { e.preventDefault(); save({ config }) }} className="plugin-form" data-testid="config-form">
            {schema.map((p) => (
              <div className="field" key={p.name}>
                <label htmlFor={`param-${p.name}`} className="name">{p.name}</label>
                <ParamInput param={p} value={config[p.name]} datasets={datasets}
                  onChange={(v) => setConfig((prev) => ({ ...prev, [p.name]: v }))} />
                <FieldError error={error} field={p.name} />
              </div>
            ))}
            <button type="submit">Save config</button>
            {notice && <span className="notice">{notice}</span>}
          </form>
        </div>
        <div className="card">
          <h3>Train</h3>
          <label>Training plugin<select name="training-plugin" value={pluginId} onChange={(e) => setPluginId(e.target.value)}>
            {plugins.map((p) => <option key={p.id} value={p.id}>{p.title}</option>)}</select></label>
          {plugin && <PluginForm plugin={plugin}
            submit={(values) => api<Run>(`/api/projects/${projectId}/runs/`, { method: 'POST', body: { plugin: plugin.id, params: values } })}
            onQueued={(run: Run) => navigate(`/runs/${run.id}`)} />}
        </div>
      </div>
      <div className="card">
        <h3>Runs</h3>
        {runs.length === 0 ? <p className="empty">No runs yet.</p> : (
          <table className="grid" data-testid="runs">
            <thead><tr><th></th><th>Run</th><th>State</th><th>Model</th><th>Epochs</th><th>Accuracy · image AUROC</th><th>F1 (macro) · pixel AUROC</th><th>Created</th></tr></thead>
            <tbody>{runs.map((r) => (
              <tr key={r.id}>
                <td><input type="checkbox" checked={compare.includes(r.id)} aria-label={`compare run ${r.id}`}
                  onChange={(e) => setCompare((c) => e.target.checked ? [...c, r.id] : c.filter((x) => x !== r.id))} /></td>
                <td><a href={`#/runs/${r.id}`}>run {r.id}</a></td><td>{r.state}</td>
                <td>{[r.params.model, r.params.train_param ?? r.params.gaussian ?? r.params.sample_ratio]
                  .filter((v) => v !== undefined).map(String).join(' · ')}</td>
                <td>{r.metrics.kind === 'anomaly' ? '—' : String(r.config.max_epoch)}</td>
                {r.metrics.kind === 'anomaly'
                  ? <><td>{pct(r.metrics.image_auroc ?? undefined)}</td><td>{pct(r.metrics.pixel_auroc ?? undefined)}</td></>
                  : <><td>{pct(r.metrics.accuracy)}</td><td>{pct(r.metrics.f1_macro)}</td></>}<td>{formatDate(r.created_at)}</td>
              </tr>))}</tbody>
          </table>
        )}
        <button disabled={compare.length < 2} onClick={() => setShown([...compare])}>Compare selected runs</button>
      </div>
      {shown.length > 1 && <LearningCurves runIds={shown} />}
    </div>
  )
}
