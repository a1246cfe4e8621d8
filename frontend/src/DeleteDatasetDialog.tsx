import { useEffect, useState } from 'react'
import { api, ApiError } from './api'
import { ConfirmDialog } from './ConfirmDialog'
import type { Dataset, DatasetUsage } from './types'

const RUNNING = ['queued', 'running']

// Deleting a dataset: first says which projects and runs use it (and that running ones stop), then
// deletes it once confirmed. Used by the datasets list and the dataset viewer.
export function DeleteDatasetDialog({ dataset, onDeleted, onClose }: {
  dataset: Pick<Dataset, 'id' | 'name'>; onDeleted: () => void; onClose: () => void
}) {
  const [usage, setUsage] = useState<DatasetUsage | null>(null)
  const [error, setError] = useState('')

  useEffect(() => {
    api<DatasetUsage>(`/api/datasets/${dataset.id}/usage/`).then(setUsage).catch((e) => setError((e as ApiError).message))
  }, [dataset.id])

  const remove = async () => {
    await api(`/api/datasets/${dataset.id}/`, { method: 'DELETE' })
    onDeleted()
  }
  const used = usage !== null && (usage.projects.length > 0 || usage.runs.length > 0)
  const running = usage?.runs.filter((r) => RUNNING.includes(r.state)) ?? []
  return (
    <ConfirmDialog title={`Delete dataset "${dataset.name}"?`} confirmLabel={used ? 'Delete it anyway' : 'Delete'}
      onConfirm={remove} onClose={onClose} testId="delete-dataset-dialog" ready={usage !== null || error !== ''}>
      {error && <div className="error" role="alert">Could not check what uses it: {error}</div>}
      {usage === null && !error && <p className="muted">Checking which projects and runs use it…</p>}
      {usage !== null && !used && <p data-testid="dataset-unused">No project or run uses it.</p>}
      {used && (
        <div className="warning" data-testid="dataset-usage">
          <p>It is used by:</p>
          {usage.projects.length > 0 && <p>Projects: {usage.projects.map((p, i) => (
            <span key={p.id}>{i > 0 && ', '}<a href={`#/projects/${p.id}`}>{p.name}</a> ({p.as.join(' and ')})</span>))}</p>}
          {usage.runs.length > 0 && <p>Runs: {usage.runs.map((r, i) => (
            <span key={r.id}>{i > 0 && ', '}<a href={`#/runs/${r.id}`}>{r.name}</a> of {r.project.name} ({r.as.join(' and ')})</span>))}</p>}
          <p>They will say the dataset was deleted. Runs keep their scores and models, but their images are gone
            and they cannot be resumed or evaluated again.</p>
          {running.length > 0 && <p><strong>{running.map((r) => r.name).join(', ')} {running.length === 1 ? 'is' : 'are'} still
            training on it and will be cancelled.</strong></p>}
        </div>
      )}
      <p className="muted">Its files and what post-processing made from it are deleted too. This cannot be undone.</p>
    </ConfirmDialog>
  )
}
