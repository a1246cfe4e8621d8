import { useEffect, useRef, useState, type ReactNode } from 'react'
import { api, ApiError } from './api'
import { ContextMenu, type MenuEntry } from './ContextMenu'
import { JobPanel } from './JobPanel'
import { Modal } from './Modal'
import type { Plugin, Postprocess } from './types'
import { FINAL_STATES, outputUrl } from './workspace'

export type ExplainMethod = 'grad_cam' | 'lime_image' | 'shap_image'
export const EXPLAIN_METHODS: { id: ExplainMethod; label: string }[] = [
  { id: 'grad_cam', label: 'Grad-CAM' }, { id: 'lime_image', label: 'LIME' }, { id: 'shap_image', label: 'SHAP' },
]

// What a right-click on an evaluation image asks to explain: the image cell (its path as the CSV
// has it), where to show it, the CSV it came from (SHAP's background) and the row's classes; `note`
// says what is explained where it is not a class (an anomaly model's score) and replaces the class line.
export interface ExplainRequest {
  method: ExplainMethod; image: string; src: string; csv: string
  predicted: number | null; actual: number | null; names: string[]; note?: string
}

// The single-image plugin's parameters: this run's model, the clicked image, the CSV as SHAP's
// background, the class (-1: the plugin's "predicted"); the rest are the plugin's defaults.
export function explainParams(plugin: Plugin, image: string, csv: string, classIndex: number | null): Record<string, unknown> {
  const values: Record<string, unknown> = {}
  const firstCsv = plugin.params.find((p) => p.type === 'csv')
  if (firstCsv && csv) values[firstCsv.name] = csv
  for (const p of plugin.params) {
    if (p.type === 'model') values[p.name] = 'model'
    if (p.type === 'image') values[p.name] = image
    if (p.name === 'class_index' && classIndex !== null) values[p.name] = classIndex
  }
  return values
}

// Explains one evaluation image with Grad-CAM / LIME / SHAP without the Plugins menu: the job
// starts at once, its progress shows here and the overlay opens beside the image when it ends;
// the true class (or another method) is one click away and starts another job.
export function ExplainDialog({ base, plugins, request, onQueued, onClose }: {
  base: string; plugins: Plugin[]; request: ExplainRequest; onQueued?: (postprocess: Postprocess) => void; onClose: () => void
}) {
  const [method, setMethod] = useState<ExplainMethod>(request.method)
  const [classIndex, setClassIndex] = useState<number | null>(request.predicted)
  const [job, setJob] = useState<Postprocess | null>(null)
  const [done, setDone] = useState<Postprocess | null>(null)
  const [error, setError] = useState('')
  const timers = useRef<number[]>([])
  const queued = useRef(onQueued)
  queued.current = onQueued
  const plugin = plugins.find((p) => p.id === method)
  const title = EXPLAIN_METHODS.find((m) => m.id === method)?.label ?? method
  const className = (index: number | null) =>
    index === null ? 'the predicted class' : `${index}${request.names[index] !== undefined ? `: ${request.names[index]}` : ''}`

  useEffect(() => {
    if (!plugin) { setError(`The ${title} plugin is not installed.`); return }
    let alive = true
    setJob(null); setDone(null); setError('')
    api<Postprocess>(`${base}/postprocess/`, { method: 'POST',
      body: { plugin: plugin.id, params: explainParams(plugin, request.image, request.csv, classIndex) } })
      .then((p) => { if (!alive) return; setJob(p); queued.current?.(p) })
      .catch((e) => { if (alive) setError((e as ApiError).message) })
    return () => { alive = false; timers.current.forEach(clearTimeout) }
  }, [base, plugin, classIndex, request.image, request.csv, title])

  // Its outputs are recorded as the job ends: asked again briefly until they are listed.
  const finished = async (id: number, attempt = 0) => {
    try {
      const r = await api<{ results: Postprocess[] }>(`${base}/postprocess/`)
      const p = r.results.find((x) => x.id === id)
      const pending = !p || !FINAL_STATES.includes(p.state) || (p.state === 'succeeded' && p.outputs.length === 0)
      if (pending && attempt < 6) { timers.current.push(window.setTimeout(() => finished(id, attempt + 1), 400 * (attempt + 1))); return }
      if (p) { setDone(p); queued.current?.(p) }  // the Outputs list shows it finished too
    } catch (e) { setError((e as ApiError).message) }
  }

  const overlay = done?.outputs.find((o) => o.kind === 'image')
  const other = request.actual !== null && request.actual !== classIndex ? request.actual
    : request.predicted !== null && request.predicted !== classIndex ? request.predicted : null
  return (
    <Modal title={`Explain with ${title}: ${request.image}`} onClose={onClose} testId="explain-dialog" wide>
      {request.note ? <p className="muted" data-testid="explain-class">{request.note}</p> : (
        <p className="muted" data-testid="explain-class">
          Class explained: {className(classIndex)}{classIndex === request.predicted ? ' (predicted)' : ''}
          {classIndex !== null && classIndex === request.actual ? ' (true)' : ''}
          {request.actual !== null && ` · actual ${className(request.actual)}`}
          {request.predicted !== null && ` · predicted ${className(request.predicted)}`}</p>)}
      <div className="pager">
        {other !== null && (
          <button type="button" className="secondary small" data-testid="explain-other-class" onClick={() => setClassIndex(other)}>
            Explain the {other === request.actual ? 'true' : 'predicted'} class ({className(other)})</button>)}
        {EXPLAIN_METHODS.filter((m) => m.id !== method).map((m) => (
          <button key={m.id} type="button" className="secondary small" data-testid={`explain-switch-${m.id}`}
            onClick={() => setMethod(m.id)}>{m.label} instead</button>))}
      </div>
      {error && <div className="error" role="alert">{error}</div>}
      <div className="explain-pair" style={{ display: 'flex', gap: '1rem', alignItems: 'flex-start', flexWrap: 'wrap' }}>
        <figure style={{ margin: 0 }}>
          <img src={request.src} alt={request.image} data-testid="explain-image" style={{ width: 256, imageRendering: 'pixelated' }} />
          <figcaption className="muted">the image</figcaption>
        </figure>
        <figure style={{ margin: 0 }}>
          {overlay ? <img src={outputUrl(base, overlay.path)} alt={`${title} of ${request.image}`} data-testid="explain-overlay"
            style={{ width: 256, imageRendering: 'pixelated' }} />
            : <div className="muted" style={{ width: 256 }} data-testid="explain-pending">
              {done ? `No picture: the job ${done.state}${done.message ? ` (${done.message})` : ''}.` : 'Explaining…'}</div>}
          <figcaption className="muted">{title}, {request.note && classIndex !== null && request.names[classIndex] !== undefined
            ? request.names[classIndex] : `class ${className(classIndex)}`}</figcaption>
        </figure>
      </div>
      {job && !done && <JobPanel key={job.job} jobId={job.job} untitled onFinished={() => finished(job.id)} />}
    </Modal>
  )
}

// The post-processing plugins, fetched once per page load (every image menu of the run page asks).
let pluginList: Promise<Plugin[]> | null = null
export function postprocessPlugins(): Promise<Plugin[]> {
  pluginList ??= api<{ results: Plugin[] }>('/api/plugins/?kind=postprocess')
    .then((r) => r.results.filter((p) => p.kind === 'postprocess'))
    .catch((e) => { pluginList = null; throw e })
  return pluginList
}

// An evaluation image to explain: its cell as the evaluation CSV has it, its full-size URL and
// the row's classes (null where unknown).
export interface ExplainTarget { image: string; src: string; predicted: number | null; actual: number | null }

// A contextmenu event that the keyboard fired (the menu key, Shift+F10): Chromium gives button -1,
// the spec a PointerEvent without a pointer type, older browsers (0, 0).
function fromKeyboard(event: React.MouseEvent): boolean {
  const native = event.nativeEvent as MouseEvent & { pointerType?: string }
  return native.button === -1 || native.pointerType === '' || (event.clientX === 0 && event.clientY === 0)
}

interface MenuAt { x: number; y: number; target: ExplainTarget; extra: MenuEntry[]; from: HTMLElement | null }

// The right-click menu of an evaluation image outside the Output result table (the run page's grid,
// the most / least activating images, Why did it fail's picks): Explain with Grad-CAM / LIME / SHAP
// opens ExplainDialog beside the image, for the row's predicted class (the true one a click away).
// `note`: what the dialog says is explained instead of the class line (an anomaly model's score).
// `node` (the menu and the dialog) goes anywhere in the caller's tree.
export function useExplainMenu({ base, names, csv = 'output_result.csv', note }: {
  base: string; names: string[]; csv?: string; note?: string
}): {
  onContextMenu: (event: React.MouseEvent<HTMLElement>, target: ExplainTarget, extra?: MenuEntry[]) => void
  openAt: (el: HTMLElement, target: ExplainTarget, extra?: MenuEntry[]) => void
  explain: (method: ExplainMethod, target: ExplainTarget) => void
  node: ReactNode
} {
  const [plugins, setPlugins] = useState<Plugin[] | null>(null)
  const [failed, setFailed] = useState('')
  const [menu, setMenu] = useState<MenuAt | null>(null)
  const [request, setRequest] = useState<ExplainRequest | null>(null)
  useEffect(() => {
    let alive = true
    postprocessPlugins().then((p) => { if (alive) setPlugins(p) })
      .catch((e) => { if (alive) setFailed((e as ApiError).message) })
    return () => { alive = false }
  }, [])

  const openAt = (el: HTMLElement, target: ExplainTarget, extra: MenuEntry[] = []) => {
    const rect = el.getBoundingClientRect()
    setMenu({ x: rect.left + 8, y: rect.bottom, target, extra, from: el })
  }
  const onContextMenu = (event: React.MouseEvent<HTMLElement>, target: ExplainTarget, extra: MenuEntry[] = []) => {
    event.preventDefault()
    // Focus goes back to the image's own button once the menu closes.
    const from = (event.target as HTMLElement).closest<HTMLElement>('button, [tabindex]') ?? event.currentTarget
    if (fromKeyboard(event)) openAt(from, target, extra)
    else setMenu({ x: event.clientX, y: event.clientY, target, extra, from })
  }
  const close = () => {
    const from = menu?.from
    setMenu(null)
    if (from && document.contains(from)) from.focus()
  }

  const explain = (method: ExplainMethod, target: ExplainTarget) => setRequest({ method, ...target, csv, names, note })
  const entries = (at: MenuAt): MenuEntry[] => [...at.extra, ...EXPLAIN_METHODS.map((m): MenuEntry => {
    const installed = plugins?.some((p) => p.id === m.id) ?? false
    const why = failed ? ` (plugins: ${failed})` : plugins === null ? ' (loading…)' : installed ? '' : ' (not installed)'
    return { type: 'item', id: `explain-${m.id}`, label: `Explain with ${m.label}${why}`,
      testId: `menu-explain-${m.id}`, disabled: Boolean(why),
      onSelect: () => explain(m.id, at.target) }
  })]

  const node = <>
    {menu && <ContextMenu x={menu.x} y={menu.y} label="Image actions" testId="context-menu" entries={entries(menu)}
      onClose={close} />}
    {request && plugins && <ExplainDialog key={`${request.image}/${request.method}`} base={base} plugins={plugins}
      request={request} onClose={() => setRequest(null)} />}
  </>
  return { onContextMenu, openAt, explain, node }
}
