import { useEffect, useMemo, useState } from 'react'
import { api, ApiError } from './api'
import type { Run } from './types'

interface AnomalyRow { index: number; image: string; heatmap: string; score: number; label: number | null }
interface AnomalyPage {
  total: number; start: number; rows: AnomalyRow[]; dataset: number; next: number | null
  all_scores?: number[]; all_labels?: number[] | null
}

const PAGE = 40
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

// Score histogram per label (SVG bars) with the threshold as a vertical line.
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
  const [low, high] = m.score_range as [number, number]

  useEffect(() => {
    const query = new URLSearchParams({ start: String(start), limit: String(PAGE) })
    if (filter !== 'all') { query.set('threshold', String(threshold)); query.set('flagged', filter === 'flagged' ? '1' : '0') }
    api<AnomalyPage>(`/api/runs/${run.id}/results/?${query}`).then((p) => {
      setPage(p)
      if (p.all_scores) setAll({ scores: p.all_scores, labels: p.all_labels ?? null })
    }).catch(() => setPage(null))
    // The rows only depend on the threshold when they are filtered by it.
  }, [run.id, start, filter, filter === 'all' ? 0 : threshold])

  const live = useMemo(() => all && counts(all.scores, all.labels, threshold), [all, threshold])
  const pct = (v: number | null | undefined) => (v == null ? '–' : `${(100 * v).toFixed(1)}%`)
  const save = async () => {
    try {
      onSaved(await api<Run>(`/api/runs/${run.id}/threshold/`, { method: 'POST', body: { threshold } }))
      setMessage('Threshold saved: the model bundle uses it from now on.')
    } catch (e) { setMessage((e as ApiError).message) }
  }
  const fileUrl = (relative: string) => `/api/runs/${run.id}/files/${relative}`
  const choose = (f: typeof filter) => { setStart(0); setFilter(f) }

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
      <h4>Scores per label <span className="muted">(blue normal, red anomalous; dashed line: threshold)</span></h4>
      <ScoreHistogram histogram={m.histogram} threshold={threshold} />
      <div className="threshold-bar">
        <label>Threshold <input type="range" min={low} max={high} step={(high - low) / 1000 || 0.001} value={threshold}
          onChange={(e) => setThreshold(Number(e.target.value))} data-testid="threshold-slider" /></label>
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
        <button className="secondary" onClick={() => choose('all')}>All (by score)</button>
        <button className="secondary" onClick={() => choose('flagged')} data-testid="show-flagged">Flagged</button>
        <button className="secondary" onClick={() => choose('passed')}>Passed</button>
        {page && <span data-testid="result-count">{page.total} rows</span>}
        {page && page.start > 0 && <button className="secondary" onClick={() => setStart(Math.max(0, start - PAGE))}>Previous</button>}
        {page?.next != null && <button className="secondary" onClick={() => setStart(page.next!)}>Next</button>}
      </div>
      {page && (
        <div className="result-grid anomaly-grid" data-testid="result-rows">
          {page.rows.map((r) => {
            const flagged = r.score >= threshold
            const verdict = r.label == null ? '' : (r.label === 1) === flagged ? 'ok' : 'wrong'
            return (
              <figure key={r.index} className={`${verdict} ${flagged ? 'flagged' : 'passed'}`} data-row={r.index}>
                <a href={fileUrl(r.heatmap)} target="_blank" rel="noreferrer">
                  <img className="heat" src={fileUrl(r.heatmap)} alt={r.image} /></a>
                <figcaption>{r.score.toFixed(3)} · {flagged ? 'anomalous' : 'normal'}
                  {r.label != null && <span className="muted"> (label {r.label === 1 ? 'anomalous' : 'normal'})</span>}</figcaption>
              </figure>)
          })}
        </div>
      )}
      <h4>Most anomalous images</h4>
      <img className="tile" src={fileUrl('most_anomalous.png')} alt="most anomalous images" data-testid="most-anomalous" />
    </div>
  )
}
