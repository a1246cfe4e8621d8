import { useEffect, useMemo, useState } from 'react'
import { api, ApiError } from './api'
import { useExplainMenu } from './ExplainDialog'
import { FilterButton } from './FilterButton'
import { parseHeader } from './nncHeader'
import { ResultDialog } from './ResultDialog'
import type { Run } from './types'

interface AnomalyRow { index: number; image: string; heatmap: string; score: number; label: number | null }
interface AnomalyPage {
  total: number; start: number; rows: AnomalyRow[]; dataset: number; next: number | null
  all_scores?: number[]; all_labels?: number[] | null
}

const PAGE = 40
// Grad-CAM, LIME and SHAP explain the model's one output here, the image anomaly score (as class 0).
export const SCORE_NAMES = ['anomaly score']
export const EXPLAINED_SCORE = 'Explained: the image anomaly score (the model\'s only output, class 0): what raised it. ' +
  'The anomaly map (open the image larger) shows where the image differs from the normal ones.'
const COLOURS = { normal: '#1f77b4', anomalous: '#d62728', all: '#7f7f7f' }

function counts(scores: number[], labels: number[] | null, threshold: number) {
  let tp = 0, fp = 0, fn = 0, tn = 0, flagged = 0
  scores.forEach((s, i) => {
    const hit = s >= threshold
    if (hit) flagged++
    if (!labels) return
    if (hit && labels[i] === 1) tp++
    else if (hit) fp++
    else if (labels[i] === 1) fn++
    else tn++
  })
  const precision = tp + fp ? tp / (tp + fp) : 0
  const recall = tp + fn ? tp / (tp + fn) : 0
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0
  return { tp, fp, fn, tn, flagged, precision, recall, f1 }
}

const datasetFile = (dataset: number, cell: string) =>
  `/api/datasets/${dataset}/files/${cell.replace(/^\.\//, '').split('/').map(encodeURIComponent).join('/')}`

// Images per anomaly score, per label (SVG bars of heights proportional to their counts) with the
// threshold as a vertical line.
function ScoreHistogram({ histogram, threshold }: { histogram: { edges: number[]; counts: Record<string, number[]> }; threshold: number }) {
  const { edges } = histogram
  const series = Object.entries(histogram.counts)
  const top = Math.max(1, ...series.flatMap(([, c]) => c))
  const width = 480, height = 140, lo = edges[0], hi = edges[edges.length - 1]
  const x = (v: number) => ((v - lo) / (hi - lo || 1)) * width
  const bin = width / (edges.length - 1)
  return (
    <svg className="score-histogram" viewBox={`0 -4 ${width} ${height + 22}`} data-testid="score-histogram">
      {series.map(([key, values], s) => values.map((count, i) => count > 0 && (
        <rect key={`${key}${i}`} x={i * bin + (s * bin) / series.length} width={bin / series.length - 1}
          y={height - (count / top) * height} height={(count / top) * height}
          fill={key === '1' ? COLOURS.anomalous : key === '0' ? COLOURS.normal : COLOURS.all} opacity={0.85}>
          <title>{`${key === '1' ? 'anomalous' : key === '0' ? 'normal' : 'images'}: ${count} with scores ${edges[i].toFixed(3)}–${edges[i + 1].toFixed(3)}`}</title>
        </rect>)))}
      <line x1={x(threshold)} x2={x(threshold)} y1={-4} y2={height} stroke="#000" strokeWidth={2} strokeDasharray="4 2" />
      <line x1={0} x2={width} y1={height} y2={height} stroke="#999" />
      <text x={width - 2} y={8} fontSize={11} fill="#6b7585" textAnchor="end" data-testid="score-histogram-top">
        tallest bar: {top} {top === 1 ? 'image' : 'images'}</text>
      <text x={0} y={height + 16} fontSize={11}>{lo.toFixed(3)}</text>
      <text x={width} y={height + 16} fontSize={11} textAnchor="end">{hi.toFixed(3)}</text>
    </svg>
  )
}

export function AnomalyEvaluation({ run, onSaved }: { run: Run; onSaved: (run: Run) => void }) {
  const m = run.metrics
  const suggested: number = m.threshold
  const [threshold, setThreshold] = useState<number>(m.chosen_threshold ?? suggested)
  const [all, setAll] = useState<{ scores: number[]; labels: number[] | null } | null>(null)
  const [page, setPage] = useState<AnomalyPage | null>(null)
  const [start, setStart] = useState(0)
  const [filter, setFilter] = useState<'all' | 'flagged' | 'passed'>('all')
  const [message, setMessage] = useState('')
  const [opened, setOpened] = useState<number | null>(null)  // the position in page.rows of the image opened larger
  const [low, high] = m.score_range as [number, number]
  const step = (high - low) / 1000 || 0.001
  // The browser's range arithmetic can land a hair off its ends: at an end, the exact lowest (every
  // image flagged) or highest score is meant.
  const snapToEnds = (v: number) => (v - low < step / 2 ? low : high - v < step / 2 ? high : v)

  useEffect(() => {
    const query = new URLSearchParams({ start: String(start), limit: String(PAGE) })
    if (filter !== 'all') { query.set('threshold', String(threshold)); query.set('flagged', filter === 'flagged' ? '1' : '0') }
    api<AnomalyPage>(`/api/runs/${run.id}/results/?${query}`).then((p) => {
      setPage(p)
      if (p.all_scores) setAll({ scores: p.all_scores, labels: p.all_labels ?? null })
    }).catch(() => setPage(null))
    // The rows only depend on the threshold when they are filtered by it.
  }, [run.id, start, filter, filter === 'all' ? 0 : threshold])

  useEffect(() => setOpened(null), [start])  // another page: the opened position means another image
  const live = useMemo(() => all && counts(all.scores, all.labels, threshold), [all, threshold])
  const pct = (v: number | null | undefined) => (v == null ? '–' : `${(100 * v).toFixed(1)}%`)
  const save = async () => {
    try {
      onSaved(await api<Run>(`/api/runs/${run.id}/threshold/`, { method: 'POST', body: { threshold } }))
      setMessage('Threshold saved: the model bundle uses it from now on.')
    } catch (e) { setMessage((e as ApiError).message) }
  }
  const fileUrl = (relative: string) => `/api/runs/${run.id}/files/${relative}`
  const choose = (f: typeof filter) => { setStart(0); setFilter(f); setOpened(null) }
  // Right-click an image: Explain with Grad-CAM / LIME / SHAP as in a classifier's evaluation, of the
  // image anomaly score (the bundle's one output; the dialog says so instead of naming a class).
  const menu = useExplainMenu({ base: `/api/runs/${run.id}`, names: SCORE_NAMES, note: EXPLAINED_SCORE })

  return (
    <div className="card" data-testid="anomaly-evaluation">
      <h3>Evaluation</h3>
      {(m.warnings ?? []).map((w: string) => <div className="warning" key={w}>{w}</div>)}
      <table className="grid metrics" data-testid="metrics">
        <thead><tr><th>images</th><th>image AUROC</th><th>pixel AUROC</th><th>suggested threshold</th></tr></thead>
        <tbody><tr><td>{m.images}</td><td data-testid="image-auroc">{pct(m.image_auroc)}</td>
          <td data-testid="pixel-auroc">{pct(m.pixel_auroc)}</td>
          <td title={m.threshold_method}>{suggested.toFixed(4)}</td></tr></tbody>
      </table>
      <h4>Images per anomaly score <span className="muted">(blue normal, red anomalous; dashed line: threshold)</span></h4>
      <ScoreHistogram histogram={m.histogram} threshold={threshold} />
      <div className="threshold-bar">
        <label>Threshold <input type="range" min={low} max={high} step={step} value={threshold}
          onChange={(e) => setThreshold(snapToEnds(Number(e.target.value)))} data-testid="threshold-slider" /></label>
        <code data-testid="threshold-value">{threshold.toFixed(4)}</code>
        <button className="secondary" onClick={() => setThreshold(suggested)}>Suggested</button>
        <button onClick={save} data-testid="save-threshold">Save threshold</button>
        {message && <span className="muted">{message}</span>}
      </div>
      {live && (
        <p data-testid="threshold-counts">
          <strong>{live.flagged}</strong> of {all!.scores.length} images flagged anomalous
          {all!.labels && <> · precision {pct(live.precision)} · recall {pct(live.recall)} · F1 {pct(live.f1)} ·
            TP {live.tp} · FP {live.fp} · FN {live.fn} · TN {live.tn}</>}
        </p>
      )}
      <div className="pager">
        <span role="group" aria-label="Show" className="filter-group">
          <FilterButton active={filter === 'all'} onClick={() => choose('all')} testId="show-all">All (by score)</FilterButton>
          <FilterButton active={filter === 'flagged'} onClick={() => choose('flagged')} testId="show-flagged"
            title="score at or above the threshold">Flagged</FilterButton>
          <FilterButton active={filter === 'passed'} onClick={() => choose('passed')} testId="show-passed"
            title="score below the threshold">Passed</FilterButton>
        </span>
        {page && <span data-testid="result-count">{page.total} rows</span>}
        {page && page.start > 0 && <button className="secondary" onClick={() => setStart(Math.max(0, start - PAGE))}>Previous</button>}
        {page?.next != null && <button className="secondary" onClick={() => setStart(page.next!)}>Next</button>}
      </div>
      {page && (
        <div className="result-grid anomaly-grid" data-testid="result-rows">
          {page.rows.map((r, position) => {
            const flagged = r.score >= threshold
            const verdict = r.label == null ? '' : (r.label === 1) === flagged ? 'ok' : 'wrong'
            return (
              <figure key={r.index} className={`${verdict} ${flagged ? 'flagged' : 'passed'}`} data-row={r.index}
                onContextMenu={(e) => menu.onContextMenu(e, { image: r.image, src: datasetFile(page.dataset, r.image), predicted: 0, actual: null },
                  [{ type: 'item', id: 'open', label: 'Open larger, with its anomaly map', testId: 'menu-open-image',
                    onSelect: () => setOpened(position) }])}>
                <button type="button" className="figure-open" onClick={() => setOpened(position)}
                  title="Open larger, with its score" aria-label={`Open row ${r.index} larger`}>
                  <img className="heat" src={fileUrl(r.heatmap)} alt={r.image} /></button>
                <figcaption>{r.score.toFixed(3)} · {flagged ? 'anomalous' : 'normal'}
                  {r.label != null && <span className="muted"> (label {r.label === 1 ? 'anomalous' : 'normal'})</span>}</figcaption>
              </figure>)
          })}
        </div>
      )}
      {page && opened !== null && page.rows[opened] && (
        <AnomalyResultDialog row={page.rows[opened]} dataset={page.dataset} heatmap={fileUrl(page.rows[opened].heatmap)}
          threshold={threshold} onClose={() => setOpened(null)}
          onPrevious={opened > 0 ? () => setOpened(opened - 1) : undefined}
          onNext={opened < page.rows.length - 1 ? () => setOpened(opened + 1) : undefined} />
      )}
      {menu.node}
      <h4>Most anomalous images</h4>
      <img className="tile" src={fileUrl('most_anomalous.png')} alt="most anomalous images" data-testid="most-anomalous" />
    </div>
  )
}

// One evaluation image larger: its anomaly map, and the image with its ground-truth defect (the
// dataset's mask, painted on the defect pixels only), with the score against the threshold.
function AnomalyResultDialog({ row, dataset, heatmap, threshold, onClose, onPrevious, onNext }: {
  row: AnomalyRow; dataset: number; heatmap: string; threshold: number; onClose: () => void
  onPrevious?: () => void; onNext?: () => void
}) {
  const [mask, setMask] = useState<string | null | undefined>(undefined)  // undefined: still looking
  useEffect(() => {
    let live = true
    setMask(undefined)
    api<{ header: string[]; rows: { cells: string[] }[] }>(`/api/datasets/${dataset}/rows/?start=${row.index}&limit=1`)
      .then((p) => {
        const column = p.header.findIndex((h) => parseHeader(h).name === 'mask')
        const cell = column >= 0 ? p.rows[0]?.cells[column] : undefined
        if (live) setMask(cell ? datasetFile(dataset, cell) : null)
      }).catch(() => { if (live) setMask(null) })
    return () => { live = false }
  }, [dataset, row.index])
  const flagged = row.score >= threshold
  const label = row.label == null ? null : row.label === 1 ? 'anomalous' : 'normal'
  const defective = row.label !== 0  // a normal image has no defect to show (its mask is empty)
  return (
    <ResultDialog title={`Row ${row.index}: ${row.image}`} onClose={onClose} onPrevious={onPrevious} onNext={onNext}
      images={[
        { src: heatmap, caption: 'Anomaly map', testId: 'result-heatmap' },
        { src: datasetFile(dataset, row.image), overlay: mask && defective ? `${mask}?overlay=1` : undefined, testId: 'result-image',
          caption: !defective ? 'Image' : mask ? 'Image, ground-truth defect in red' : mask === null ? 'Image (no defect mask)' : 'Image' },
      ]}>
      <table className="grid metrics" data-testid="result-scores">
        <thead><tr><th>anomaly score</th><th>threshold</th><th>verdict</th><th>label</th></tr></thead>
        <tbody><tr><td data-testid="result-score">{row.score.toFixed(4)}</td><td>{threshold.toFixed(4)}</td>
          <td>{flagged ? 'anomalous (flagged)' : 'normal (passed)'}</td>
          <td>{label ?? '—'}{label && <span className="muted"> {(label === 'anomalous') === flagged ? '✓ right' : '✗ wrong'}</span>}</td></tr></tbody>
      </table>
    </ResultDialog>
  )
}
