import { useEffect, useState } from 'react'
import { api, ApiError } from './api'
import { navigate } from './hooks'
import type { Endpoint, Run } from './types'

// The user's endpoints (of one run when `runId` is given).
export function EndpointsList({ runId }: { runId?: number }) {
  const [endpoints, setEndpoints] = useState<Endpoint[] | null>(null)
  const [error, setError] = useState('')
  useEffect(() => {
    api<{ results: Endpoint[] }>(`/api/endpoints/${runId ? `?run=${runId}` : ''}`).then((r) => setEndpoints(r.results))
      .catch((e) => setError((e as ApiError).message))
  }, [runId])
  if (error) return <div className="error" role="alert">{error}</div>
  if (endpoints === null) return <p>Loading…</p>
  if (endpoints.length === 0) return <p className="empty">No endpoints yet: open a trained run and press Create endpoint.</p>
  return (
    <table className="grid" data-testid="endpoint-list">
      <thead><tr><th>Endpoint</th><th>Run</th><th>State</th><th>Requests</th><th>p95</th></tr></thead>
      <tbody>{endpoints.map((e) => (
        <tr key={e.id}><td><a href={`#/endpoints/${e.id}`}>{e.name}</a></td>
          <td><a href={`#/runs/${e.run}`}>{e.project_name} · {e.run_name}</a></td><td>{e.state}</td>
          <td>{e.stats.requests}</td><td>{e.stats.latency_ms.p95 === null ? '—' : `${e.stats.latency_ms.p95.toFixed(1)} ms`}</td></tr>))}
      </tbody>
    </table>
  )
}

// The run page's button: serve this run's model, then open the new endpoint's page.
export function CreateEndpointButton({ runId }: { runId: number }) {
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  const create = async () => {
    setBusy(true)
    setError('')
    try {
      navigate(`/endpoints/${(await api<Endpoint>('/api/endpoints/', { method: 'POST', body: { run: runId } })).id}`)
    } catch (e) {
      const failure = e as ApiError
      setError(failure.errors.run?.[0] ?? failure.message)
    } finally { setBusy(false) }
  }
  return <>
    <button onClick={create} disabled={busy} data-testid="create-endpoint">Create endpoint</button>
    {error && <span className="error" role="alert">{error}</span>}
  </>
}

// What the run page offers for serving: an endpoint, and a model repository for Triton / KServe
// (models that export to ONNX: classifiers and tabular models).
export function ServeButtons({ run }: { run: Run }) {
  const exportable = run.metrics.kind !== 'anomaly'
  return <>
    <CreateEndpointButton runId={run.id} />
    {exportable && <a className="button" href={`/api/runs/${run.id}/model-repository/`}
      title="A model repository (model.onnx, config.pbtxt, labels) for NVIDIA Triton or KServe">Triton / KServe</a>}
  </>
}
