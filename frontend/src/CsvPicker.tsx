import type { CsvInfo, CsvKind } from './types'

const KIND_LABELS: Record<CsvKind, string> = {
  evaluation: 'Output result', dataset: 'Dataset', saved: 'Saved rows', output: 'Plugin outputs',
}
const KINDS: CsvKind[] = ['evaluation', 'dataset', 'saved', 'output']

// The CSVs of a run or dataset ({base}/csvs/), grouped by where they come from.
export function CsvPicker({ csvs, value, onChange, id = 'csv-picker' }: {
  csvs: CsvInfo[]; value: string; onChange: (name: string) => void; id?: string
}) {
  const listed = csvs.some((c) => c.name === value)
  return (
    <label className="inline-label" htmlFor={id}>CSV
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} data-testid="csv-picker">
        {!listed && <option value={value}>{value || '—'}</option>}
        {KINDS.map((kind) => {
          const group = csvs.filter((c) => c.kind === kind || (kind === 'output' && !KINDS.includes(c.kind)))
          return group.length > 0 && (
            <optgroup key={kind} label={KIND_LABELS[kind]}>
              {group.map((c) => <option key={c.name} value={c.name}>{c.name} ({c.rows} rows)</option>)}
            </optgroup>
          )
        })}
      </select>
    </label>
  )
}
