import { useEffect, useState } from 'react'
import { api, ApiError } from './api'
import type { TablePage, TableRow } from './types'
import { classOf, tableUrl } from './workspace'

// One row of a CSV (e.g. the point tapped in a plot): every cell with its header, images shown.
export function RowDetails({ base, csv, index, onClose }: { base: string; csv: string; index: number; onClose: () => void }) {
  const [page, setPage] = useState<TablePage | null>(null)
  const [row, setRow] = useState<TableRow | null>(null)
  const [error, setError] = useState('')

  useEffect(() => {
    let live = true
    setRow(null)
    setError('')
    // Unsorted and unfiltered, row i of the CSV is at position i.
    api<TablePage>(tableUrl(base, csv, index, 1)).then((p) => {
      if (!live) return
      setPage(p)
      const found = p.rows.find((r) => r.index === index)
      if (found) setRow(found)
      else setError(`Row ${index} is not in ${csv}.`)
    }).catch((e) => { if (live) setError((e as ApiError).message) })
    return () => { live = false }
  }, [base, csv, index])

  return (
    <aside className="card row-details" aria-label={`Row ${index} of ${csv}`} data-testid="row-details" data-row={index}>
      <div className="page-head">
        <strong>Row {index}</strong><span className="muted">{csv}</span>
        <span className="spacer" />
        <button type="button" className="secondary" onClick={onClose}>Close</button>
      </div>
      {error && <div className="error" role="alert">{error}</div>}
      {!row && !error && <p className="muted">Loading…</p>}
      {row && page && (
        <dl>
          {page.header.map((h, i) => (
            <div key={i} className="row-field">
              <dt>{h}</dt>
              <dd>{row.images[String(i)]
                ? <a href={row.links[String(i)] ?? row.images[String(i)]} target="_blank" rel="noreferrer">
                  <img className="row-image" src={row.links[String(i)] ?? row.images[String(i)]} alt={row.cells[i]} /></a>
                : null}
                <code>{row.cells[i]}</code>{classOf(h, row.cells[i]) !== null && <span className="label"> {classOf(h, row.cells[i])}</span>}</dd>
            </div>))}
        </dl>
      )}
    </aside>
  )
}
