// The learning-curves figure as the page draws it, built on the server's Bokeh figure (its axes,
// ranges, tools and the `run-<id>` sources holding each run's epochs): integer epoch ticks, the
// per-step training loss as a faint line under the epoch curves, validation accuracy beside the
// errors, and the legend outside the plot. One run: a colour per series; several (Compare): a
// colour per run and a dash style per series, with legend entries for both.
import { bokehModels, type BokehColumnDataSource, type BokehDocument, type BokehModel } from './bokeh'

export interface CurveSeries { key: string; label: string; dash: string }

// A classifier's series, as the server names them; valid accuracy is drawn from the error here.
export const SERIES: CurveSeries[] = [
  { key: 'train_loss', label: 'train loss', dash: 'solid' },
  { key: 'train_error', label: 'train error', dash: 'dashed' },
  { key: 'valid_error', label: 'valid error', dash: 'dotted' },
  { key: 'valid_accuracy', label: 'valid accuracy', dash: 'dashdot' },
]
const DASHES = ['solid', 'dashed', 'dotted', 'dashdot', 'dotdash', '6 2 2 2']

// The series a run's source holds (the server's tags: a detector's loss parts and mAP, a segmenter's
// mean IoU, ...), each with its dash: a classifier's as SERIES, others in turn. The keys streamed
// from the job's metric events are these, less the derived valid accuracy.
export function seriesOf(source: BokehColumnDataSource, accuracy: boolean): CurveSeries[] {
  const tags = (source as unknown as { tags?: unknown[] }).tags ?? []
  const parsed = tags.map((t) => { try { return typeof t === 'string' ? JSON.parse(t) : null } catch { return null } })
  const given: { key: string; label: string }[] = parsed.find((t) => t && Array.isArray(t.series))?.series ?? SERIES.slice(0, 3)
  const known = new Map(SERIES.map((s) => [s.key, s]))
  const series = given.map((g, i) => known.get(g.key) ?? { key: g.key, label: g.label, dash: DASHES[i % DASHES.length] })
  if (accuracy && given.some((g) => g.key === 'valid_error')) series.push(SERIES[3])
  return series
}

// Bokeh's Category10, as the server's figure uses it.
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf']
const NEUTRAL = '#555555'

export interface CurveRun { id: number; accuracy: boolean }  // accuracy: a classifier (1 - error)

export interface StyledCurves {
  epochs: Map<number, BokehColumnDataSource>  // run id -> its epoch source (run-<id>)
  steps: Map<number, BokehColumnDataSource>   // run id -> its per-step loss (steps-<id>: x, loss)
  keys: Map<number, string[]>                 // run id -> the metrics an epoch streams (its series)
}

// Validation accuracy from the error, for sources and streamed points alike; NaN where it does not
// apply (a regressor's "error" is an RMSE), which Bokeh leaves undrawn.
export function accuracyOf(errors: ArrayLike<number>, accuracy: boolean): number[] {
  return Array.from(errors, (e) => (accuracy && Number.isFinite(e) ? 1 - e : NaN))
}

export function styleCurves(doc: BokehDocument, runs: CurveRun[]): StyledCurves {
  const M = bokehModels()
  const plot = doc.get_model_by_name('learning-curves') as BokehModel | null
  if (!plot) throw new Error('The learning-curves figure has no plot')
  const sources = runs.map((run) => doc.get_model_by_name(`run-${run.id}`) as BokehColumnDataSource | null)
  const classifiersOnly = sources.every((source) => !source || seriesOf(source, false).every((x) => SERIES.some((k) => k.key === x.key)))
  // Epochs are whole numbers: ticks at least 1 apart (so 1, 2, 3 or 2, 4, 6; never 1.5).
  for (const axis of plot.below as BokehModel[]) {
    if (axis instanceof M.LinearAxis && axis.ticker) axis.ticker.min_interval = 1
  }
  for (const axis of plot.left as BokehModel[]) {
    if (axis instanceof M.LinearAxis) axis.axis_label = classifiersOnly ? 'loss / error / accuracy' : 'loss / score'
  }
  // The server's own legend and lines make way for these (the legend first: it refers to the lines).
  for (const side of ['center', 'right', 'left', 'above', 'below'] as const) {
    plot[side] = (plot[side] as BokehModel[]).filter((m) => !(m instanceof M.Legend))
  }
  plot.renderers = []

  const compare = runs.length > 1
  const keys = new Map<number, string[]>()
  const legendSeries = new Map<string, CurveSeries>()  // every run's series, in order of appearance
  const epochs = new Map<number, BokehColumnDataSource>()
  const steps = new Map<number, BokehColumnDataSource>()
  const bySeries = new Map<string, BokehModel[]>()
  const stepRenderers: BokehModel[] = []
  const dots: BokehModel[] = []
  const runItems: BokehModel[] = []
  const line = (source: BokehColumnDataSource, x: string, y: string, colour: string, extra: Record<string, unknown>) =>
    plot.add_glyph(new M.Line({ x: { field: x }, y: { field: y }, line_color: colour, ...extra }), source) as BokehModel

  runs.forEach((run, index) => {
    const source = sources[index]
    if (!source) return
    const series = seriesOf(source, run.accuracy)
    keys.set(run.id, series.map((x) => x.key).filter((k) => k !== 'valid_accuracy'))
    series.forEach((x) => { if (!legendSeries.has(x.key)) legendSeries.set(x.key, x) })
    if (source.data.valid_error) {
      source.data = { ...source.data, valid_accuracy: accuracyOf(source.data.valid_error as ArrayLike<number>, run.accuracy) }
    }
    epochs.set(run.id, source)
    const runColour = PALETTE[index % PALETTE.length]
    const colourOf = (series: number) => (compare ? runColour : PALETTE[series % PALETTE.length])
    const own: BokehModel[] = []
    const stepSource = new M.ColumnDataSource({ data: { x: [], loss: [] }, name: `steps-${run.id}` }) as BokehColumnDataSource
    steps.set(run.id, stepSource)
    const faint = line(stepSource, 'x', 'loss', colourOf(0), { line_alpha: 0.28, line_width: 1 })
    stepRenderers.push(faint)
    own.push(faint)
    series.forEach((series, s) => {
      const drawn = line(source, 'epoch', series.key, colourOf(s), { line_dash: series.dash, line_width: 2 })
      const marks = plot.add_glyph(new M.Scatter({ x: { field: 'epoch' }, y: { field: series.key }, size: 5,
        fill_color: colourOf(s), line_color: colourOf(s) }), source) as BokehModel
      dots.push(marks)
      own.push(drawn, marks)
      bySeries.set(series.key, [...(bySeries.get(series.key) ?? []), drawn, marks])
    })
    if (compare) runItems.push(new M.LegendItem({ label: { value: `run ${run.id}` }, renderers: own }))
  })

  // A legend entry per series hides and shows it in every run. Comparing, the entry is drawn in a
  // neutral colour (its dash is what it says): a legend draws all of an entry's renderers, so
  // renderers without data in that colour go last, over the runs' colours.
  const empty = () => new M.ColumnDataSource({ data: { x: [NaN], y: [NaN] } })  // one point: visuals, nothing drawn
  const sample = (dash: string, marks: boolean, alpha = 1, width = 2): BokehModel[] => [
    plot.add_glyph(new M.Line({ x: { field: 'x' }, y: { field: 'y' }, line_color: NEUTRAL, line_dash: dash,
      line_alpha: alpha, line_width: width }), empty()) as BokehModel,
    ...(marks ? [plot.add_glyph(new M.Scatter({ x: { field: 'x' }, y: { field: 'y' }, size: 5, fill_color: NEUTRAL,
      line_color: NEUTRAL }), empty()) as BokehModel] : []),
  ]
  const seriesItems = [...legendSeries.values()].filter((s) => bySeries.has(s.key)).map((s) => new M.LegendItem({
    label: { value: s.label }, renderers: [...bySeries.get(s.key)!, ...(compare ? sample(s.dash, true) : [])] }))
  const stepItem = new M.LegendItem({ label: { value: 'train loss per step' },
    renderers: [...stepRenderers, ...(compare ? sample('solid', false, 0.35, 1) : [])] })
  plot.add_layout(new M.Legend({ items: [...runItems, ...seriesItems, stepItem], click_policy: 'hide',
    location: 'top_left', label_text_font_size: '12px', spacing: 2 }), 'right')

  for (const tool of (plot.toolbar?.tools ?? []) as BokehModel[]) {
    if (!(tool instanceof M.HoverTool)) continue
    tool.renderers = dots  // the epoch marks: the faint per-step line has none of these fields
    tool.tooltips = [['epoch', '@epoch'], ...[...legendSeries.values()].map((x): [string, string] =>
      [x.label, x.key === 'valid_accuracy' ? '@valid_accuracy{0.0%}' : `@${x.key}{0.0000}`])]
  }
  return { epochs, steps, keys }
}

// The per-step losses of one run's job, placed on the epoch axis: the k-th of an epoch's n steps
// at (epoch - 1) + k / n, so an epoch's last step sits on that epoch's mark. The epoch under way
// is laid out with the step count of the one before (or an estimate), until it ends.
export class StepTrack {
  private closed = new Map<number, number[]>()  // epoch -> its losses
  private current: number[] = []
  private lastEpoch = 0
  lastSeq = 0

  constructor(private estimate: number | null = null) {}

  // Events of the run's job in sequence order; those seen already are skipped. Returns whether
  // the steps changed; every other metric is kept per epoch in `points` (the figure streams an epoch
  // once all of its series are in).
  ingest(events: { seq: number; kind: string; data: Record<string, any> }[], points: Map<number, Record<string, number>>): boolean {
    let changed = false
    for (const event of events) {
      if (event.seq <= this.lastSeq) continue
      this.lastSeq = event.seq
      if (event.kind !== 'metric') continue
      const { name, step, value } = event.data as { name: string; step: number; value: number }
      if (name === 'loss') { this.current.push(value); changed = true; continue }
      if (name === 'train_loss') {  // the epoch `step` has ended: its steps are all in
        this.closed.set(step, this.current)
        this.current = []
        this.lastEpoch = step
        changed = true
      }
      const point = points.get(step) ?? { epoch: step }
      point[name] = value
      points.set(step, point)
    }
    return changed
  }

  layout(): { x: number[]; loss: number[] } {
    const x: number[] = []
    const loss: number[] = []
    for (const epoch of [...this.closed.keys()].sort((a, b) => a - b)) {
      const values = this.closed.get(epoch)!
      values.forEach((v, k) => { x.push(epoch - 1 + (k + 1) / values.length); loss.push(v) })
    }
    const before = this.closed.get(this.lastEpoch)?.length
    const n = Math.max(this.current.length, before ?? this.estimate ?? this.current.length, 1)
    this.current.forEach((v, k) => { x.push(this.lastEpoch + Math.min(k + 1, n) / n); loss.push(v) })
    return { x, loss }
  }
}
