import { useCallback, useEffect, useState } from 'react'
import { api, ApiError, formatDate } from './api'
import { EndpointsList } from './EndpointsList'
import { FieldError } from './FieldError'
import { navigate } from './hooks'
import type { Endpoint, EndpointToken, Prediction } from './types'

// An endpoint: how to call it (URL, curl, Python), a test form, its statistics, its tokens and limits.
// Without an id: every endpoint of the user.
export function EndpointPage({ endpointId }: { endpointId: number | null }) {
  if (endpointId === null) {
    return <div className="page"><h2>Endpoints</h2><EndpointsList /></div>
  }
  return <EndpointDetail endpointId={endpointId} />
}

function EndpointDetail({ endpointId }: { endpointId: number }) {
  const [endpoint, setEndpoint] = useState<Endpoint | null>(null)
  const [error, setError] = useState('')
  const load = useCallback(() => {
    api<Endpoint>(`/api/endpoints/${endpointId}/`).then(setEndpoint).catch((e) => setError((e as ApiError).message))
  }, [endpointId])
  useEffect(load, [load])
  useEffect(() => {  // statistics are written by the model server every second or so
    const timer = window.setInterval(load, 3000)
    return () => window.clearInterval(timer)
  }, [load])

  const act = async (path: string, method = 'POST') => {
    setError('')
    try {
      if (method === 'DELETE') {
        await api(`/api/endpoints/${endpointId}/`, { method })
        navigate(`/runs/${endpoint?.run}`)
        return
      }
      setEndpoint(await api<Endpoint>(`/api/endpoints/${endpointId}/${path}`, { method }))
    } catch (e) { setError((e as ApiError).message) }
  }

  if (error && !endpoint) return <div className="page"><div className="error" role="alert">{error}</div></div>
  if (!endpoint) return <div className="page">Loading…</div>
  const running = endpoint.state === 'running'
  return (
    <div className="page">
      <p><a href={`#/runs/${endpoint.run}`}>← {endpoint.project_name} · {endpoint.run_name}</a> · <a href="#/endpoints">All endpoints</a></p>
      <div className="page-head">
        <h2 data-testid="endpoint-name">{endpoint.name}</h2>
        <span className={`badge state-${running ? 'succeeded' : 'cancelled'}`} data-testid="endpoint-state">{endpoint.state}</span>
        <span className="spacer" />
        {running ? <button className="secondary" onClick={() => act('stop/')}>Stop</button>
          : <button onClick={() => act('start/')}>Start</button>}
        <button className="danger" onClick={() => { if (window.confirm(`Delete the endpoint ${endpoint.name}?`)) act('', 'DELETE') }}>Delete</button>
      </div>
      {error && <div className="error" role="alert">{error}</div>}
      {!endpoint.model.available && <div className="warning">This endpoint cannot answer: {endpoint.model.problem}</div>}
      <div className="endpoint-columns">
        <div>
          <TestForm endpoint={endpoint} onCalled={load} />
          <CallIt endpoint={endpoint} />
        </div>
        <div>
          <Stats endpoint={endpoint} />
          <Tokens endpoint={endpoint} onChanged={load} />
          <Limits endpoint={endpoint} onSaved={setEndpoint} />
        </div>
      </div>
    </div>
  )
}

function CallIt({ endpoint }: { endpoint: Endpoint }) {
  const image = endpoint.model.inputs !== 'table'
  const example = image ? '{"instances": [{"data": "<base64 of the image file>"}]}'
    : `{"instances": [{${(endpoint.model.columns ?? []).slice(0, 3).map((c) => `"${c.name}": ${c.kind === 'categorical' ? `"${c.categories?.[0] ?? ''}"` : 0}`).join(', ')}}]}`
  const python = image ? `import base64, json, requests
image = base64.b64encode(open("photo.jpg", "rb").read()).decode()
answer = requests.post("${endpoint.url}", headers={"Authorization": "Token " + TOKEN},
                       json={"instances": [{"data": image}]})
print(answer.json()["predictions"][0])`
    : `import requests
answer = requests.post("${endpoint.url}", headers={"Authorization": "Token " + TOKEN},
                       json=${example})
print(answer.json()["predictions"][0])`
  return (
    <section className="card">
      <h3>Call it</h3>
      <p>POST <code data-testid="endpoint-url">{endpoint.url}</code> with your API token (account page) or a token of
        this endpoint. Body: <code>{example}</code></p>
      <label>curl (input.json holds the body)<pre className="token" data-testid="curl-line">{endpoint.curl}</pre></label>
      <label>Python<pre className="token">{python}</pre></label>
    </section>
  )
}

const readAsDataUrl = (file: File) => new Promise<string>((resolve, reject) => {
  const reader = new FileReader()
  reader.onload = () => resolve(String(reader.result))
  reader.onerror = () => reject(new ApiError(0, 'The file could not be read.'))
  reader.readAsDataURL(file)
})

function TestForm({ endpoint, onCalled }: { endpoint: Endpoint; onCalled: () => void }) {
  const [image, setImage] = useState<string | null>(null)
  const [row, setRow] = useState<Record<string, string>>({})
  const [heatmap, setHeatmap] = useState(false)
  const [answer, setAnswer] = useState<Prediction | null>(null)
  const [error, setError] = useState<ApiError | null>(null)
  const [busy, setBusy] = useState(false)
  const [over, setOver] = useState(false)
  const table = endpoint.model.inputs === 'table'
  const anomaly = endpoint.model.task === 'anomaly'

  const send = async (instance: Record<string, unknown>) => {
    setBusy(true)
    setError(null)
    setAnswer(null)
    try {
      const body = { instances: [instance], ...(anomaly && heatmap ? { parameters: { heatmap: true } } : {}) }
      const result = await api<{ predictions: Prediction[] }>(`/api/endpoints/${endpoint.id}/predict/`, { method: 'POST', body })
      setAnswer(result.predictions[0])
    } catch (e) { setError(e as ApiError) } finally { setBusy(false); onCalled() }
  }
  const choose = async (file: File | undefined) => {
    if (!file) return
    const data = await readAsDataUrl(file)
    setImage(data)
    await send({ data })
  }
  const tableInstance = () => Object.fromEntries((endpoint.model.columns ?? []).map((c) =>
    [c.name, c.kind === 'categorical' ? (row[c.name] ?? c.categories?.[0] ?? '') : Number(row[c.name] ?? '')]))

  return (
    <section className="card" data-testid="test-form">
      <h3>Try it</h3>
      {table ? (
        <form onSubmit={(e) => { e.preventDefault(); send(tableInstance()) }}>
          <div className="inline-form">
            {(endpoint.model.columns ?? []).map((c) => (
              <label key={c.name}>{c.name}
                {c.kind === 'categorical'
                  ? <select name={c.name} value={row[c.name] ?? c.categories?.[0] ?? ''}
                    onChange={(e) => setRow({ ...row, [c.name]: e.target.value })}>
                    {(c.categories ?? []).map((v) => <option key={v}>{v}</option>)}</select>
                  : <input name={c.name} className="narrow-input" inputMode="decimal" value={row[c.name] ?? ''}
                    onChange={(e) => setRow({ ...row, [c.name]: e.target.value })} required />}
              </label>))}
          </div>
          <button type="submit" disabled={busy}>Predict</button>
        </form>
      ) : (
        <>
          <label className={`dropzone ${over ? 'over' : ''}`} data-testid="dropzone"
            onDragOver={(e) => { e.preventDefault(); setOver(true) }} onDragLeave={() => setOver(false)}
            onDrop={(e) => { e.preventDefault(); setOver(false); choose(e.dataTransfer.files[0]) }}>
            {image ? <img src={image} alt="the image sent" className="sent-image" /> : <span>Drop an image here, or choose one</span>}
            <input type="file" accept="image/*" data-testid="test-image" onChange={(e) => choose(e.target.files?.[0])} />
          </label>
          {anomaly && <label className="inline-label"><input type="checkbox" checked={heatmap}
            onChange={(e) => setHeatmap(e.target.checked)} /> heat map</label>}
        </>
      )}
      {busy && <p className="muted">Asking the model…</p>}
      {error && <div className="error" role="alert">{error.message}</div>}
      {answer !== null && <Answer answer={answer} />}
    </section>
  )
}

function Answer({ answer }: { answer: Prediction }) {
  if (Array.isArray(answer)) {
    return (
      <ol className="ranked" data-testid="prediction">
        {answer.map((a) => (
          <li key={a.label}><span className="ranked-label">{a.label}</span>
            <span className="score-bar"><span style={{ width: `${100 * a.score}%` }} /></span>
            <span className="ranked-score">{(100 * a.score).toFixed(1)}%</span></li>))}
      </ol>
    )
  }
  if (typeof answer === 'number') return <p data-testid="prediction">Predicted value: <strong>{answer.toPrecision(6)}</strong></p>
  return (
    <div data-testid="prediction">
      <p><strong className={answer.anomalous ? 'anomalous' : 'normal'}>{answer.anomalous ? 'Anomalous' : 'Normal'}</strong>:
        score {answer.score.toFixed(4)} (threshold {answer.threshold.toFixed(4)})</p>
      {answer.heatmap && <img className="heat" src={`data:image/png;base64,${answer.heatmap}`} alt="heat map" />}
    </div>
  )
}

function Stats({ endpoint }: { endpoint: Endpoint }) {
  const s = endpoint.stats
  const ms = (v: number | null) => (v === null ? '—' : `${v.toFixed(1)} ms`)
  const runtime = s.runtime?.runtime
  return (
    <section className="card" data-testid="endpoint-stats">
      <h3>Requests</h3>
      <table className="grid metrics">
        <tbody>
          <tr><th>requests</th><td data-testid="stat-requests">{s.requests}</td><th>errors</th><td>{s.errors}</td></tr>
          <tr><th>instances</th><td>{s.instances}</td><th>batches</th><td>{s.batches} (largest {s.largest_batch})</td></tr>
          <tr><th>latency p50</th><td>{ms(s.latency_ms.p50)}</td><th>p95</th><td>{ms(s.latency_ms.p95)}</td></tr>
          <tr><th>p99</th><td>{ms(s.latency_ms.p99)}</td><th>last call</th><td>{s.last_request_at ? formatDate(s.last_request_at) : '—'}</td></tr>
        </tbody>
      </table>
      {runtime && <p className="muted">Runs on {runtime}{s.runtime?.torch_ms !== undefined
        ? ` (measured: PyTorch ${s.runtime.torch_ms} ms, ONNX Runtime ${s.runtime.onnxruntime_ms} ms)` : ''}.</p>}
      <p className="muted">Latencies are the server's, over the last 1,000 calls.</p>
    </section>
  )
}

function Tokens({ endpoint, onChanged }: { endpoint: Endpoint; onChanged: () => void }) {
  const [tokens, setTokens] = useState<EndpointToken[]>([])
  const [made, setMade] = useState('')
  const [name, setName] = useState('')
  const [error, setError] = useState('')
  const load = useCallback(() => {
    api<{ results: EndpointToken[] }>(`/api/endpoints/${endpoint.id}/tokens/`).then((r) => setTokens(r.results))
      .catch((e) => setError((e as ApiError).message))
  }, [endpoint.id])
  useEffect(load, [load])
  const make = async (event: React.FormEvent) => {
    event.preventDefault()
    try {
      const token = await api<EndpointToken & { token: string }>(`/api/endpoints/${endpoint.id}/tokens/`,
        { method: 'POST', body: { name } })
      setMade(token.token)
      setName('')
      load()
      onChanged()
    } catch (e) { setError((e as ApiError).message) }
  }
  const revoke = async (id: number) => {
    try { await api(`/api/endpoints/${endpoint.id}/tokens/${id}/`, { method: 'DELETE' }); load(); onChanged() }
    catch (e) { setError((e as ApiError).message) }
  }
  return (
    <section className="card">
      <h3>Endpoint tokens</h3>
      <p className="muted">A token that calls this endpoint and nothing else (for a device): <code>Authorization: Bearer &lt;token&gt;</code>.</p>
      {tokens.length > 0 && (
        <table className="grid"><tbody>{tokens.map((t) => (
          <tr key={t.id}><td><code>{t.prefix}…</code></td><td>{t.name}</td>
            <td className="muted">{t.last_used_at ? `used ${formatDate(t.last_used_at)}` : 'never used'}</td>
            <td><button className="secondary small" onClick={() => revoke(t.id)}>Revoke</button></td></tr>))}</tbody></table>)}
      <form className="inline-form" onSubmit={make}>
        <label>Name<input value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. camera 1" /></label>
        <button type="submit">New token</button>
      </form>
      {made && <><p className="notice">Copy it now: it is not shown again.</p><pre className="token" data-testid="new-token">{made}</pre></>}
      {error && <div className="error" role="alert">{error}</div>}
    </section>
  )
}

const LIMITS: { name: 'max_instances' | 'max_body_bytes' | 'max_image_pixels' | 'rate_per_minute'; label: string }[] = [
  { name: 'max_instances', label: 'Instances per request' }, { name: 'max_body_bytes', label: 'Request body (bytes)' },
  { name: 'max_image_pixels', label: 'Pixels per image' }, { name: 'rate_per_minute', label: 'Calls per minute per token' }]

function Limits({ endpoint, onSaved }: { endpoint: Endpoint; onSaved: (endpoint: Endpoint) => void }) {
  const [values, setValues] = useState<Record<string, string>>({})
  const [error, setError] = useState<ApiError | null>(null)
  const [notice, setNotice] = useState('')
  const save = async (event: React.FormEvent) => {
    event.preventDefault()
    setError(null)
    setNotice('')
    try {
      onSaved(await api<Endpoint>(`/api/endpoints/${endpoint.id}/`, { method: 'PATCH', body: values }))
      setValues({})
      setNotice('Saved.')
    } catch (e) { setError(e as ApiError) }
  }
  return (
    <form className="card" onSubmit={save}>
      <h3>Limits</h3>
      <div className="inline-form">
        {LIMITS.map((l) => (
          <label key={l.name}>{l.label}<input name={l.name} className="narrow-input" inputMode="numeric"
            value={values[l.name] ?? String(endpoint[l.name])} onChange={(e) => setValues({ ...values, [l.name]: e.target.value })} />
            <FieldError error={error} field={l.name} /></label>))}
      </div>
      <button type="submit" disabled={Object.keys(values).length === 0}>Save limits</button>
      {notice && <div className="notice">{notice}</div>}
    </form>
  )
}
