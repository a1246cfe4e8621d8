import { useCallback, useEffect, useRef, useState } from 'react'
import { api, ApiError } from './api'
import { ConfirmDialog } from './ConfirmDialog'
import { navigate } from './hooks'
import { JobPanel } from './JobPanel'
import { NameDialog } from './NameDialog'
import { RunSettings } from './runSummary'
import { LearningCurves, type CurvesHandle } from './LearningCurves'
import { FilterButton } from './FilterButton'
import { PreparedDownload } from './PreparedDownload'
import { ResultGrid, type ClassifiedRow } from './ResultGrid'
import type { ExternalFilter, Job, JobEvent, Run, TableFilter } from './types'
import { ClassHistogram } from './BoxedImage'
import { AnomalyEvaluation } from './AnomalyEvaluation'
import { PredictionEvaluation } from './PredictionEvaluation'
import { EvaluationWorkspace } from './EvaluationWorkspace'
import { ServeButtons } from './EndpointsList'
import { useExplainMenu } from './ExplainDialog'
import { WhyDidItFail } from './WhyDidItFail'

type ResultRow = ClassifiedRow
interface ResultPage { total: number; start: number; rows: ResultRow[]; dataset: number; next: number | null }

const fileUrl = (dataset: number, cell: string, thumb = true) =>
  `/api/datasets/${dataset}/files/${cell.replace(/^\.\//, '').split('/').map(encodeURIComponent).join('/')}${thumb ? '?thumb=1' : ''}`

const FINAL_STATES = ['succeeded', 'failed', 'cancelled']
// Fitted on normal images in one pass: no epochs, so no learning curves.
const ANOMALY_PLUGINS = ['padim', 'patchcore']

export function RunPage({ runId }: { runId: number }) {
  const [run, setRun] = useState<Run | null>(null)
  const [loadError, setLoadError] = useState<ApiError | null>(null)
  const [error, setError] = useState('')  // of an action (evaluate, resume, ...): shown on the page
  const [dialog, setDialog] = useState<'rename' | 'delete' | null>(null)
  const curves = useRef<CurvesHandle>(null)
  const [evaluationJob, setEvaluationJob] = useState<number | null>(null)
  const [tableFilter, setTableFilter] = useState<ExternalFilter | null>(null)
  const [evaluations, setEvaluations] = useState(0)  // a new evaluation rewrites output_result.csv

  const load = useCallback(() => {
    api<Run>(`/api/runs/${runId}/`).then((r) => { setRun(r); setLoadError(null) }).catch((e) => setLoadError(e as ApiError))
  }, [runId])
  useEffect(load, [load])

  // The curves take the job's events as they stream: per-step losses, and each epoch once complete.
  const onEvents = (events: JobEvent[]) => curves.current?.addEvents(runId, events)

  const evaluate = async () => {
    setError('')
    try { setEvaluationJob((await api<Job>(`/api/runs/${runId}/evaluate/`, { method: 'POST' })).id) }
    catch (e) { setError((e as ApiError).message) }
  }

  const resume = async () => {
    setError('')
    try { setRun(await api<Run>(`/api/runs/${runId}/resume/`, { method: 'POST' })) } catch (e) { setError((e as ApiError).message) }
  }

  const rename = async (name: string) => {
    setRun(await api<Run>(`/api/runs/${runId}/`, { method: 'PATCH', body: { name } }))
    setDialog(null)
  }
  const remove = async () => {
    await api(`/api/runs/${runId}/`, { method: 'DELETE' })
    navigate(`/projects/${run?.project}`)
  }

  if (!run) {
    return <div className="page"><p><a href="#/projects">← Projects</a></p>
      {loadError ? <div className="error" role="alert">{loadError.status === 404 ? 'This run does not exist (it may have been deleted).' : loadError.message}</div> : 'Loading…'}</div>
  }
  const anomaly = run.metrics.kind === 'anomaly'
  const boxesOrMasks = ['detection', 'segmentation'].includes(run.metrics.kind)
  const evaluated = run.metrics.accuracy !== undefined || run.metrics.rmse !== undefined || anomaly || boxesOrMasks
  const deleted = run.deleted_datasets ?? {}
  const validGone = run.valid_dataset === null
  return (
    <div className="page">
      <p><a href={`#/projects/${run.project}`}>← Project {run.project_name ?? ''}</a></p>
      <div className="page-head">
        <h2 data-testid="run-title">{run.name ?? `Run ${run.id}`}</h2>
        <span className="muted">{run.plugin_id}</span>
        <span className="spacer" />
        <button className="secondary" onClick={() => setDialog('rename')}>Rename</button>
        <button className="danger" onClick={() => setDialog('delete')}>Delete run</button>
        {run.can_resume && <button onClick={resume}>Resume from checkpoint</button>}
        {evaluated && <>
          {!validGone && <button className="secondary" onClick={evaluate}>Evaluate again</button>}
          <PreparedDownload href={`/api/runs/${run.id}/bundle/`} label="Download model" fallbackName={`run${run.id}-model.zip`}
            testId="export-bundle" />
          <ServeButtons run={run} /></>}
        {run.exportable && <>
          <PreparedDownload href={`/api/runs/${run.id}/export/?to=torchscript`} label="TorchScript"
            fallbackName={`run${run.id}-model.pt`} testId="export-torchscript" />
          <PreparedDownload href={`/api/runs/${run.id}/export/?to=onnx`} label="ONNX"
            fallbackName={`run${run.id}-model.onnx`} testId="export-onnx" /></>}
      </div>
      <RunSettings run={run} />
      {error && <div className="error" role="alert" data-testid="action-error">{error}
        <button className="secondary small" onClick={() => setError('')}>Dismiss</button></div>}
      {(deleted.train_dataset || deleted.valid_dataset || validGone || run.train_dataset === null) && (
        <div className="warning" role="status" data-testid="run-dataset-deleted">
          {deleted.train_dataset || run.train_dataset === null ? `The training dataset${deleted.train_dataset ? ` “${deleted.train_dataset}”` : ''} of this run was deleted: it cannot be resumed. ` : ''}
          {validGone ? `The validation dataset${deleted.valid_dataset ? ` “${deleted.valid_dataset}”` : ''} was deleted: the scores below stay, but its images are gone and the run cannot be evaluated again.` : ''}
        </div>)}
      {run.job && <JobPanel key={run.job} jobId={run.job} onEvents={onEvents}
        onFinished={() => { if (!FINAL_STATES.includes(run.state)) load() }} />}
      {evaluationJob && <JobPanel key={`e${evaluationJob}`} jobId={evaluationJob}
        onFinished={() => { load(); setEvaluations((n) => n + 1) }} />}
      {!ANOMALY_PLUGINS.includes(run.plugin_id) && <LearningCurves ref={curves} runIds={[run.id]} />}
      {evaluated && (
        <EvaluationWorkspace key={`${run.id}-${evaluations}`} base={`/api/runs/${run.id}`} tableLabel="Output result"
          tableFilter={tableFilter} defaultThreshold={anomaly ? (run.metrics.chosen_threshold ?? run.metrics.threshold) : undefined}
          metrics={<>
            {anomaly && <AnomalyEvaluation key={`${run.id}-${run.job}-${run.metrics.score_range}`} run={run} onSaved={setRun} />}
            {run.metrics.accuracy !== undefined && <Evaluation run={run} imagesGone={validGone}
              onFilter={(filter, show) => setTableFilter({ filter, show })} />}
            {run.metrics.rmse !== undefined && <RegressionEvaluation run={run} />}
            {['detection', 'segmentation'].includes(run.metrics.kind) && <PredictionEvaluation run={run} />}
          </>} />
      )}
      {dialog === 'rename' && <NameDialog title={`Rename ${run.name ?? `run ${run.id}`}`} label="New name"
        initial={run.name ?? ''} submitLabel="Rename" hint="Any words (at most 64 characters); unique in its project."
        onSubmit={rename} onClose={() => setDialog(null)} testId="rename-dialog" />}
      {dialog === 'delete' && <ConfirmDialog title={`Delete ${run.name ?? `run ${run.id}`}?`} confirmLabel="Delete run"
        onConfirm={remove} onClose={() => setDialog(null)}>
        <p>Its model, results and post-processing outputs are deleted. This cannot be undone.</p>
        {['queued', 'running'].includes(run.state) && <p className="warning">It is still {run.state}: its job is cancelled first.</p>}
      </ConfirmDialog>}
    </div>
  )
}

// onFilter: the rows chosen here (confusion-matrix cell, misclassified) for the Output result table;
// show asks to switch to it.
function Evaluation({ run, onFilter, imagesGone = false }: {
  run: Run; onFilter: (filter: TableFilter, show: boolean) => void; imagesGone?: boolean
}) {
  const m = run.metrics
  const names: string[] = m.class_names
  const [filter, setFilter] = useState<{ actual?: number; predicted?: number; misclassified?: boolean }>({})
  const [start, setStart] = useState(0)
  const query = new URLSearchParams({ start: String(start), limit: '40' })
  if (filter.actual !== undefined) query.set('actual', String(filter.actual))
  if (filter.predicted !== undefined) query.set('predicted', String(filter.predicted))
  if (filter.misclassified) query.set('misclassified', '1')
  const wanted = `/api/runs/${run.id}/results/?${query}`
  // The page remembers which request it answers: until the latest choice's answer is in, the grid is
  // marked busy, and a slower answer to an earlier click never replaces it.
  const [shown, setShown] = useState<{ url: string; page: ResultPage | null } | null>(null)
  const page = shown?.page ?? null
  const [images, setImages] = useState(false)  // an image classifier's rows: Why did it fail applies

  useEffect(() => {
    if (imagesGone) return  // the rows are the validation dataset's: nothing to page through
    let latest = true
    api<ResultPage>(wanted).then((p) => {
      if (!latest) return
      setShown({ url: wanted, page: p })
      if (p.rows.length) setImages(Boolean(p.rows[0].image))  // kept while a filter matches no rows
    })
      .catch(() => { if (latest) setShown({ url: wanted, page: null }) })
    return () => { latest = false }
  }, [wanted, imagesGone])

  const pct = (v: number) => `${(100 * v).toFixed(1)}%`
  const choose = (f: typeof filter) => { setStart(0); setFilter(f); onFilter(f, false) }
  return (
    <div className="card" data-testid="evaluation">
      <h3>Evaluation</h3>
      <table className="grid metrics" data-testid="metrics">
        <thead><tr><th></th><th>accuracy</th><th>precision (macro)</th><th>recall (macro)</th><th>F1 (macro)</th></tr></thead>
        <tbody><tr><td>all</td><td>{pct(m.accuracy)}</td><td>{pct(m.precision_macro)}</td><td>{pct(m.recall_macro)}</td><td>{pct(m.f1_macro)}</td></tr>
          {m.per_class.map((c: any) => <tr key={c.class}><td>{c.class} ({c.support})</td><td></td><td>{pct(c.precision)}</td>
            <td>{pct(c.recall)}</td><td>{pct(c.f1)}</td></tr>)}</tbody>
      </table>
      <div className="columns">
        <ClassHistogram names={names} counts={m.histogram.actual} unit="Actual images" palette={[]} />
        <ClassHistogram names={names} counts={m.histogram.predicted} unit="Predicted images" palette={[]} />
      </div>
      <h4>Confusion matrix <span className="muted">(rows: actual, columns: predicted; click a cell)</span></h4>
      <table className="confusion" data-testid="confusion-matrix">
        <thead><tr><th></th>{names.map((n) => <th key={n}>{n}</th>)}</tr></thead>
        <tbody>{m.confusion_matrix.map((row: number[], a: number) => (
          <tr key={a}><th>{names[a]}</th>{row.map((count, p) => (
            <td key={p} className={`${a === p ? 'diag' : ''} ${filter.actual === a && filter.predicted === p ? 'chosen' : ''}`}
              style={{ background: `rgba(31,78,140,${m.confusion_matrix_normalized[a][p] * 0.8})`,
                color: m.confusion_matrix_normalized[a][p] > 0.5 ? '#fff' : '#000' }}
              data-testid={`cm-${a}-${p}`} onClick={() => choose({ actual: a, predicted: p })}>
              {count}<span className="cm-pct"> {pct(m.confusion_matrix_normalized[a][p])}</span></td>))}</tr>))}</tbody>
      </table>
      <div className="pager">
        <FilterButton active={!filter.misclassified && filter.actual === undefined} onClick={() => choose({})}
          testId="all-rows">All rows</FilterButton>
        <FilterButton active={Boolean(filter.misclassified)} onClick={() => choose({ misclassified: true })}
          testId="misclassified">Misclassified only</FilterButton>
        {page && <span data-testid="result-count">{page.total} rows{filter.actual !== undefined ? ` (actual ${names[filter.actual]}, predicted ${names[filter.predicted!]})` : ''}</span>}
        {page && page.start > 0 && <button className="secondary" onClick={() => setStart(Math.max(0, start - 40))}>Previous</button>}
        {page?.next != null && <button className="secondary" onClick={() => setStart(page.next!)}>Next</button>}
        <button className="secondary" onClick={() => onFilter(filter, true)} data-testid="open-in-table"
          title="The Output result table with every column, sortable, with the context menu">Open in the Output result table</button>
      </div>
      {page && <ResultGrid rows={page.rows} dataset={page.dataset} names={names} busy={shown?.url !== wanted}
        base={`/api/runs/${run.id}`} />}
      {!imagesGone && <Extremes run={run} names={names} />}
      {!imagesGone && images && <WhyDidItFail base={`/api/runs/${run.id}`} names={names} />}
    </div>
  )
}

// Per class, the images of that class the model scores highest and lowest: the lowest are where
// label errors hide (as in the MATLAB max/min-activating walkthrough). A click or right-click on one
// offers Explain with Grad-CAM / LIME / SHAP.
function Extremes({ run, names }: { run: Run; names: string[] }) {
  const [rows, setRows] = useState<ResultRow[]>([])
  const [dataset, setDataset] = useState(0)
  const menu = useExplainMenu({ base: `/api/runs/${run.id}`, names })
  useEffect(() => {
    api<ResultPage>(`/api/runs/${run.id}/results/?limit=500`).then((p) => { setRows(p.rows); setDataset(p.dataset) }).catch(() => undefined)
  }, [run.id])
  if (!rows.length || !rows[0].image) return null
  const byIndex = new Map(rows.map((r) => [r.index, r]))
  const thumb = (kind: 'most' | 'least', c: number, i: number) => {
    const r = byIndex.get(i)
    if (!r?.image) return null
    const target = { image: r.image, src: fileUrl(dataset, r.image, false), predicted: r.predicted, actual: r.label }
    return (
      <button key={`${kind}${i}`} type="button" className="explain-thumb" aria-haspopup="menu" data-row={i}
        data-testid={`extreme-${kind}-${c}-${i}`} onClick={(e) => menu.openAt(e.currentTarget, target)}
        onContextMenu={(e) => menu.onContextMenu(e, target)}
        title={`row ${i}: ${names[r.label]} → ${names[r.predicted]} (${((r.score ?? 0) * 100).toFixed(0)}%); click to explain`}
        aria-label={`Explain row ${i}`}>
        <img className="thumb" src={fileUrl(dataset, r.image)} alt="" /></button>)
  }
  return (
    <div data-testid="extremes">
      <h4>Most and least activating images per class <span className="muted">(click or right-click one to explain it)</span></h4>
      {run.metrics.activation_extremes.map((e: any) => (
        <div key={e.class} className="extremes-row">
          <strong>{names[e.class]}</strong>
          <span className="muted">most</span>
          {e.most.map((i: number) => thumb('most', e.class, i))}
          <span className="muted">least</span>
          {e.least.map((i: number) => thumb('least', e.class, i))}
        </div>))}
      {menu.node}
    </div>
  )
}

function RegressionEvaluation({ run }: { run: Run }) {
  const m = run.metrics
  const [page, setPage] = useState<ResultPage | null>(null)
  useEffect(() => {
    api<ResultPage>(`/api/runs/${run.id}/results/?limit=50`).then(setPage).catch(() => setPage(null))
  }, [run.id])
  return (
    <div className="card" data-testid="evaluation">
      <h3>Evaluation</h3>
      <table className="grid metrics" data-testid="metrics">
        <thead><tr><th>RMSE</th><th>MAE</th><th>R²</th></tr></thead>
        <tbody><tr><td>{m.rmse.toFixed(4)}</td><td>{m.mae.toFixed(4)}</td><td>{m.r2.toFixed(4)}</td></tr></tbody>
      </table>
      {page && (
        <table className="grid"><thead><tr><th>#</th><th>inputs</th><th>actual</th><th>predicted</th></tr></thead>
          <tbody>{page.rows.map((r) => <tr key={r.index}><td>{r.index}</td><td><code>{(r.values ?? []).join(', ')}</code></td>
            <td>{r.label}</td><td>{Number(r.predicted).toFixed(4)}</td></tr>)}</tbody></table>
      )}
    </div>
  )
}
