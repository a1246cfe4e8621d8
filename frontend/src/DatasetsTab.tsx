import { useCallback, useEffect, useState } from 'react'
import { api, ApiError, formatBytes, formatDate } from './api'
import { DeleteDatasetDialog } from './DeleteDatasetDialog'
import { JobPanel } from './JobPanel'
import { Modal } from './Modal'
import { PluginForm } from './PluginForm'
import type { Dataset, Job, Plugin } from './types'

export function shapes(d: Dataset): string {
  return d.columns.map((c) => `${c.name}${c.label ? `:${c.label}` : ''} (${c.shape})`).join(', ')
}

export function DatasetsTab() {
  const [datasets, setDatasets] = useState<Dataset[] | null>(null)
  const [plugins, setPlugins] = useState<Plugin[]>([])
  const [creating, setCreating] = useState(false)
  const [pluginId, setPluginId] = useState('')
  const [jobs, setJobs] = useState<Job[]>([])
  const [error, setError] = useState('')
  const [deleting, setDeleting] = useState<Dataset | null>(null)

  const load = useCallback(() => {
    api<{ results: Dataset[] }>('/api/datasets/').then((r) => setDatasets(r.results)).catch((e) => setError((e as ApiError).message))
  }, [])

  useEffect(() => {
    load()
    api<{ results: Plugin[] }>('/api/plugins/?kind=preprocess').then((r) => {
      setPlugins(r.results)
      if (r.results.length) setPluginId(r.results[0].id)
    }).catch((e) => setError((e as ApiError).message))
    api<{ results: Job[] }>('/api/jobs/').then((r) => setJobs(r.results.filter((j) => j.kind === 'preprocess' && !j.finished_at).slice(0, 5)))
      .catch(() => undefined)
  }, [load])

  const plugin = plugins.find((p) => p.id === pluginId)
  const queued = (job: Job) => { setCreating(false); setJobs((prev) => [job, ...prev]) }

  return (
    <div className="page">
      <div className="page-head">
        <h2>Datasets</h2>
        <span className="spacer" />
        <button onClick={() => setCreating(true)} data-testid="create-dataset">Create dataset</button>
      </div>
      {error && <div className="error" role="alert">{error}</div>}
      {creating && (
        <Modal title="Create dataset" onClose={() => setCreating(false)}>
          <label>Pre-processing plugin
            <select value={pluginId} onChange={(e) => setPluginId(e.target.value)} name="plugin">
              {plugins.map((p) => <option key={p.id} value={p.id}>{p.title}</option>)}
            </select>
          </label>
          {plugin && <PluginForm plugin={plugin} onQueued={queued} />}
        </Modal>
      )}
      {deleting && <DeleteDatasetDialog dataset={deleting} onClose={() => setDeleting(null)}
        onDeleted={() => { setDeleting(null); load() }} />}
      {jobs.map((j) => <JobPanel key={j.id} jobId={j.id} onFinished={load} />)}
      {datasets === null ? <p>Loading…</p> : datasets.length === 0 ? (
        <p className="empty">No datasets yet: upload an archive with one folder of images per class and create one.</p>
      ) : (
        <table className="grid" data-testid="dataset-list">
          <thead><tr><th>Name</th><th>Rows</th><th>Columns</th><th>Size</th><th>Created</th><th></th></tr></thead>
          <tbody>
            {datasets.map((d) => (
              <tr key={d.id}>
                <td><a href={`#/datasets/${d.id}`}>{d.name}</a> <span className="muted">#{d.id}</span></td>
                <td>{d.rows}</td>
                <td>{shapes(d)}</td>
                <td>{formatBytes(d.size_bytes)}</td>
                <td>{formatDate(d.created_at)}</td>
                <td><button className="secondary small" onClick={() => setDeleting(d)}
                  aria-label={`Delete dataset ${d.name}`}>Delete</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
