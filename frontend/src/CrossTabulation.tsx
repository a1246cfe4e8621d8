import { useEffect, useState } from 'react'
import { apiText, ApiError } from './api'
import { parseCsv } from './csv'
import { outputUrl } from './workspace'

interface CrossTab { rowVariable: string; columnVariable: string; header: string[]; rows: string[][] }

// NNC's cross_tabulation.csv: `Row variable,..` / `Column variable,..` / blank / header / rows.
function parseCrossTab(text: string): CrossTab {
  const lines = parseCsv(text)
  const meta = (name: string) => lines.find((l) => l[0] === name)?.[1] ?? ''
  const blank = lines.findIndex((l) => l.every((c) => c.trim() === ''))
  const body = (blank >= 0 ? lines.slice(blank + 1) : lines.filter((l) => !['Row variable', 'Column variable'].includes(l[0])))
    .filter((l) => l.some((c) => c.trim() !== ''))
  if (!body.length) throw new Error('The cross tabulation has no table.')
  return { rowVariable: meta('Row variable'), columnVariable: meta('Column variable'), header: body[0], rows: body.slice(1) }
}

const display = (cell: string) => (/^-?\d+\.\d{5,}$/.test(cell) ? Number(cell).toFixed(4) : cell)

// The table shaded by value: the larger a count (or ratio), the stronger its cell.
export function CrossTabulation({ base, path }: { base: string; path: string }) {
  const [table, setTable] = useState<CrossTab | null>(null)
  const [error, setError] = useState('')

  useEffect(() => {
    let live = true
    setTable(null)
    setError('')
    apiText(outputUrl(base, path)).then((text) => { if (live) setTable(parseCrossTab(text)) })
      .catch((e) => { if (live) setError(e instanceof ApiError ? e.message : (e as Error).message) })
    return () => { live = false }
  }, [base, path])

  if (error) return <div className="error" role="alert">{error}</div>
  if (!table) return <p className="muted">Loading…</p>
  const numbers = table.rows.flatMap((r) => r.slice(1).map(Number).filter(Number.isFinite))
  const top = Math.max(0, ...numbers)
  const shade = (cell: string): React.CSSProperties => {
    const value = Number(cell)
    if (cell.trim() === '' || !Number.isFinite(value) || top <= 0) return {}
    const strength = Math.max(0, value) / top
    return { background: `rgba(31,78,140,${(strength * 0.8).toFixed(3)})`, color: strength > 0.55 ? '#fff' : '#000' }
  }
  return (
    <div data-testid="cross-tabulation">
      <p className="muted">Rows: <strong>{table.rowVariable}</strong> · columns: <strong>{table.columnVariable}</strong></p>
      <table className="confusion crosstab">
        <thead><tr>{table.header.map((h, i) => <th key={i} scope="col">{h}</th>)}</tr></thead>
        <tbody>{table.rows.map((row, r) => (
          <tr key={r}><th scope="row">{row[0]}</th>
            {row.slice(1).map((cell, c) => <td key={c} style={shade(cell)} data-value={cell}>{display(cell)}</td>)}</tr>))}</tbody>
      </table>
    </div>
  )
}
