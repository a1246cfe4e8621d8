import { useEffect, useRef, useState } from 'react'
import { api, ApiError } from './api'
import { ContextMenu, type MenuAction, type MenuEntry } from './ContextMenu'
import { CsvPicker } from './CsvPicker'
import { EXPLAIN_METHODS, ExplainDialog, type ExplainMethod, type ExplainRequest } from './ExplainDialog'
import { ImageDialog } from './ImageDialog'
import { JobPanel } from './JobPanel'
import { NameDialog } from './NameDialog'
import { ScoreBars } from './ResultDialog'
import { TableFilters } from './TableFilters'
import { parseHeader } from './nncHeader'
import type { CellContext, CsvInfo, Plugin, Postprocess, TableFilter, TablePage, TableRow, TableSort } from './types'
import { classOf, datasetHint, filterFields, groupPlugins, makeDataset as convert, PAGE_SIZE, tableUrl, withoutCsv } from './workspace'

// What the table shows; kept by the parent across remounts (tabs) and used to apply a filter from
// outside (the run page's confusion matrix).
export interface TableView { csv: string; start: number; sort: TableSort | null; filter: TableFilter; threshold: string }

interface MenuState { x: number; y: number; row: TableRow | null; column: number | null; from: HTMLElement | null }
type Dialog = { kind: 'save' } | { kind: 'dataset' } | { kind: 'image'; src: string; name: string; row: TableRow; column: number }

const MENU_KEYS = (event: React.KeyboardEvent) => event.key === 'ContextMenu' || (event.shiftKey && event.key === 'F10')

// A contextmenu event that the keyboard fired (the menu key, Shift+F10): Chromium gives it button
// -1 (and the focused element's position), the spec a PointerEvent without a pointer type, older
// browsers (0, 0).
function fromKeyboard(event: React.MouseEvent): boolean {
  const native = event.nativeEvent as MouseEvent & { pointerType?: string }
  return native.button === -1 || native.pointerType === '' || (event.clientX === 0 && event.clientY === 0)
}

// A classification result (`y` and `y'__0`, `y'__1`…): per row, the class with the highest score
// and whether it differs from `y`.
interface Prediction { column: number; index: number; wrong: boolean; actual: number | null }
function predictionsOf(page: TablePage | null): ((row: TableRow) => Prediction | null) | null {
  if (!page) return null
  const scores = page.header.map((h, column) => ({ column, match: parseHeader(h).name.match(/^y'__(\d+)$/) }))
    .filter((c) => c.match).map((c) => ({ column: c.column, index: Number(c.match![1]) }))
  if (scores.length < 2) return null
  const actualColumn = page.header.findIndex((h) => parseHeader(h).name === 'y')
  return (row) => {
    let best: { column: number; index: number; value: number } | null = null
    for (const s of scores) {
      const text = row.cells[s.column] ?? ''
      const value = text.trim() === '' ? NaN : Number(text)
      if (Number.isFinite(value) && (!best || value > best.value)) best = { ...s, value }
    }
    if (!best) return null
    const text = actualColumn >= 0 ? (row.cells[actualColumn] ?? '').trim() : ''
    const actual = text !== '' && Number.isInteger(Number(text)) ? Number(text) : null
    return { column: best.column, index: best.index, actual, wrong: actual !== null && actual !== best.index }
  }
}

// A classification result row's scores (`y'__0`, `y'__1`, ...), by class index; null elsewhere.
function rowScores(page: TablePage | null, row: TableRow): number[] | null {
  if (!page) return null
  const columns = page.header.map((h, column) => ({ column, match: parseHeader(h).name.match(/^y'__(\d+)$/) }))
    .filter((c) => c.match).sort((a, b) => Number(a.match![1]) - Number(b.match![1]))
  if (columns.length < 2) return null
  const scores = columns.map((c) => Number(row.cells[c.column]))
  return scores.every(Number.isFinite) ? scores : null
}

// NNC's Evaluation table over one CSV of a run or dataset: paginated, sortable, filtered, image
// cells as thumbnails; right-click (or Shift+F10 / the menu key) on a cell opens its context menu.
// Without view.csv it shows the first CSV of {base}/csvs/ (output_result.csv, the dataset CSV).
export function OutputTable({ base, view, picker = true, csvVersion = 0, plugins, onPlugin, onCsvSaved, onLoaded, onViewChange,
  onExplained, testId = 'output-table' }: {
  base: string; view?: Partial<TableView>; picker?: boolean; csvVersion?: number
  plugins: Plugin[]; onPlugin: (plugin: Plugin, context: CellContext) => void
  onCsvSaved?: (name: string) => void; onLoaded?: (page: TablePage) => void; onViewChange?: (view: TableView) => void
  onExplained?: (postprocess: Postprocess) => void; testId?: string
}) {
  const [csvs, setCsvs] = useState<CsvInfo[] | null>(null)
  const [csv, setCsv] = useState(view?.csv ?? '')
  const [start, setStart] = useState(view?.start ?? 0)
  const [sort, setSort] = useState<TableSort | null>(view?.sort ?? null)
  const [filter, setFilter] = useState<TableFilter>(view?.filter ?? {})
  const [threshold, setThreshold] = useState(view?.threshold ?? '')
  const [page, setPage] = useState<TablePage | null>(null)
  const [loading, setLoading] = useState(false)
  const [error, setError] = useState('')
  const [notice, setNotice] = useState<{ text: string; csv?: string } | null>(null)
  const [menu, setMenu] = useState<MenuState | null>(null)
  const [dialog, setDialog] = useState<Dialog | null>(null)
  const [explain, setExplain] = useState<ExplainRequest | null>(null)
  const [focus, setFocus] = useState({ row: 0, col: 0 })
  const [listVersion, setListVersion] = useState(0)
  const [conversion, setConversion] = useState<{ job: number; name: string } | null>(null)
  const table = useRef<HTMLTableElement>(null)
  const loaded = useRef(onLoaded)
  loaded.current = onLoaded
  const viewChanged = useRef(onViewChange)
  viewChanged.current = onViewChange

  useEffect(() => { viewChanged.current?.({ csv, start, sort, filter, threshold }) }, [csv, start, sort, filter, threshold])

  useEffect(() => {
    if (!picker) return
    let live = true
    api<{ results: CsvInfo[] }>(`${base}/csvs/`).then((r) => {
      if (!live) return
      setCsvs(r.results)
      setCsv((current) => current || r.results[0]?.name || '')
    }).catch((e) => { if (live) setError((e as ApiError).message) })
    return () => { live = false }
  }, [base, picker, csvVersion, listVersion])

  const effective: TableFilter = { ...filter, threshold: filter.flagged === undefined ? undefined : parseFloat(threshold) }
  const url = csv ? tableUrl(base, csv, start, PAGE_SIZE, effective, sort) : ''
  useEffect(() => {
    if (!url) return
    let live = true
    setLoading(true)
    api<TablePage>(url).then((p) => {
      if (!live) return
      setPage(p)
      setError('')
      setFocus((f) => ({ row: Math.min(f.row, Math.max(0, p.rows.length - 1)), col: Math.min(f.col, Math.max(0, p.header.length - 1)) }))
      loaded.current?.(p)
    }).catch((e) => { if (live) setError((e as ApiError).message) })
      .finally(() => { if (live) setLoading(false) })
    return () => { live = false }
  }, [url])

  function choose(name: string) {
    setCsv(name)
    setStart(0)
    setSort(null)
    setFilter({})
    setNotice(null)
  }
  const applyFilter = (next: TableFilter) => { setFilter(next); setStart(0) }
  const toggleSort = (column: number) => {
    setSort((s) => (s && s.column === column ? { column, desc: !s.desc } : { column, desc: false }))
    setStart(0)
  }

  const hasImages = Boolean(page?.columns.some((c) => c.kind === 'image'))
  const openImage = (row: TableRow, column: number) => {
    const src = row.links[String(column)] ?? row.images[String(column)]
    if (src) setDialog({ kind: 'image', src, name: row.cells[column], row, column })
  }

  // Direct explanations of an image cell with the run's model, for the row's predicted class.
  const explainMethods = EXPLAIN_METHODS.filter((m) => plugins.some((p) => p.id === m.id))
  const explainCell = (method: ExplainMethod, row: TableRow, column: number) => {
    const prediction = predicted?.(row) ?? null
    setExplain({ method, image: row.cells[column], src: row.links[String(column)] ?? row.images[String(column)], csv,
      predicted: prediction?.index ?? null, actual: prediction?.actual ?? null, names: page?.classes ?? [] })
  }
  const openMenu = (row: TableRow | null, column: number | null, x: number, y: number, from: HTMLElement | null) =>
    setMenu({ x, y, row, column, from })
  const openMenuAt = (el: HTMLElement, row: TableRow | null, column: number | null) => {
    const rect = el.getBoundingClientRect()
    openMenu(row, column, rect.left + 8, rect.bottom, el)
  }
  const closeMenu = () => {
    const from = menu?.from
    setMenu(null)
    if (from && document.contains(from)) from.focus()
  }

  const menuEntries = (state: MenuState): MenuEntry[] => {
    const entries: MenuEntry[] = []
    const { row, column } = state
    if (row && column !== null && page?.columns[column]?.kind === 'image' && (row.links[String(column)] || row.images[String(column)])) {
      entries.push({ type: 'item', id: 'open-image', label: 'Open image', testId: 'menu-open-image', onSelect: () => openImage(row, column) })
      for (const m of explainMethods) {
        entries.push({ type: 'item', id: `explain-${m.id}`, label: `Explain with ${m.label}`, testId: `menu-explain-${m.id}`,
          onSelect: () => explainCell(m.id, row, column) })
      }
    }
    entries.push({ type: 'item', id: 'save-rows', label: 'Save these rows as CSV…', testId: 'menu-save-rows',
      onSelect: () => setDialog({ kind: 'save' }) })
    if (hasImages) {
      entries.push({ type: 'item', id: 'make-dataset', label: 'Make a dataset from this CSV…', testId: 'menu-make-dataset',
        onSelect: () => setDialog({ kind: 'dataset' }) })
    }
    const context: CellContext = { csv, row, column, page }
    const groups = groupPlugins(plugins)
    const pluginItem = (p: Plugin): MenuAction => ({ type: 'item', id: p.id, label: p.title, testId: `menu-plugin-${p.id}`,
      onSelect: () => onPlugin(p, context) })
    entries.push({ type: 'submenu', id: 'plugins', label: 'Plugins', testId: 'menu-plugins',
      entries: groups.length ? groups.map((g) => ({ type: 'group', label: g.group, entries: g.plugins.map(pluginItem) }))
        : [{ type: 'item', id: 'none', label: 'No post-processing plugins', disabled: true, onSelect: () => undefined }] })
    return entries
  }

  const focusCell = (row: number, col: number) => {
    if (!page || !page.rows.length) return
    const r = Math.max(0, Math.min(row, page.rows.length - 1))
    const c = Math.max(0, Math.min(col, page.header.length - 1))
    setFocus({ row: r, col: c })
    table.current?.querySelector<HTMLElement>(`[data-pos="${r}-${c}"]`)?.focus()
  }
  const onCellKey = (event: React.KeyboardEvent<HTMLTableCellElement>, position: number, row: TableRow, column: number) => {
    if (MENU_KEYS(event)) {
      event.preventDefault()
      openMenuAt(event.currentTarget, row, column)
      return
    }
    const moves: Record<string, [number, number]> = {
      ArrowDown: [position + 1, column], ArrowUp: [position - 1, column], ArrowLeft: [position, column - 1],
      ArrowRight: [position, column + 1], Home: [position, 0], End: [position, (page?.header.length ?? 1) - 1],
    }
    if (moves[event.key]) {
      event.preventDefault()
      focusCell(...moves[event.key])
    } else if (event.key === 'Enter' && page?.columns[column]?.kind === 'image') {
      event.preventDefault()
      openImage(row, column)
    }
  }

  const saveRows = async (name: string) => {
    const saved = await api<{ name: string; rows: number }>(`${base}/table/save/`, {
      method: 'POST', body: { csv, name, ...filterFields(effective, sort) } })
    setDialog(null)
    setNotice({ text: `Saved ${saved.name} (${saved.rows} rows).`, csv: saved.name })
    setListVersion((v) => v + 1)
    onCsvSaved?.(saved.name)
  }
  // Of the rows shown (filter, order) or the whole CSV; the conversion job shows here, with a link
  // to the dataset once it is made.
  const viewFields = filterFields(effective, sort)
  const makeDataset = async (name: string) => {
    const made = await convert(base, csv, name, viewFields)
    setDialog(null)
    setConversion({ job: made.job, name })
    if (made.saved) {
      setNotice({ text: `Saved the rows shown as ${made.saved}; making the dataset ${name} from it.`, csv: made.saved })
      setListVersion((v) => v + 1)
      onCsvSaved?.(made.saved)
    }
  }

  const renderCell = (row: TableRow, column: number) => {
    const cell = row.cells[column] ?? ''
    const thumb = row.images[String(column)]
    if (thumb) {
      return <img className="cell-thumb" src={thumb} alt={cell} title={cell} loading="lazy"
        onClick={() => openImage(row, column)} />
    }
    const name = page ? classOf(page.header[column] ?? '', cell) : null
    return name === null ? cell : <span className="label">{cell}: {name}</span>
  }
  const predicted = predictionsOf(page)
  const className = (index: number) => {
    const name = page?.classes?.[index]
    return name === undefined ? String(index) : `${index}: ${name}`
  }

  // Numbers align right, except class indices (shown with their class names).
  const numeric = (column: number) => page?.columns[column]?.kind === 'number' && !parseHeader(page.header[column] ?? '').classes.length
  const sorted = (column: number): 'ascending' | 'descending' | 'none' =>
    sort?.column === column ? (sort.desc ? 'descending' : 'ascending') : 'none'
  const rows = page?.rows ?? []
  return (
    <div className="output-table" data-testid={testId} data-csv={csv}>
      <div className="pager">
        {picker && csvs && <CsvPicker csvs={csvs} value={csv} onChange={choose} id={`${testId}-csv`} />}
        {page && <span data-testid="table-range">rows {page.total ? page.start + 1 : 0}–{page.start + rows.length} of {page.total}</span>}
        <button type="button" className="secondary" disabled={!page || page.start === 0} data-testid="table-previous"
          onClick={() => setStart(Math.max(0, start - PAGE_SIZE))}>Previous</button>
        <button type="button" className="secondary" disabled={page?.next == null} data-testid="table-next"
          onClick={() => page?.next != null && setStart(page.next)}>Next</button>
        {loading && <span className="muted" aria-live="polite">Loading…</span>}
        <span className="spacer" />
        <button type="button" className="secondary" aria-haspopup="menu" data-testid="table-actions"
          onClick={(e) => openMenuAt(e.currentTarget, null, null)}>Actions ▾</button>
      </div>
      {page && <TableFilters page={page} filter={filter} threshold={threshold} onFilter={applyFilter} onThreshold={setThreshold} />}
      {error && <div className="error" role="alert">{error}</div>}
      {notice && <div className="notice" role="status">{notice.text}
        {notice.csv && picker && <button type="button" className="secondary small" onClick={() => choose(notice.csv!)}>Show it</button>}</div>}
      {conversion && (
        <div className="inline-job">
          <div className="pager"><span className="muted">Making the dataset {conversion.name}</span><span className="spacer" />
            <button type="button" className="secondary small" onClick={() => setConversion(null)}>Dismiss</button></div>
          <JobPanel key={conversion.job} jobId={conversion.job} />
        </div>
      )}
      {!csv && csvs && csvs.length === 0 && <p className="empty">No CSV here yet.</p>}
      {page && (
        <div className="table-scroll">
          <table className="grid rows evaluation-table" role="grid" ref={table} aria-label={`${csv}: rows`}
            aria-rowcount={page.total + 1} aria-busy={loading}>
            <thead><tr>
              <th scope="col">#</th>
              {page.header.map((h, i) => (
                <th key={i} scope="col" aria-sort={sorted(i)} className={numeric(i) ? 'number' : undefined}>
                  <button type="button" className="sort" onClick={() => toggleSort(i)} data-testid={`sort-${i}`}
                    title={`Sort by ${h}`}>{parseHeader(h).title}<span aria-hidden="true">{sort?.column === i ? (sort.desc ? ' ▼' : ' ▲') : ''}</span></button>
                </th>))}
            </tr></thead>
            <tbody>
              {rows.map((row, position) => {
                const prediction = predicted?.(row) ?? null
                return (
                <tr key={row.index} data-testid={`output-row-${row.index}`} aria-rowindex={page.start + position + 2}
                  className={prediction?.wrong ? 'misclassified' : undefined} data-predicted={prediction?.index}>
                  <th scope="row" className="muted" title={prediction?.wrong && prediction.actual !== null
                    ? `misclassified: actual ${className(prediction.actual)}, predicted ${className(prediction.index)}` : undefined}>
                    {row.index}</th>
                  {page.header.map((_, column) => {
                    const top = prediction?.column === column
                    const classes = [numeric(column) ? 'number' : '', top ? 'predicted' : ''].filter(Boolean).join(' ')
                    return (
                    <td key={column} role="gridcell" data-testid={`cell-${row.index}-${column}`} data-pos={`${position}-${column}`}
                      tabIndex={focus.row === position && focus.col === column ? 0 : -1}
                      className={classes || undefined}
                      title={top && prediction ? `predicted: ${className(prediction.index)}` : undefined}
                      onFocus={() => setFocus({ row: position, col: column })}
                      onContextMenu={(e) => {
                        e.preventDefault()
                        setFocus({ row: position, col: column })
                        if (fromKeyboard(e)) {
                          // The menu key also fires keydown, which opened the menu already.
                          if (!(menu && menu.from === e.currentTarget)) openMenuAt(e.currentTarget, row, column)
                        } else openMenu(row, column, e.clientX, e.clientY, e.currentTarget)
                      }}
                      onKeyDown={(e) => onCellKey(e, position, row, column)}>
                      {renderCell(row, column)}
                    </td>)
                  })}
                </tr>)
              })}
              {rows.length === 0 && <tr><td colSpan={page.header.length + 1} className="empty">No rows match.</td></tr>}
            </tbody>
          </table>
        </div>
      )}
      {menu && <ContextMenu x={menu.x} y={menu.y} label="Table actions" testId="context-menu" entries={menuEntries(menu)}
        onClose={closeMenu} />}
      {dialog?.kind === 'save' && (
        <NameDialog title="Save these rows as CSV" label="Name of the CSV" submitLabel="Save" testId="save-rows-dialog"
          initial={filter.misclassified ? 'misclassified' : 'rows'} onSubmit={saveRows} onClose={() => setDialog(null)}
          hint={`${page?.total ?? 0} rows of ${csv}, with the current filter and order; saved beside it (a name in use gets a _1 suffix).`} />
      )}
      {dialog?.kind === 'dataset' && (
        <NameDialog title="Make a dataset from this CSV" label="Dataset name" submitLabel="Make dataset" testId="make-dataset-dialog"
          initial={withoutCsv(csv)} onSubmit={makeDataset} onClose={() => setDialog(null)}
          hint={datasetHint(csv, viewFields, page)} />
      )}
      {explain && <ExplainDialog base={base} plugins={plugins} request={explain} onQueued={onExplained}
        onClose={() => setExplain(null)} />}
      {dialog?.kind === 'image' && (() => {
        const scores = rowScores(page, dialog.row)
        const actual = predicted?.(dialog.row)?.actual ?? undefined
        return (
          <ImageDialog src={dialog.src} name={dialog.name} onClose={() => setDialog(null)}>
            {scores && <ScoreBars names={scores.map((_, i) => page?.classes?.[i] ?? String(i))} scores={scores} actual={actual} />}
            {explainMethods.length > 0 && (
              <div className="pager">
                {explainMethods.map((m) => (
                  <button key={m.id} type="button" className="secondary small" data-testid={`image-explain-${m.id}`}
                    onClick={() => { setDialog(null); explainCell(m.id, dialog.row, dialog.column) }}>Explain with {m.label}</button>))}
              </div>)}
          </ImageDialog>
        )
      })()}
    </div>
  )
}
