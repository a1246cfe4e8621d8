import { useEffect, useRef, useState } from 'react'
import { api, ApiError, formatBytes, uploadFile } from './api'
import { FieldError } from './FieldError'
import { ServerPicker } from './ServerPicker'
import type { Dataset, Job, Param, Plugin } from './types'

function initialValues(plugin: Plugin): Record<string, unknown> {
  const values: Record<string, unknown> = {}
  for (const p of plugin.params) values[p.name] = p.default ?? (p.type === 'bool' ? false : '')
  return values
}

// A file parameter: pick a file, it uploads at once with a progress bar; the value is the upload id.
function FileInput({ param, onUploaded }: { param: Param; onUploaded: (value: unknown) => void }) {
  const [progress, setProgress] = useState<{ loaded: number; total: number } | null>(null)
  const [status, setStatus] = useState('')
  const [error, setError] = useState('')
  const [serverFolders, setServerFolders] = useState(false)
  const [browsing, setBrowsing] = useState(false)
  const abort = useRef<AbortController | null>(null)

  useEffect(() => {
    api<{ entries: unknown[] }>('/api/imports/').then((r) => setServerFolders(r.entries.length > 0)).catch(() => undefined)
  }, [])

  const pickServer = (path: string) => {
    abort.current?.abort()
    setProgress(null)
    setError('')
    setBrowsing(false)
    setStatus(`Server: ${path}`)
    onUploaded({ import: path })
  }

  const choose = async (file: File | undefined) => {
    abort.current?.abort()
    onUploaded('')
    setError('')
    if (!file) return
    const controller = new AbortController()
    abort.current = controller
    setStatus(`Uploading ${file.name}…`)
    setProgress({ loaded: 0, total: file.size })
    try {
      const upload = await uploadFile(file, (loaded, total) => setProgress({ loaded, total }), controller.signal)
      setStatus(`Uploaded ${upload.filename} (${formatBytes(upload.size)})`)
      onUploaded(upload.id)
    } catch (e) {
      setStatus('')
      setProgress(null)
      setError((e as ApiError).message)
    }
  }

  const percent = progress && progress.total ? Math.round((100 * progress.loaded) / progress.total) : 0
  const uploading = status.startsWith('Uploading')
  return (
    <div className="file-input">
      <input type="file" id={`param-${param.name}`} name={param.name} accept=".zip,.tar,.tgz,.gz,.csv"
        onChange={(e) => choose(e.target.files?.[0])} />
      {uploading && <button type="button" className="secondary" onClick={() => abort.current?.abort()}>Cancel upload</button>}
      {serverFolders && <button type="button" className="secondary" onClick={() => setBrowsing(!browsing)}>
        {browsing ? 'Hide server folders' : 'Or choose from the server'}</button>}
      {browsing && <ServerPicker onPick={pickServer} />}
      {progress && (
        <div className="progress" role="progressbar" aria-valuenow={percent} data-testid="upload-progress">
          <div className="bar" style={{ width: `${percent}%` }} />
          <span>{formatBytes(progress.loaded)} / {formatBytes(progress.total)} ({percent}%)</span>
        </div>
      )}
      {status && <div className="hint" data-testid="upload-status">{status}</div>}
      {error && <div className="error" role="alert">{error}</div>}
    </div>
  )
}

export function ParamInput({ param, value, onChange, datasets }: {
  param: Param; value: unknown; onChange: (v: unknown) => void; datasets: Dataset[]
}) {
  if (param.type === 'file') return <FileInput param={param} onUploaded={onChange} />
  const id = `param-${param.name}`
  if (param.type === 'bool') {
    return <input type="checkbox" id={id} name={param.name} checked={Boolean(value)} onChange={(e) => onChange(e.target.checked)} />
  }
  if (param.type === 'dataset') {
    return (
      <select id={id} name={param.name} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)}>
        <option value="">—</option>
        {datasets.map((d) => <option key={d.id} value={d.id}>{d.name} (#{d.id})</option>)}
      </select>
    )
  }
  if (param.choices) {
    return (
      <select id={id} name={param.name} value={String(value)} onChange={(e) => {
        const raw = e.target.value
        onChange(param.type === 'int' || param.type === 'float' ? Number(raw) : raw)
      }}>
        {param.choices.map((c) => <option key={String(c)} value={String(c)}>{String(c)}</option>)}
      </select>
    )
  }
  if (param.type === 'int' || param.type === 'float') {
    return <input type="number" id={id} name={param.name} value={String(value ?? '')} min={param.min ?? undefined}
      max={param.max ?? undefined} step={param.type === 'int' ? 1 : 'any'}
      onChange={(e) => onChange(e.target.value === '' ? '' : Number(e.target.value))} />
  }
  return <input type="text" id={id} name={param.name} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)} />
}

// The form for any plugin, rendered from its schema; the server validates and answers per field.
export function PluginForm({ plugin, onQueued, submit: send }: {
  plugin: Plugin; onQueued: (result: any) => void; submit?: (values: Record<string, unknown>) => Promise<unknown>
}) {
  const [values, setValues] = useState<Record<string, unknown>>(() => initialValues(plugin))
  const [error, setError] = useState<ApiError | null>(null)
  const [busy, setBusy] = useState(false)
  const [datasets, setDatasets] = useState<Dataset[]>([])

  useEffect(() => { setValues(initialValues(plugin)); setError(null) }, [plugin])
  useEffect(() => {
    if (plugin.params.some((p) => p.type === 'dataset')) {
      api<{ results: Dataset[] }>('/api/datasets/').then((r) => setDatasets(r.results)).catch(() => undefined)
    }
  }, [plugin])

  const submit = async (event: React.FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const result = send ? await send(values)
        : await api<Job>('/api/jobs/', { method: 'POST', body: { plugin: plugin.id, params: values } })
      onQueued(result)
    } catch (e) {
      setError(e as ApiError)
    } finally {
      setBusy(false)
    }
  }

  return (
    <form className="plugin-form" onSubmit={submit} data-plugin={plugin.id}>
      <p className="hint">{plugin.description}</p>
      {plugin.params.map((p) => (
        <div className="field" key={p.name}>
          <label htmlFor={`param-${p.name}`} className="name">{p.name}{p.required ? ' *' : ''}</label>
          <ParamInput param={p} value={values[p.name]} datasets={datasets}
            onChange={(v) => setValues((prev) => ({ ...prev, [p.name]: v }))} />
          {p.help && <div className="hint">{p.help}</div>}
          <FieldError error={error} field={p.name} />
        </div>
      ))}
      {error && <div className="error" role="alert">{error.message}</div>}
      <button type="submit" disabled={busy}>Run</button>
    </form>
  )
}
