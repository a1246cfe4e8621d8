import { useCallback, useEffect, useState } from 'react'
import { api, ApiError, formatDate } from './api'
import { ConfirmDialog } from './ConfirmDialog'
import { FieldError } from './FieldError'
import { FieldLabel } from './FieldLabel'
import { LearningCurves } from './LearningCurves'
import { NameDialog } from './NameDialog'
import { ParamInput, PluginForm } from './PluginForm'
import { navigate } from './hooks'
import { RunScores, RunSettings } from './runSummary'
import type { Dataset, Param, Plugin, Project, Run } from './types'

type ProjectWithConfig = Project & { config: Record<string, unknown> }
const DATASET_ROLES = { train_dataset: 'training', valid_dataset: 'validation' } as const

// Two values of a config field are the same setting (the form holds numbers, text or booleans).
const same = (a: unknown, b: unknown) => String(a ?? '') === String(b ?? '')

export function ProjectPage({ projectId }: { projectId: number }) {
  const [project, setProject] = useState<ProjectWithConfig | null>(null)
  const [schema, setSchema] = useState<Param[]>([])
  const [config, setConfig] = useState<Record<string, unknown>>({})
  const [datasets, setDatasets] = useState<Dataset[]>([])
  const [plugins, setPlugins] = useState<Plugin[]>([])
  const [pluginId, setPluginId] = useState('')
  const [runs, setRuns] = useState<Run[]>([])
  const [compare, setCompare] = useState<number[]>([])
  const [shown, setShown] = useState<number[]>([])
  const [loadError, setLoadError] = useState<ApiError | null>(null)
  const [error, setError] = useState<ApiError | null>(null)  // of the datasets and config fields
  const [notice, setNotice] = useState('')
  const [listError, setListError] = useState('')
  const [dialog, setDialog] = useState<{ action: 'rename' | 'delete'; run?: Run } | null>(null)

  const loadRuns = useCallback(() => {
    api<{ results: Run[] }>(`/api/projects/${projectId}/runs/`).then((r) => { setRuns(r.results); setListError('') })
      .catch((e) => setListError(`Runs: ${(e as ApiError).message}`))
  }, [projectId])
  useEffect(() => {
    api<ProjectWithConfig>(`/api/projects/${projectId}/`)
      .then((p) => { setProject(p); setConfig(p.config) }).catch((e) => setLoadError(e as ApiError))
    api<{ results: Param[] }>('/api/projects/config-schema/').then((r) => setSchema(r.results))
      .catch((e) => setListError(`Config: ${(e as ApiError).message}`))
    api<{ results: Dataset[] }>('/api/datasets/').then((r) => setDatasets(r.results))
      .catch((e) => setListError(`Datasets: ${(e as ApiError).message}`))
    api<{ results: Plugin[] }>('/api/plugins/?kind=training').then((r) => {
      setPlugins(r.results)
      if (r.results.length) setPluginId(r.results[0].id)
    }).catch((e) => setListError(`Plugins: ${(e as ApiError).message}`))
    loadRuns()
  }, [projectId, loadRuns])

  const save = async (body: Record<string, unknown>) => {
    setError(null)
    setNotice('')
    try {
      const updated = await api<ProjectWithConfig>(`/api/projects/${projectId}/`, { method: 'PATCH', body })
      setProject(updated)
      setConfig(updated.config)
      setNotice('Saved.')
    } catch (e) {
      setError(e as ApiError)
    }
  }

  if (!project) {
    return <div className="page"><p><a href="#/projects">← Projects</a></p>
      {loadError ? <div className="error" role="alert">{loadError.status === 404 ? 'This project does not exist (it may have been deleted).' : loadError.message}</div> : 'Loading…'}</div>
  }
  const plugin = plugins.find((p) => p.id === pluginId)
  const used = plugin?.config_fields ?? schema.map((p) => p.name)
  const fields = schema.filter((p) => used.includes(p.name))
  const unused = schema.filter((p) => !used.includes(p.name))
  const dirty = schema.some((p) => !same(config[p.name], project.config[p.name]))

  // Run with the config as shown: the server saves it first (and refuses the run when it is wrong).
  // Errors of config fields are shown under those fields; the plugin form shows its own.
  const startRun = async (values: Record<string, unknown>) => {
    setError(null)
    setNotice('')
    try {
      return await api<Run>(`/api/projects/${projectId}/runs/`, {
        method: 'POST', body: { plugin: pluginId, params: values, config } })
    } catch (e) {
      const failure = e as ApiError
      const names = new Set([...schema.map((p) => p.name), 'train_dataset', 'valid_dataset'])
      const mine = Object.entries(failure.errors ?? {}).filter(([field]) => names.has(field))
      if (!mine.length) throw e
      setError(new ApiError(failure.status, failure.message, Object.fromEntries(mine)))
      const rest = Object.fromEntries(Object.entries(failure.errors).filter(([field]) => !names.has(field)))
      throw new ApiError(failure.status, 'Not started: check the datasets and the config.', rest)
    }
  }

  const datasetSelect = (field: 'train_dataset' | 'valid_dataset', label: string) => {
    const deleted = project.deleted_datasets?.[field]
    return <>
      <label>{label}<select name={field} value={String(project[field] ?? '')} onChange={(e) => save({ [field]: e.target.value || null })}>
        <option value="">—</option>{datasets.map((d) => <option key={d.id} value={d.id}>{d.name} (#{d.id}, {d.rows} rows)</option>)}
      </select></label>
      {deleted && project[field] === null && <div className="warning" role="status" data-testid={`deleted-${field}`}>
        The {DATASET_ROLES[field]} dataset “{deleted}” was deleted: choose another one.</div>}
      <FieldError error={error} field={field} />
    </>
  }

  const rename = async (name: string) => {
    if (dialog?.run) {
      await api(`/api/runs/${dialog.run.id}/`, { method: 'PATCH', body: { name } })
      loadRuns()
    } else {
      setProject(await api<ProjectWithConfig>(`/api/projects/${projectId}/`, { method: 'PATCH', body: { name } }))
    }
    setDialog(null)
  }
  const remove = async () => {
    if (dialog?.run) {
      await api(`/api/runs/${dialog.run.id}/`, { method: 'DELETE' })
      setCompare((c) => c.filter((id) => id !== dialog.run!.id))
      setShown([])
      loadRuns()
      setDialog(null)
    } else {
      await api(`/api/projects/${projectId}/`, { method: 'DELETE' })
      navigate('/projects')
    }
  }
  const active = runs.filter((r) => ['queued', 'running'].includes(r.state))

  return (
    <div className="page">
      <p><a href="#/projects">← Projects</a></p>
      <div className="page-head">
        <h2 data-testid="project-name">{project.name}</h2>
        <span className="spacer" />
        <button className="secondary" onClick={() => setDialog({ action: 'rename' })}>Rename project</button>
        <button className="danger" onClick={() => setDialog({ action: 'delete' })}>Delete project</button>
      </div>
      {listError && <div className="error" role="alert">{listError}</div>}
      <div className="columns">
        <div className="card">
          <h3>Datasets</h3>
          {datasetSelect('train_dataset', 'Training dataset')}
          {datasetSelect('valid_dataset', 'Validation dataset')}
          <h3>Config</h3>
          <form onSubmit={(e) => { e.preventDefault(); save({ config }) }} className="plugin-form" data-testid="config-form">
            {fields.map((p) => (
              <div className="field" key={p.name}>
                <FieldLabel param={p} htmlFor={`param-${p.name}`} />
                <ParamInput param={p} value={config[p.name]} datasets={datasets}
                  onChange={(v) => { setNotice(''); setConfig((prev) => ({ ...prev, [p.name]: v })) }} />
                {p.help && <div className="hint">{p.help}</div>}
                <FieldError error={error} field={p.name} />
              </div>
            ))}
            {plugin && unused.length > 0 && <p className="hint" data-testid="config-unused">
              {plugin.title} does not use {unused.map((p) => p.label ?? p.name).join(', ')}
              {plugin.params.length > 0 ? ': its own settings are on the right.' : '.'}</p>}
            <button type="submit" className={dirty ? '' : 'secondary'}>Save config</button>
            {dirty && <span className="hint" data-testid="config-dirty"> Unsaved changes: <em>Run</em> saves them first.</span>}
            {notice && <span className="notice">{notice}</span>}
          </form>
        </div>
        <div className="card">
          <h3>Train</h3>
          <label>Training plugin<select name="training-plugin" value={pluginId} onChange={(e) => setPluginId(e.target.value)}>
            {plugins.map((p) => <option key={p.id} value={p.id}>{p.title}</option>)}</select></label>
          {plugin && <PluginForm plugin={plugin} submit={startRun} submitLabel={dirty ? 'Save config and run' : 'Run'}
            onQueued={(run: Run) => navigate(`/runs/${run.id}`)} />}
        </div>
      </div>
      <div className="card">
        <h3>Runs</h3>
        {runs.length === 0 ? <p className="empty">No runs yet.</p> : (
          <table className="grid runs-table" data-testid="runs">
            <thead><tr><th></th><th>Run</th><th>Plugin</th><th>State</th><th>Settings</th><th>Scores</th><th>Created</th><th></th></tr></thead>
            <tbody>{runs.map((r) => (
              <tr key={r.id} data-testid={`run-row-${r.id}`}>
                <td><input type="checkbox" checked={compare.includes(r.id)} aria-label={`compare ${r.name ?? `run ${r.id}`}`}
                  onChange={(e) => setCompare((c) => e.target.checked ? [...c, r.id] : c.filter((x) => x !== r.id))} /></td>
                <td><a href={`#/runs/${r.id}`}>{r.name ?? `run ${r.id}`}</a></td>
                <td>{plugins.find((p) => p.id === r.plugin_id)?.title ?? r.plugin_id}</td>
                <td><span className={`badge state-${r.state}`}>{r.state}</span></td>
                <td><RunSettings run={r} /></td>
                <td><RunScores run={r} /></td>
                <td>{formatDate(r.created_at)}</td>
                <td className="row-actions">
                  <button className="secondary small" onClick={() => setDialog({ action: 'rename', run: r })}>Rename</button>
                  <button className="secondary small" onClick={() => setDialog({ action: 'delete', run: r })}>Delete</button></td>
              </tr>))}</tbody>
          </table>
        )}
        <button disabled={compare.length < 2} onClick={() => setShown([...compare])}>Compare selected runs</button>
      </div>
      {shown.length > 1 && <LearningCurves runIds={shown} />}
      {dialog?.action === 'rename' && <NameDialog title={dialog.run ? `Rename ${dialog.run.name ?? `run ${dialog.run.id}`}` : `Rename project ${project.name}`}
        label="New name" initial={dialog.run ? dialog.run.name ?? '' : project.name} submitLabel="Rename"
        hint={dialog.run ? 'Any words (at most 64 characters); unique in this project.' : "Letters, digits, '_' or '-'; unique among your projects."}
        onSubmit={rename} onClose={() => setDialog(null)} testId="rename-dialog" />}
      {dialog?.action === 'delete' && (dialog.run ? (
        <ConfirmDialog title={`Delete ${dialog.run.name ?? `run ${dialog.run.id}`}?`} confirmLabel="Delete run" onConfirm={remove}
          onClose={() => setDialog(null)}>
          <p>Its model, results and post-processing outputs are deleted. This cannot be undone.</p>
          {['queued', 'running'].includes(dialog.run.state) && <p className="warning">It is still {dialog.run.state}: its job is cancelled first.</p>}
        </ConfirmDialog>
      ) : (
        <ConfirmDialog title={`Delete project ${project.name}?`} confirmLabel="Delete project" onConfirm={remove}
          onClose={() => setDialog(null)}>
          <p>{runs.length ? `Its ${runs.length} run${runs.length > 1 ? 's' : ''}, their models, results and outputs are deleted` : 'It has no runs'}.
            Its datasets stay. This cannot be undone.</p>
          {active.length > 0 && <p className="warning">{active.map((r) => r.name).join(', ')} {active.length > 1 ? 'are' : 'is'} still
            queued or running: cancelled first.</p>}
        </ConfirmDialog>
      ))}
    </div>
  )
}
