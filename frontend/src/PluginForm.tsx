import { useEffect, useRef, useState } from 'react'
import { api, ApiError, formatBytes, uploadFile } from './api'
import { FieldError } from './FieldError'
import { FieldLabel, isEmpty } from './FieldLabel'
import { ModelSelect, SwitchWeights } from './ModelSelect'
import { ServerPicker } from './ServerPicker'
import type { CsvInfo, Dataset, Job, Param, Plugin, TablePage } from './types'
import { isRunBase, tableUrl } from './workspace'

function initialValues(plugin: Plugin, initial: Record<string, unknown> = {}): Record<string, unknown> {
  const values: Record<string, unknown> = {}
  for (const p of plugin.params) values[p.name] = p.default ?? (p.type === 'bool' ? false : p.type === 'model' ? 'model' : '')
  for (const p of plugin.params) if (initial[p.name] !== undefined) values[p.name] = initial[p.name]
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

// What csv, variable and model parameters offer: the CSVs of the run or dataset the form is for,
// the variables of the CSV chosen in the form, and whose model it is. extras (variables a plugin
// computes from the model, t-SNE's `features`) are offered only where there is a model (a run).
export interface ParamChoices {
  csvs?: CsvInfo[]; variables?: string[] | null; modelLabel?: string; extras?: boolean
}

// The variables a variable parameter may take: the CSV's, then its extras where they apply.
export function variableChoices(param: Param, variables: string[], extras = true): string[] {
  return [...variables, ...(extras ? param.extras ?? [] : []).filter((v) => !variables.includes(v))]
}

// A select whose current value stays listed even before (or without) the server's options.
function OptionsSelect({ id, param, value, options, onChange }: {
  id: string; param: Param; value: unknown; options: { value: string; label: string }[]; onChange: (v: string) => void
}) {
  const current = String(value ?? '')
  const listed = options.some((o) => o.value === current)
  return (
    <select id={id} name={param.name} value={current} onChange={(e) => onChange(e.target.value)}>
      {(!param.required || current === '') && <option value="">—</option>}
      {!listed && current !== '' && <option value={current}>{current}</option>}
      {options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
    </select>
  )
}

export function ParamInput({ param, value, onChange, datasets, choices = {} }: {
  param: Param; value: unknown; onChange: (v: unknown) => void; datasets: Dataset[]; choices?: ParamChoices
}) {
  if (param.type === 'file') return <FileInput param={param} onUploaded={onChange} />
  const id = `param-${param.name}`
  if (param.type === 'model' && !param.choices) {  // with choices it is a backbone of the model store
    return <input type="text" id={id} name={param.name} readOnly value={choices.modelLabel ?? String(value ?? '')}
      className="readonly" aria-readonly="true" />
  }
  if (param.type === 'csv' && choices.csvs) {
    return <OptionsSelect id={id} param={param} value={value} onChange={onChange}
      options={choices.csvs.map((c) => ({ value: c.name, label: `${c.name} (${c.rows} rows)` }))} />
  }
  if (param.type === 'variable' && choices.variables) {
    const names = variableChoices(param, choices.variables, choices.extras !== false)
    if (param.multiple) {  // a comma-separated list: free text, with the CSV's variables suggested
      return <>
        <input type="text" id={id} name={param.name} value={String(value ?? '')} list={`${id}-list`}
          placeholder={`comma-separated: ${names.slice(0, 4).join(', ')}…`} onChange={(e) => onChange(e.target.value)} />
        <datalist id={`${id}-list`}>{names.map((v) => <option key={v} value={v} />)}</datalist>
      </>
    }
    return <OptionsSelect id={id} param={param} value={value} onChange={onChange}
      options={names.map((v) => ({ value: v, label: v }))} />
  }
  if (param.type === 'image') {
    return <input type="text" id={id} name={param.name} value={String(value ?? '')} placeholder="path of an image in the CSV"
      onChange={(e) => onChange(e.target.value)} />
  }
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
  if (param.type === 'model') return <ModelSelect id={id} param={param} value={value} onChange={onChange} />
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
    // Emptied, a field with a default takes it: the placeholder says which.
    return <input type="number" id={id} name={param.name} value={String(value ?? '')} min={param.min ?? undefined}
      max={param.max ?? undefined} step={param.type === 'int' ? 1 : 'any'}
      placeholder={param.default != null && !param.required ? `default ${String(param.default)}` : undefined}
      onChange={(e) => onChange(e.target.value === '' ? '' : Number(e.target.value))} />
  }
  return <input type="text" id={id} name={param.name} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)}
    placeholder={param.default != null && param.default !== '' && !param.required ? `default ${String(param.default)}` : undefined} />
}

// The variables of one CSV: all of them, and those of its image columns.
interface LoadedVariables { source: string; names: string[]; images: Set<string> }

// The csvs of base (when the plugin has csv parameters) and the variables of the CSV chosen in the
// plugin's first csv parameter (refetched when it changes). Until they arrive the selects are
// there already (empty), so the field that has focus is never replaced under it.
function useParamChoices(plugin: Plugin, base: string | undefined, values: Record<string, unknown>) {
  const [csvs, setCsvs] = useState<CsvInfo[] | undefined>(undefined)
  const [variables, setVariables] = useState<LoadedVariables | null>(null)
  const [csvError, setCsvError] = useState('')
  const [variablesError, setVariablesError] = useState('')
  const needsCsvs = Boolean(base) && plugin.params.some((p) => p.type === 'csv')
  const firstCsv = plugin.params.find((p) => p.type === 'csv')
  const needsVariables = Boolean(base) && plugin.params.some((p) => p.type === 'variable')
  const source = firstCsv ? String(values[firstCsv.name] ?? '') : ''

  useEffect(() => {
    if (!needsCsvs || !base) return
    let live = true
    api<{ results: CsvInfo[] }>(`${base}/csvs/`).then((r) => { if (live) { setCsvs(r.results); setCsvError('') } })
      .catch((e) => { if (live) setCsvError(`CSV list: ${(e as ApiError).message}`) })
    return () => { live = false }
  }, [base, needsCsvs])

  useEffect(() => {
    setVariables(null)
    setVariablesError('')
    if (!needsVariables || !base || !source) return
    let live = true
    api<TablePage>(tableUrl(base, source, 0, 1)).then((page) => {
      if (!live) return
      const images = new Set(page.columns.filter((c) => c.kind === 'image').map((c) => c.variable))
      setVariables({ source, names: page.variables, images })
    }).catch((e) => { if (live) setVariablesError(`Variables of ${source}: ${(e as ApiError).message}`) })
    return () => { live = false }
  }, [base, needsVariables, source])

  const current = variables && variables.source === source ? variables : null
  const choices: ParamChoices = {
    csvs: needsCsvs ? (csvs ?? []) : undefined,
    variables: needsVariables ? (current?.names ?? []) : null,
    modelLabel: base === undefined || isRunBase(base) ? "this run's model" : 'no model here: run this from a run',
    extras: base === undefined || isRunBase(base),
  }
  // Still loading: the variables of a chosen CSV (not when they failed: the server then judges).
  const loading = needsVariables && Boolean(source) && !current && !variablesError
  return { choices, csvs: needsCsvs ? csvs ?? null : null, variables: current, loading,
    error: [csvError, variablesError].filter(Boolean).join(' ') }
}

// The variables of a comma-separated list parameter.
const listItems = (value: unknown) => String(value ?? '').split(',').map((v) => v.trim()).filter(Boolean)

// Values whose csv or variable parameters name something the chosen CSV (or the workspace) does not
// have are reset: to the default where that is there, else (required) to the first sensible choice,
// one that no other variable parameter holds and not an image column where another is left, else
// (optional) to nothing. Returns the values unchanged (the same object) when all are fine.
function resetInvalid(plugin: Plugin, values: Record<string, unknown>, csvs: CsvInfo[] | null,
                      variables: LoadedVariables | null, extras: boolean): Record<string, unknown> {
  let next = values
  const set = (name: string, value: unknown) => {
    if (next[name] === value) return
    if (next === values) next = { ...values }
    next[name] = value
  }
  if (csvs) {
    const names = csvs.map((c) => c.name)
    for (const p of plugin.params.filter((q) => q.type === 'csv')) {
      const value = next[p.name]
      if (typeof value !== 'string' || value === '' || names.includes(value)) continue
      const fallback = typeof p.default === 'string' && names.includes(p.default) ? p.default : p.required ? names[0] ?? '' : ''
      set(p.name, fallback)
    }
  }
  const firstCsv = plugin.params.find((p) => p.type === 'csv')
  if (!variables || (firstCsv && String(next[firstCsv.name] ?? '') !== variables.source)) return next
  const params = plugin.params.filter((p) => p.type === 'variable')
  const held = new Set<string>()
  const invalid: Param[] = []
  for (const p of params) {
    const allowed = variableChoices(p, variables.names, extras)
    if (p.multiple) {
      const items = listItems(next[p.name])
      const kept = items.filter((v) => allowed.includes(v))
      if (kept.length !== items.length) set(p.name, kept.join(','))
      if (kept.length === 0 && p.required) invalid.push(p)
      kept.forEach((v) => held.add(v))
      continue
    }
    const value = String(next[p.name] ?? '')
    if (value === '' ? p.required : !allowed.includes(value)) invalid.push(p)
    else if (value !== '') held.add(value)
  }
  for (const p of invalid) {
    const allowed = variableChoices(p, variables.names, extras)
    const byDefault = typeof p.default === 'string' && allowed.includes(p.default) ? p.default : null
    let choice = ''
    if (byDefault && !held.has(byDefault)) choice = byDefault
    else if (p.required) {
      const free = allowed.filter((v) => !held.has(v))
      choice = free.find((v) => !variables.images.has(v)) ?? free[0] ?? byDefault ?? allowed[0] ?? ''
    }
    if (choice) held.add(choice)
    set(p.name, choice)
  }
  return next
}

// Required fields left empty, in the server's words, before a round trip (the server would put a
// default in an emptied field; the form says it was left empty instead).
function requiredErrors(plugin: Plugin, values: Record<string, unknown>): Record<string, string[]> {
  const errors: Record<string, string[]> = {}
  for (const p of plugin.params) {
    if (p.required && isEmpty(values[p.name])) errors[p.name] = ['this field is required']
  }
  return errors
}

// Variable values not among the CSV's variables (a check before sending: never a value not listed).
function variableErrors(plugin: Plugin, values: Record<string, unknown>, variables: LoadedVariables | null,
                        extras: boolean): Record<string, string[]> {
  const errors: Record<string, string[]> = {}
  if (!variables) return errors
  for (const p of plugin.params.filter((q) => q.type === 'variable')) {
    const allowed = variableChoices(p, variables.names, extras)
    const items = p.multiple ? listItems(values[p.name]) : [String(values[p.name] ?? '')].filter(Boolean)
    const missing = items.find((v) => !allowed.includes(v))
    if (missing !== undefined) errors[p.name] = [`${variables.source} has no variable ${missing}: choose one of the list.`]
    else if (p.required && items.length === 0) errors[p.name] = ['Choose a variable.']
  }
  return errors
}

// The form for any plugin, rendered from its schema; the server validates and answers per field.
// With base (a run or dataset), csv/variable/model parameters offer that workspace's CSVs,
// variables and model; initial prefills values (e.g. from the clicked cell).
export function PluginForm<T = Job>({ plugin, onQueued, submit: send, initial, base, submitLabel = 'Run', submitTestId }: {
  plugin: Plugin; onQueued: (result: T) => void; submit?: (values: Record<string, unknown>) => Promise<T>
  initial?: Record<string, unknown>; base?: string; submitLabel?: string; submitTestId?: string
}) {
  const [values, setValues] = useState<Record<string, unknown>>(() => initialValues(plugin, initial))
  const [error, setError] = useState<ApiError | null>(null)
  const [busy, setBusy] = useState(false)
  const [datasets, setDatasets] = useState<Dataset[]>([])
  const { choices, csvs, variables, loading, error: choicesError } = useParamChoices(plugin, base, values)
  const form = useRef<HTMLFormElement>(null)
  const extras = choices.extras !== false

  useEffect(() => { setValues(initialValues(plugin, initial)); setError(null) }, [plugin])  // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (plugin.params.some((p) => p.type === 'dataset')) {
      api<{ results: Dataset[] }>('/api/datasets/').then((r) => setDatasets(r.results)).catch(() => undefined)
    }
  }, [plugin])
  // When the CSVs or the chosen CSV's variables arrive, values they do not have are reset.
  useEffect(() => {
    setValues((prev) => resetInvalid(plugin, prev, csvs, variables, extras))
  }, [plugin, csvs, variables, extras])

  // The first field with an error comes into view (long forms scroll).
  useEffect(() => {
    if (!error || !form.current) return
    const field = plugin.params.find((p) => error.errors?.[p.name]?.length)
    const input = field && form.current.querySelector<HTMLElement>(`[name="${CSS.escape(field.name)}"]`)
    input?.focus()
  }, [error, plugin])

  // A field's error goes once the field is changed (the rest stay until the next Run).
  const clearFieldError = (name: string) => setError((prev) => {
    if (!prev?.errors?.[name]) return prev
    const errors = { ...prev.errors }
    delete errors[name]
    return Object.keys(errors).length ? new ApiError(prev.status, prev.message, errors) : null
  })

  const submit = async (event: React.FormEvent) => {
    event.preventDefault()
    const missing = requiredErrors(plugin, values)
    const invalid = { ...variableErrors(plugin, values, variables, extras), ...missing }
    if (Object.keys(invalid).length) {
      setError(new ApiError(400, Object.keys(missing).length ? 'Fill in the required fields.'
        : 'Some variables are not in the chosen CSV.', invalid))
      return
    }
    setBusy(true)
    setError(null)
    try {
      const result = send ? await send(values)
        : await api<T>('/api/jobs/', { method: 'POST', body: { plugin: plugin.id, params: values } })
      onQueued(result)
    } catch (e) {
      setError(e as ApiError)
    } finally {
      setBusy(false)
    }
  }

  // Field errors show under their field; below the form only the message of an error without
  // fields and the errors of fields the form does not have.
  const names = new Set(plugin.params.map((p) => p.name))
  const fieldErrors = Object.entries(error?.errors ?? {}).filter(([, messages]) => messages?.length)
  const otherErrors = fieldErrors.filter(([field]) => !names.has(field))
  return (
    <form className="plugin-form" onSubmit={submit} data-plugin={plugin.id} ref={form}>
      <p className="hint">{plugin.description}</p>
      {plugin.params.map((p) => (
        <div className="field" key={p.name}>
          <FieldLabel param={p} htmlFor={`param-${p.name}`} />
          <ParamInput param={p} value={values[p.name]} datasets={datasets} choices={choices}
            onChange={(v) => { setValues((prev) => ({ ...prev, [p.name]: v })); clearFieldError(p.name) }} />
          {p.type === 'bool' && <SwitchWeights plugin={plugin.id} param={p} value={values[p.name]} />}
          {p.help && <div className="hint">{p.help}</div>}
          <FieldError error={error} field={p.name} />
        </div>
      ))}
      {choicesError && <div className="error" role="alert">{choicesError}</div>}
      {error && (otherErrors.length > 0 ? (
        <div className="error" role="alert">
          {otherErrors.map(([field, messages]) => <div key={field}>{field}: {messages.join(' ')}</div>)}</div>
      ) : fieldErrors.length === 0 && <div className="error" role="alert">{error.message}</div>)}
      <button type="submit" disabled={busy || loading} data-testid={submitTestId}
        title={loading ? 'Loading the variables of the chosen CSV…' : undefined}>{submitLabel}</button>
    </form>
  )
}
