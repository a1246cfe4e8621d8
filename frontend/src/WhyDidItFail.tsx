import { useCallback, useEffect, useRef, useState } from 'react'
import { api, ApiError } from './api'
import { useExplainMenu, type ExplainTarget } from './ExplainDialog'
import { JobPanel } from './JobPanel'
import { parseHeader } from './nncHeader'
import type { Postprocess, TablePage, TableRow } from './types'
import { FINAL_STATES } from './workspace'

const PLUGIN = 'why_did_it_fail'
const KINDS = [
  { id: 'most', label: 'most activating' },
  { id: 'least', label: 'least activating' },
  { id: 'misclassified', label: 'misclassified' },
] as const

// One pick of the plugin's CSV (why, class, kind, rank, index, x, y, predicted, score): `why` is its
// picture (the image, Grad-CAM of the true class, Grad-CAM of the predicted one, side by side),
// `index` the 1-based row of output_result.csv, `score` the row's score of its true class.
interface Pick { full: string; classIndex: number; kind: string; rank: number; row: number
  image: string; imageSrc: string; actual: number; predicted: number; score: number }

function picksOf(page: TablePage): Pick[] {
  const names = page.header.map((h) => parseHeader(h).name)
  const at = (name: string) => names.indexOf(name)
  const [why, cls, kind, rank, index, x, y, predicted, score] =
    ['why', 'class', 'kind', 'rank', 'index', 'x', 'y', 'predicted', 'score'].map(at)
  if ([why, cls, kind, x].some((c) => c < 0)) return []
  return page.rows.map((r: TableRow) => ({
    full: r.links[String(why)] ?? '', classIndex: Number(r.cells[cls]),
    kind: r.cells[kind], rank: Number(r.cells[rank]), row: Number(r.cells[index]) - 1,
    image: r.cells[x], imageSrc: r.links[String(x)] ?? '', actual: Number(r.cells[y]),
    predicted: Number(r.cells[predicted]), score: Number(r.cells[score]),
  })).filter((p) => p.full)
}

// "Why did it fail?" on the evaluation tab: runs the why_did_it_fail plugin on this run (as the
// Plugins menu would, with its defaults), shows its job, then its picks per class: the most and least
// activating images and the misclassified ones, each beside its Grad-CAM overlays for the true and
// the predicted class. The latest run of it is shown again when the page is reopened.
export function WhyDidItFail({ base, names }: { base: string; names: string[] }) {
  const [latest, setLatest] = useState<Postprocess | null | undefined>(undefined)  // undefined: still looking
  const [page, setPage] = useState<TablePage | null>(null)
  const [perClass, setPerClass] = useState(3)
  const [error, setError] = useState('')
  const [starting, setStarting] = useState(false)
  const timers = useRef<number[]>([])
  const menu = useExplainMenu({ base, names })

  // The newest why_did_it_fail of this run; its outputs are recorded as the job ends, so a finished
  // job without them yet is asked again briefly.
  // ended: its job just ended here (its row may trail it by a moment).
  const load = useCallback(async (ended = false, attempt = 0) => {
    try {
      const list = await api<{ results: Postprocess[] }>(`${base}/postprocess/`)
      const found = list.results.find((p) => p.plugin_id === PLUGIN) ?? null
      const pending = found && ((found.state === 'succeeded' && found.outputs.length === 0) ||
        (ended && !FINAL_STATES.includes(found.state)))
      if (pending && attempt < 6) {
        timers.current.push(window.setTimeout(() => load(ended, attempt + 1), 400 * (attempt + 1)))
        return
      }
      setLatest(found)
      const csv = found?.state === 'succeeded' ? found.outputs.find((o) => o.path.toLowerCase().endsWith('.csv')) : undefined
      setPage(csv ? await api<TablePage>(`${base}/table/?${new URLSearchParams({ csv: csv.path, limit: '500' })}`) : null)
    } catch (e) { setError((e as ApiError).message) }
  }, [base])
  useEffect(() => {
    load()
    return () => { timers.current.forEach(clearTimeout) }
  }, [load])

  const start = async () => {
    setError(''); setStarting(true)
    try {
      const queued = await api<Postprocess>(`${base}/postprocess/`, { method: 'POST',
        body: { plugin: PLUGIN, params: { input: 'output_result.csv', model: 'model', per_class: perClass } } })
      setPage(null)
      setLatest(queued)
    } catch (e) {
      const failure = e as ApiError
      const fields = Object.entries(failure.errors ?? {}).map(([k, v]) => `${k}: ${([] as string[]).concat(v).join(' ')}`)
      setError(fields.length ? fields.join('; ') : failure.message)
    } finally { setStarting(false) }
  }

  const running = latest && !FINAL_STATES.includes(latest.state)
  const picks = page ? picksOf(page) : []
  const classes = [...new Set(picks.map((p) => p.classIndex))].sort((a, b) => a - b)
  const className = (c: number) => names[c] ?? String(c)
  const target = (p: Pick): ExplainTarget => ({ image: p.image, src: p.imageSrc, predicted: p.predicted, actual: p.actual })
  const openFull = (p: Pick) => [{ type: 'item' as const, id: 'open-why', label: 'Open the picture full size',
    testId: 'menu-open-why', onSelect: () => window.open(p.full, '_blank', 'noopener') }]

  return (
    <section className="why-did-it-fail" data-testid="why-did-it-fail" aria-labelledby="why-heading">
      <div className="why-head">
        <h4 id="why-heading">Why did it fail?</h4>
        <label className="muted why-per-class-label">per class{' '}
          <input type="number" min={1} max={10} value={perClass} className="why-per-class" data-testid="why-per-class"
            title="images of each kind (most, least activating, misclassified) per class"
            onChange={(e) => setPerClass(Math.max(1, Math.min(10, Number(e.target.value) || 1)))} /></label>
        <button type="button" onClick={start} disabled={Boolean(running) || starting} data-testid="why-start"
          title="Per class: the most and least activating images and the misclassified ones, each beside its Grad-CAM overlays (one job)">
          {latest ? 'Why did it fail? (again)' : 'Why did it fail?'}</button>
        {latest && latest.state !== 'queued' && <span className="muted" data-testid="why-when">
          {running ? 'running' : `${latest.state} · ${new Date(latest.created_at).toLocaleString()}`}</span>}
      </div>
      {error && <div className="error" role="alert" data-testid="why-error">{error}</div>}
      {latest === null && <p className="muted">Per class, the images the model scores highest and lowest and the
        misclassified ones, each with Grad-CAM of its true and of its predicted class.</p>}
      {running && <JobPanel key={latest.job} jobId={latest.job} onFinished={() => load(true)} />}
      {latest && latest.state === 'failed' && <div className="error" role="alert">It failed: {latest.message || 'see its log in Outputs'}</div>}
      {page && (
        <div className="why-result" data-testid="why-result">
          <p className="muted why-legend">Each picture: the image · Grad-CAM of its true class · Grad-CAM of the
            predicted class (the two are alike when it was right). Click or right-click one to explain the image
            with Grad-CAM, LIME or SHAP.</p>
          {classes.map((c) => (
            <div key={c} className="why-class" data-testid={`why-class-${c}`}>
              <h5>{className(c)}</h5>
              {KINDS.map((kind) => {
                const shown = picks.filter((p) => p.classIndex === c && p.kind === kind.id).sort((a, b) => a.rank - b.rank)
                return (
                  <div key={kind.id} className="why-kind" data-testid={`why-${c}-${kind.id}`}>
                    <span className="why-kind-label muted">{kind.label}</span>
                    {shown.length === 0 && <span className="muted">none</span>}
                    {shown.map((p) => (
                      <figure key={p.rank} className={`why-pick ${p.predicted === p.actual ? 'ok' : 'wrong'}`}>
                        <button type="button" className="why-open" aria-haspopup="menu"
                          aria-label={`${kind.label} ${p.rank} of ${className(c)}: row ${p.row}, explain`}
                          onClick={(e) => menu.openAt(e.currentTarget, target(p), openFull(p))}
                          onContextMenu={(e) => menu.onContextMenu(e, target(p), openFull(p))}>
                          <img src={p.full} alt={`${p.image}, Grad-CAM of ${className(c)} and of ${className(p.predicted)}`}
                            data-testid="why-overlay" /></button>
                        <figcaption>row {p.row}, predicted {className(p.predicted)}; score of {className(c)} {(100 * p.score).toFixed(0)}%</figcaption>
                      </figure>))}
                  </div>)
              })}
            </div>))}
          {classes.length === 0 && <p className="muted">No picks: no validation row has a class.</p>}
        </div>)}
      {menu.node}
    </section>
  )
}
