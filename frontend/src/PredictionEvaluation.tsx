import { useEffect, useState } from 'react'
import { api, ApiError } from './api'
import { BokehPlot } from './BokehPlot'
import type { BoxAnnotation } from './BoxedImage'
import { DetectionImage, imageErrors, PREDICTED_COLOUR, TRUTH_COLOUR, type ScoredBox } from './DetectionImage'
import { FilterButton } from './FilterButton'
import { ResultDialog } from './ResultDialog'
import { SegmentationImage, type MaskView } from './SegmentationImage'
import type { Run } from './types'

// One validation image of GET /api/runs/<id>/results/ for a detector or segmenter, worst first.
interface PredictionRow {
  index: number; image: string; truth: string; predicted: string; error: number
  truth_boxes?: BoxAnnotation[]; boxes?: ScoredBox[]; problem?: string
}
interface PredictionPage {
  total: number; start: number; rows: PredictionRow[]; dataset: number; next: number | null
  threshold: number | null; class_names: string[]; palette: string[]; min_score?: number
  detection?: boolean; segmentation?: boolean
}

const PAGE = 24
const pct = (v: number | null | undefined) => (v == null ? '–' : `${(100 * v).toFixed(1)}%`)
const datasetFile = (dataset: number, cell: string, thumb = false) =>
  `/api/datasets/${dataset}/files/${cell.replace(/^\.\//, '').split('/').map(encodeURIComponent).join('/')}${thumb ? '?thumb=1' : ''}`
const runFile = (run: number, relative: string) =>
  `/api/runs/${run}/files/${relative.split('/').map(encodeURIComponent).join('/')}`

// The evaluation of a detector (mAP, AP per class, precision-recall curves; images with predicted
// boxes over truth and a live score threshold) or a segmenter (IoU and accuracy per class, the pixel
// confusion matrix; predicted masks over the images with truth and per-pixel error views).
export function PredictionEvaluation({ run }: { run: Run }) {
  const detection = run.metrics.kind === 'detection'
  return (
    <div className="card" data-testid="prediction-evaluation">
      <h3>Evaluation</h3>
      {detection ? <DetectionMetrics run={run} /> : <SegmentationMetrics run={run} />}
      {run.valid_dataset === null
        ? <p className="muted" data-testid="pred-images-gone">The validation dataset was deleted: its images cannot be shown.</p>
        : <PredictionImages run={run} detection={detection} />}
    </div>
  )
}

function DetectionMetrics({ run }: { run: Run }) {
  const m = run.metrics
  const perClass: { class: string; boxes: number; ap: number | null; ap_50: number | null }[] = m.per_class ?? []
  return (<>
    <table className="grid metrics" data-testid="metrics">
      <thead><tr><th>mAP@0.5</th><th>mAP@[.5:.95]</th><th>mAP@0.75</th><th>score threshold</th></tr></thead>
      <tbody><tr><td data-testid="pred-map50">{pct(m.map_50)}</td><td data-testid="pred-map">{pct(m.map)}</td>
        <td>{pct(m.map_75)}</td><td>{m.threshold ?? '–'}</td></tr></tbody>
    </table>
    {m.backend && <p className="muted pred-note">COCO's definition ({m.backend}); per class below.</p>}
    <div className="pred-columns">
      <table className="grid" data-testid="pred-per-class">
        <thead><tr><th>class</th><th>truth boxes</th><th>AP@0.5</th><th>AP@[.5:.95]</th></tr></thead>
        <tbody>{perClass.map((c) => (
          <tr key={c.class}><td>{c.class}</td><td className="number">{c.boxes}</td>
            <td className="number">{c.ap_50 == null ? <span className="muted" title="no truth box of this class">–</span> : pct(c.ap_50)}</td>
            <td className="number">{c.ap == null ? <span className="muted" title="no truth box of this class">–</span> : pct(c.ap)}</td></tr>))}
        </tbody>
      </table>
      {m.plot && <div className="pred-plot" data-testid="pred-pr-curve">
        <BokehPlot base={`/api/runs/${run.id}`} path={m.plot} onRow={() => undefined} /></div>}
    </div>
  </>)
}

function SegmentationMetrics({ run }: { run: Run }) {
  const m = run.metrics
  const names: string[] = m.class_names ?? []
  const matrix: number[][] = m.confusion_matrix ?? []
  const rowTotals = matrix.map((row) => row.reduce((a, b) => a + b, 0))
  return (<>
    <table className="grid metrics" data-testid="metrics">
      <thead><tr><th>mean IoU</th><th>mean accuracy</th><th>overall accuracy</th></tr></thead>
      <tbody><tr><td data-testid="pred-mean-iou">{pct(m.mean_iou)}</td><td>{pct(m.mean_accuracy)}</td>
        <td>{pct(m.overall_accuracy)}</td></tr></tbody>
    </table>
    <div className="pred-columns">
      <table className="grid" data-testid="pred-per-class">
        <thead><tr><th>class</th><th>truth pixels</th><th>accuracy</th><th>IoU</th></tr></thead>
        <tbody>{names.map((name, k) => (
          <tr key={name + k}><td>{name}</td><td className="number">{(rowTotals[k] ?? 0).toLocaleString()}</td>
            <td className="number">{m.per_category_accuracy?.[k] == null ? <span className="muted" title="no truth pixel of this class">–</span> : pct(m.per_category_accuracy[k])}</td>
            <td className="number">{m.per_category_iou?.[k] == null ? <span className="muted" title="neither in truth nor predicted">–</span> : pct(m.per_category_iou[k])}</td></tr>))}
        </tbody>
      </table>
      <div>
        <h4>Pixel confusion matrix <span className="muted">(rows: truth, columns: predicted; share of the row)</span></h4>
        <table className="confusion pred-confusion" data-testid="pred-confusion">
          <thead><tr><th></th>{names.map((n, k) => <th key={n + k}>{n}</th>)}</tr></thead>
          <tbody>{matrix.map((row, a) => (
            <tr key={a}><th>{names[a] ?? a}</th>{row.map((count, p) => {
              const share = rowTotals[a] ? count / rowTotals[a] : 0
              return (
                <td key={p} className={a === p ? 'diag' : undefined} data-testid={`pred-cm-${a}-${p}`}
                  style={{ background: `rgba(31,78,140,${share * 0.8})`, color: share > 0.5 ? '#fff' : '#000' }}>
                  {count.toLocaleString()}<span className="cm-pct"> {pct(share)}</span></td>)
            })}</tr>))}</tbody>
        </table>
      </div>
    </div>
  </>)
}

// The validation images, worst first, a page at a time; the threshold (detection) or the view and
// opacity (segmentation) apply to every image at once and only redraw.
function PredictionImages({ run, detection }: { run: Run; detection: boolean }) {
  const [start, setStart] = useState(0)
  const wanted = `/api/runs/${run.id}/results/?start=${start}&limit=${PAGE}`
  const [shown, setShown] = useState<{ url: string; page: PredictionPage | null; error: string } | null>(null)
  const page = shown?.page ?? null
  const runThreshold: number = run.metrics.threshold ?? 0.5
  const [threshold, setThreshold] = useState(runThreshold)
  const [view, setView] = useState<MaskView>('prediction')
  const [opacity, setOpacity] = useState(0.6)
  const [opened, setOpened] = useState<number | null>(null)

  useEffect(() => {
    let latest = true
    api<PredictionPage>(wanted).then((p) => { if (latest) setShown({ url: wanted, page: p, error: '' }) })
      .catch((e) => {
        if (!latest) return
        const status = (e as ApiError).status
        setShown({ url: wanted, page: null, error: status === 404
          ? 'The evaluation images cannot be shown: the run has no evaluation output (evaluate it again).'
          : `The evaluation images cannot be shown: ${(e as Error).message}` })
      })
    return () => { latest = false }
  }, [wanted])
  useEffect(() => setOpened(null), [start])

  const minScore = page?.min_score ?? 0
  const classes: string[] = page?.class_names ?? run.metrics.class_names ?? []
  const palette = page?.palette ?? []
  const rows = page?.rows ?? []
  const boxesShown = rows.reduce((n, r) => n + (r.boxes ?? []).filter((b) => b.score >= threshold).length, 0)
  const boxesKept = rows.reduce((n, r) => n + (r.boxes ?? []).length, 0)

  const image = (row: PredictionRow, large: boolean) => detection
    ? <DetectionImage src={datasetFile(page!.dataset, row.image, !large)} truth={row.truth_boxes ?? []}
      predicted={row.boxes ?? []} threshold={threshold} classes={classes} large={large} truthLabels={large} />
    : <SegmentationImage src={datasetFile(page!.dataset, row.image)} truth={datasetFile(page!.dataset, row.truth)}
      predicted={runFile(run.id, row.predicted)} palette={palette} view={view} opacity={opacity} large={large} />
  const errorsAt = (row: PredictionRow) => imageErrors(row.boxes ?? [], row.truth_boxes ?? [], threshold)
  const caption = (row: PredictionRow) => detection
    ? <><span data-testid="pred-errors">{errorsAt(row)}</span> {errorsAt(row) === 1 ? 'error' : 'errors'}
      <span className="muted"> · {(row.boxes ?? []).filter((b) => b.score >= threshold).length} predicted, {(row.truth_boxes ?? []).length} true</span></>
    : <><span data-testid="pred-errors">{pct(row.error)}</span> pixels wrong</>

  const controls = detection ? (
    <div className="threshold-bar pred-controls">
      <label>Score threshold <input type="range" min={minScore} max={1} step={0.01} value={threshold}
        onChange={(e) => setThreshold(Number(e.target.value))} data-testid="pred-threshold" /></label>
      <code data-testid="pred-threshold-value">{threshold.toFixed(2)}</code>
      <button className="secondary" onClick={() => setThreshold(runThreshold)} disabled={threshold === runThreshold}>
        Run's threshold ({runThreshold})</button>
      <span className="pred-legend"><span className="pred-swatch" style={{ borderColor: TRUTH_COLOUR }} /> truth
        <span className="pred-swatch dashed" style={{ borderColor: PREDICTED_COLOUR }} /> predicted (class, score)</span>
    </div>
  ) : (
    <div className="threshold-bar pred-controls">
      <span role="group" aria-label="Mask shown" className="filter-group">
        <FilterButton active={view === 'prediction'} onClick={() => setView('prediction')} testId="pred-view-prediction">Prediction</FilterButton>
        <FilterButton active={view === 'truth'} onClick={() => setView('truth')} testId="pred-view-truth">Truth</FilterButton>
        <FilterButton active={view === 'error'} onClick={() => setView('error')} testId="pred-view-error"
          title="pixels predicted wrong in red (ignored pixels left out)">Errors</FilterButton>
      </span>
      <label>Opacity <input type="range" min={0} max={1} step={0.05} value={opacity}
        onChange={(e) => setOpacity(Number(e.target.value))} data-testid="pred-opacity" /></label>
      <code>{Math.round(opacity * 100)}%</code>
      {view !== 'error' && palette.length > 0 && <span className="pred-legend">{classes.map((name, k) => (
        <span key={name + k}><span className="pred-swatch filled" style={{ background: palette[k] }} /> {name}</span>))}</span>}
      {view === 'error' && <span className="pred-legend"><span className="pred-swatch filled" style={{ background: '#d62728' }} /> wrong pixel</span>}
    </div>
  )

  return (
    <div data-testid="pred-images">
      <h4>Images, worst first <span className="muted">({detection ? 'most wrong and missed boxes at the run\'s threshold' : 'largest share of wrong pixels'})</span></h4>
      {controls}
      {detection && page && (
        <p className="muted pred-note" data-testid="pred-shown-count">
          {boxesShown} of {boxesKept} predicted boxes on this page at or above {threshold.toFixed(2)}
          {minScore > 0 && ` (the evaluation keeps boxes scoring ${minScore} or more: the slider starts there)`}.
          The threshold here only changes what is drawn; the run keeps its own.</p>)}
      {shown?.error && <div className="error" role="alert" data-testid="pred-images-error">{shown.error}</div>}
      {page && (
        <div className="pager">
          <span data-testid="pred-count">{page.total ? `Images ${page.start + 1}–${page.start + page.rows.length} of ${page.total}` : 'No images'}</span>
          {page.start > 0 && <button className="secondary" onClick={() => setStart(Math.max(0, start - PAGE))}>Previous</button>}
          {page.next != null && <button className="secondary" onClick={() => setStart(page.next!)} data-testid="pred-next">Next</button>}
        </div>)}
      {page && (
        <div className="pred-grid" data-testid="pred-rows" aria-busy={shown?.url !== wanted}>
          {page.rows.map((row, position) => (
            <figure key={row.index} data-row={row.index} data-error={row.error}>
              <button type="button" className="figure-open" onClick={() => setOpened(position)}
                aria-label={`Open row ${row.index} larger`} title="Open larger">{image(row, false)}</button>
              <figcaption>#{row.index} · {caption(row)}</figcaption>
              {row.problem && <div className="pred-problem" role="alert" data-testid="pred-problem">{row.problem}</div>}
            </figure>))}
        </div>)}
      {page && opened !== null && page.rows[opened] && (() => {
        const row = page.rows[opened]
        return (
          <ResultDialog title={`Row ${row.index}: ${row.image.replace(/^\.\//, '')}`} images={[]} onClose={() => setOpened(null)}
            testId="pred-dialog" onPrevious={opened > 0 ? () => setOpened(opened - 1) : undefined}
            onNext={opened < page.rows.length - 1 ? () => setOpened(opened + 1) : undefined}>
            {controls}
            <div className="pred-dialog-image">{image(row, true)}</div>
            <p>{caption(row)}</p>
            {row.problem && <div className="pred-problem" role="alert">{row.problem}</div>}
            {detection && <BoxTable row={row} classes={classes} threshold={threshold} />}
          </ResultDialog>)
      })()}
    </div>
  )
}

// The boxes of one image: truth, then every kept prediction (those under the threshold greyed).
function BoxTable({ row, classes, threshold }: { row: PredictionRow; classes: string[]; threshold: number }) {
  const name = (cls: number) => classes[cls] ?? `class ${cls}`
  const place = (b: BoxAnnotation) => `${b.cx.toFixed(3)}, ${b.cy.toFixed(3)}, ${b.w.toFixed(3)}, ${b.h.toFixed(3)}`
  return (
    <table className="grid pred-box-table" data-testid="pred-box-table">
      <thead><tr><th></th><th>class</th><th>score</th><th>cx, cy, w, h (share of the image)</th></tr></thead>
      <tbody>
        {(row.truth_boxes ?? []).map((b, i) => <tr key={`t${i}`}><td>truth</td><td>{name(b.cls)}</td><td></td><td>{place(b)}</td></tr>)}
        {(row.boxes ?? []).map((b, i) => (
          <tr key={`p${i}`} className={b.score < threshold ? 'pred-below' : undefined}>
            <td>predicted</td><td>{name(b.cls)}</td><td className="number">{b.score.toFixed(3)}</td><td>{place(b)}</td></tr>))}
      </tbody>
    </table>
  )
}
