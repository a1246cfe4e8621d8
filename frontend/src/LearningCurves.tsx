import { useEffect, useImperativeHandle, useRef, useState, forwardRef } from 'react'
import { api } from './api'
import { embedItem, type BokehColumnDataSource, type Embedded } from './bokeh'
import { accuracyOf, StepTrack, styleCurves, type CurveRun } from './curvesFigure'
import type { Dataset, JobEvent, Run } from './types'

// One finished epoch: its number and its series' values (a classifier's train_loss, train_error and
// valid_error; a detector's loss parts and mAP; ...).
export type EpochPoint = { epoch: number } & Record<string, number>
// add: one finished epoch; addEvents: a run's job events as they stream (per-step losses and epochs).
export interface CurvesHandle {
  add: (runId: number, point: EpochPoint) => void
  addEvents: (runId: number, events: JobEvent[]) => void
}

const EVENT_PAGES = 200  // at most 200,000 stored events read per run (the endpoint pages by 1,000)

// What the figure needs to know of a run: whether its error has an accuracy (a classifier), its
// job (whose events hold the per-step losses) and about how many steps an epoch takes.
async function describe(runId: number): Promise<CurveRun & { job: number | null; estimate: number | null }> {
  const run = await api<Run>(`/api/runs/${runId}/`)
  const train = run.train_dataset ? await api<Dataset>(`/api/datasets/${run.train_dataset}/`).catch(() => null) : null
  const target = train?.columns.find((c) => c.name === 'y')
  const regression = run.metrics.rmse !== undefined || (run.plugin_id === 'tabular_mlp' && target !== undefined && !target.classes.length)
  const batch = Number(run.config.batch_size ?? run.params.per_device_train_batch_size)
  const estimate = train && batch > 0 ? Math.ceil(train.rows / batch) : null
  return { id: runId, accuracy: !regression, job: run.job, estimate }
}

interface RunState {
  accuracy: boolean; job: number | null; track: StepTrack; points: Map<number, Record<string, number>>
  keys: string[]  // the metrics of one epoch, as the figure draws them
  epochs: BokehColumnDataSource | null; steps: BokehColumnDataSource | null; reading: boolean; again: boolean
}

// The server's Bokeh figure (one source per run, named run-<id>), embedded with BokehJS and drawn
// as curvesFigure says; epochs and per-step losses are streamed in from the runs' job events.
export const LearningCurves = forwardRef<CurvesHandle, { runIds: number[] }>(function LearningCurves({ runIds }, ref) {
  const element = useRef<HTMLDivElement>(null)
  const runs = useRef(new Map<number, RunState>())
  const pending = useRef<{ runId: number; events?: JobEvent[]; point?: EpochPoint }[]>([])
  const [error, setError] = useState('')
  const [ready, setReady] = useState(false)
  const key = runIds.join(',')

  const streamEpoch = (state: RunState, point: EpochPoint) => {
    const source = state.epochs
    if (!source || Array.from(source.data.epoch as ArrayLike<number>).includes(point.epoch)) return
    const columns: Record<string, number[]> = { epoch: [point.epoch] }
    for (const key of state.keys) columns[key] = [point[key]]
    if (state.keys.includes('valid_error')) columns.valid_accuracy = accuracyOf([point.valid_error], state.accuracy)
    source.stream(columns)
  }

  // Events of the run's job in order: steps are laid out again, completed epochs streamed. A gap
  // (events missed, or none read yet) is filled from the stored events first.
  const ingest = (runId: number, events: JobEvent[]) => {
    const state = runs.current.get(runId)
    if (!state) { pending.current.push({ runId, events }); return }
    const fresh = events.filter((e) => e.seq > state.track.lastSeq).sort((a, b) => a.seq - b.seq)
    if (!fresh.length) return
    if (fresh[0].seq !== state.track.lastSeq + 1) { void readStored(runId); return }
    apply(state, fresh)
  }

  const apply = (state: RunState, events: JobEvent[]) => {
    if (state.track.ingest(events, state.points) && state.steps) state.steps.data = state.track.layout()
    const touched = new Set(events.filter((e) => e.kind === 'metric' && e.data.name !== 'loss').map((e) => Number(e.data.step)))
    for (const epoch of touched) {
      const point = state.points.get(epoch)
      if (point && state.keys.every((k) => point[k] !== undefined)) streamEpoch(state, point as EpochPoint)
    }
  }

  const readStored = async (runId: number) => {
    const state = runs.current.get(runId)
    if (!state || state.job === null) return
    if (state.reading) { state.again = true; return }
    state.reading = true
    try {
      for (let page = 0; page < EVENT_PAGES; page++) {
        const answer = await api<{ events: JobEvent[] }>(`/api/jobs/${state.job}/events/?after=${state.track.lastSeq}`)
        if (runs.current.get(runId) !== state) return  // the figure was replaced meanwhile
        if (answer.events.length) apply(state, answer.events)
        if (answer.events.length < 1000 && !state.again) break
        state.again = false
      }
    } catch (e) {
      setError(`Per-step losses: ${(e as Error).message}`)
    } finally {
      state.reading = false
    }
  }

  useImperativeHandle(ref, () => ({
    add: (runId, point) => {
      const state = runs.current.get(runId)
      if (!state) { pending.current.push({ runId, point }); return }
      streamEpoch(state, point)
      void readStored(runId)  // the steps of the epoch that just ended
    },
    addEvents: ingest,
  }))

  useEffect(() => {
    if (!element.current) return
    let cancelled = false
    let embedded: Embedded | null = null
    runs.current = new Map()
    setReady(false)
    setError('')
    const ids = key.split(',').filter(Boolean).map(Number)
    Promise.all([api<unknown>(`/api/curves/?runs=${key}`), Promise.all(ids.map(describe))]).then(async ([item, described]) => {
      if (cancelled || !element.current) return
      let styled: ReturnType<typeof styleCurves> | null = null
      embedded = await embedItem(item, element.current, (doc) => { styled = styleCurves(doc, described) })
      if (cancelled) { embedded.dispose(); return }
      const drawn = styled as ReturnType<typeof styleCurves> | null
      for (const run of described) {
        runs.current.set(run.id, { accuracy: run.accuracy, job: run.job, track: new StepTrack(run.estimate), points: new Map(),
          keys: drawn?.keys.get(run.id) ?? ['train_loss', 'train_error', 'valid_error'],
          epochs: drawn?.epochs.get(run.id) ?? null, steps: drawn?.steps.get(run.id) ?? null, reading: false, again: false })
      }
      setReady(true)
      const waiting = pending.current
      pending.current = []
      for (const run of described) void readStored(run.id)
      for (const w of waiting) {
        const state = runs.current.get(w.runId)
        if (state && w.point) streamEpoch(state, w.point)
        if (w.events) ingest(w.runId, w.events)
      }
    }).catch((e) => { if (!cancelled) setError((e as Error).message) })
    return () => { cancelled = true; embedded?.dispose(); runs.current = new Map() }
  }, [key])  // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <div className="card">
      <strong>Learning curves</strong>
      <div ref={element} data-testid="learning-curves" data-ready={ready ? 'true' : undefined} />
      {error && <div className="error">{error}</div>}
    </div>
  )
})
