import { useCallback, useEffect, useState } from 'react'
import { api, ApiError, formatDate } from './api'
import { FieldError } from './FieldError'
import type { Dataset, Project } from './types'

export function ProjectsTab() {
  const [projects, setProjects] = useState<Project[] | null>(null)
  const [datasets, setDatasets] = useState<Dataset[]>([])
  const [name, setName] = useState('')
  const [train, setTrain] = useState('')
  const [valid, setValid] = useState('')
  const [error, setError] = useState<ApiError | null>(null)

  const load = useCallback(() => {
    api<{ results: Project[] }>('/api/projects/').then((r) => setProjects(r.results)).catch((e) => setError(e as ApiError))
  }, [])
  useEffect(() => {
    load()
    api<{ results: Dataset[] }>('/api/datasets/').then((r) => setDatasets(r.results)).catch(() => undefined)
  }, [load])

  const create = async (event: React.FormEvent) => {
    event.preventDefault()
    setError(null)
    try {
      await api('/api/projects/', { method: 'POST', body: { name, train_dataset: train || null, valid_dataset: valid || null } })
      setName('')
      load()
    } catch (e) {
      setError(e as ApiError)
    }
  }
  const datasetName = (p: Project, field: 'train_dataset' | 'valid_dataset') => {
    const id = p[field]
    const deleted = p.deleted_datasets?.[field]
    if (id === null && deleted) return <span className="muted">{deleted} (deleted)</span>
    return datasets.find((d) => d.id === id)?.name ?? (id ? `#${id}` : '—')
  }

  return (
    <div className="page">
      <h2>Projects</h2>
      <form className="card inline-form" onSubmit={create}>
        <label>Name<input name="project-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="letters, digits, _ -" /></label>
        <label>Training dataset<select value={train} onChange={(e) => setTrain(e.target.value)}>
          <option value="">—</option>{datasets.map((d) => <option key={d.id} value={d.id}>{d.name} (#{d.id})</option>)}</select></label>
        <label>Validation dataset<select value={valid} onChange={(e) => setValid(e.target.value)}>
          <option value="">—</option>{datasets.map((d) => <option key={d.id} value={d.id}>{d.name} (#{d.id})</option>)}</select></label>
        <button type="submit">Create project</button>
        <FieldError error={error} field="name" />
        {error && Object.keys(error.errors).length === 0 && <div className="error">{error.message}</div>}
      </form>
      {projects === null ? <p>Loading…</p> : projects.length === 0 ? <p className="empty">No projects yet.</p> : (
        <table className="grid">
          <thead><tr><th>Name</th><th>Training</th><th>Validation</th><th>Created</th></tr></thead>
          <tbody>{projects.map((p) => (
            <tr key={p.id}><td><a href={`#/projects/${p.id}`}>{p.name}</a></td><td>{datasetName(p, 'train_dataset')}</td><td>{datasetName(p, 'valid_dataset')}</td><td>{formatDate(p.created_at)}</td></tr>
          ))}</tbody>
        </table>
      )}
    </div>
  )
}
