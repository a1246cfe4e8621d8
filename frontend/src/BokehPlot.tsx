import { useEffect, useRef, useState } from 'react'
import { api } from './api'
import { columnDataSource, embedItem, type Embedded } from './bokeh'
import { NameDialog } from './NameDialog'

interface PlotAnswer { item: unknown; csv: string | null }

// A plot output ({base}/plot/?path=), embedded with BokehJS. Its `points` source has a `row` column
// (the row in `csv`): a tap opens that row, a box or lasso selection can be saved as a CSV. A plot
// without one (a histogram) is just shown, with no tap or selection hint.
export function BokehPlot({ base, path, onRow, onCsvSaved }: {
  base: string; path: string; onRow: (csv: string, row: number) => void; onCsvSaved?: (name: string) => void
}) {
  const element = useRef<HTMLDivElement>(null)
  const [csv, setCsv] = useState<string | null>(null)
  const [selection, setSelection] = useState<number[]>([])
  const [wired, setWired] = useState<boolean | null>(null)
  const [saving, setSaving] = useState(false)
  const [notice, setNotice] = useState('')
  const [error, setError] = useState('')
  const tapped = useRef(onRow)
  tapped.current = onRow

  useEffect(() => {
    let live = true
    let embedded: Embedded | null = null
    let detach: () => void = () => {}
    setError('')
    setNotice('')
    setSelection([])
    setWired(null)
    api<PlotAnswer>(`${base}/plot/?path=${encodeURIComponent(path)}`).then(async (answer) => {
      if (!live || !element.current) return
      setCsv(answer.csv)
      embedded = await embedItem(answer.item, element.current)
      if (!live) { embedded.dispose(); return }
      const source = columnDataSource(embedded.doc, 'points')
      setWired(Boolean(source))
      if (!source) return
      // A tap (pointer down and up without moving) opens the first point it hit, even where points
      // overlap; a drag (box, lasso) only selects, also when it starts on a point, ends where it
      // started, and whatever the selection is while it goes on. Bokeh may change the selection
      // before or after the pointer comes up: during a gesture it is held and judged when the
      // gesture ends. The pointer goes down on the plot (capture phase, before Bokeh's handlers),
      // and may move and come up anywhere.
      const gesture = { x: 0, y: 0, moved: 0, up: 0, tap: false, down: false, held: null as number[] | null }
      const open = (picked: number[]) => { if (picked.length > 0 && answer.csv) tapped.current(answer.csv, picked[0]) }
      const down = (e: PointerEvent) => {
        Object.assign(gesture, { x: e.clientX, y: e.clientY, moved: 0, tap: false, down: true, held: null })
      }
      const move = (e: PointerEvent) => {
        if (gesture.down) gesture.moved = Math.max(gesture.moved, Math.hypot(e.clientX - gesture.x, e.clientY - gesture.y))
      }
      const up = (e: PointerEvent) => {
        if (!gesture.down) return
        move(e)
        gesture.tap = e.type === 'pointerup' && gesture.moved < 5
        gesture.down = false
        gesture.up = performance.now()
        if (gesture.held) {  // the selection changed during the gesture
          if (gesture.tap) open(gesture.held)
          gesture.held = null
          gesture.tap = false
        }
      }
      const host = element.current
      host.addEventListener('pointerdown', down, true)
      window.addEventListener('pointermove', move, true)
      window.addEventListener('pointerup', up, true)
      window.addEventListener('pointercancel', up, true)
      const changed = () => {
        const rows = source.data.row
        const picked = Array.from(source.selected.indices, (i) => Number(rows ? rows[i] : i))
        setSelection(picked)
        if (gesture.down) { gesture.held = picked; return }  // judged when the gesture ends
        const pointer = performance.now() - gesture.up < 1000
        const tap = pointer ? gesture.tap : picked.length === 1
        gesture.tap = false
        if (tap) open(picked)
      }
      const signal = source.selected.properties.indices.change
      signal.connect(changed)
      detach = () => {
        signal.disconnect(changed)
        host.removeEventListener('pointerdown', down, true)
        window.removeEventListener('pointermove', move, true)
        window.removeEventListener('pointerup', up, true)
        window.removeEventListener('pointercancel', up, true)
      }
    }).catch((e) => { if (live) setError((e as Error).message) })
    return () => { live = false; detach(); embedded?.dispose() }
  }, [base, path])

  const save = async (name: string) => {
    const saved = await api<{ name: string; rows: number }>(`${base}/table/save/`, {
      method: 'POST', body: { csv, name, rows: selection } })
    setSaving(false)
    setNotice(`Saved ${saved.name} (${saved.rows} rows).`)
    onCsvSaved?.(saved.name)
  }

  return (
    <div className="plot-output">
      <div ref={element} className="bokeh-plot" data-testid="output-plot" data-selected={selection.length} />
      {error && <div className="error" role="alert">{error}</div>}
      {wired && (
        <div className="pager">
          <span className="muted" data-testid="plot-selection">
            {selection.length ? `${selection.length} points selected` : 'Tap a point to open its row; box or lasso select to save points.'}</span>
          <button type="button" disabled={!selection.length || !csv} onClick={() => setSaving(true)} data-testid="save-selection">
            Save selection as CSV</button>
          {!csv && <span className="muted">(the plot names no CSV)</span>}
        </div>
      )}
      {notice && <div className="notice" role="status">{notice}</div>}
      {saving && csv && (
        <NameDialog title="Save selection as CSV" label="Name of the CSV" initial="selection" submitLabel="Save"
          testId="save-selection-dialog" hint={`${selection.length} rows of ${csv}.`} onSubmit={save}
          onClose={() => setSaving(false)} />
      )}
    </div>
  )
}
