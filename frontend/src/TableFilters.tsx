import type { TableFilter, TablePage } from './types'

// The filters a table offers (its `filters`): misclassified / actual / predicted for a
// classification result, flagged / passed at a threshold for an anomaly result.
export function TableFilters({ page, filter, threshold, onFilter, onThreshold }: {
  page: TablePage; filter: TableFilter; threshold: string
  onFilter: (filter: TableFilter) => void; onThreshold: (text: string) => void
}) {
  const classes = page.classes ?? []
  // A filter in use is drawn highlighted, so the rows can be read against what chose them.
  const labelClass = (on: boolean) => (on ? 'inline-label filter-on' : 'inline-label')
  const classSelect = (key: 'actual' | 'predicted', label: string) => (
    <label className={labelClass(filter[key] !== undefined)}>{label}
      <select value={filter[key] === undefined ? '' : String(filter[key])} data-testid={`filter-${key}`}
        onChange={(e) => onFilter({ ...filter, [key]: e.target.value === '' ? undefined : Number(e.target.value) })}>
        <option value="">any</option>
        {classes.map((name, i) => <option key={i} value={i}>{i}: {name}</option>)}
      </select>
    </label>
  )
  const active = filter.misclassified || filter.actual !== undefined || filter.predicted !== undefined || filter.flagged !== undefined
  if (!page.filters.classification && !page.filters.anomaly) return null
  return (
    <div className="pager table-filters" role="group" aria-label="Filters">
      {page.filters.classification && <>
        <label className={labelClass(Boolean(filter.misclassified))}>
          <input type="checkbox" checked={Boolean(filter.misclassified)} data-testid="filter-misclassified"
            onChange={(e) => onFilter({ ...filter, misclassified: e.target.checked || undefined })} />
          Misclassified only</label>
        {classes.length > 0 && <>{classSelect('actual', 'Actual')}{classSelect('predicted', 'Predicted')}</>}
      </>}
      {page.filters.anomaly && <>
        <label className={labelClass(filter.flagged !== undefined)}>Rows
          <select value={filter.flagged === undefined ? '' : filter.flagged ? 'flagged' : 'passed'} data-testid="filter-flagged"
            onChange={(e) => onFilter({ ...filter, flagged: e.target.value === '' ? undefined : e.target.value === 'flagged' })}>
            <option value="">all</option>
            <option value="flagged">flagged (score ≥ threshold)</option>
            <option value="passed">passed (score &lt; threshold)</option>
          </select>
        </label>
        <label className="inline-label">Threshold
          <input type="number" step="any" value={threshold} onChange={(e) => onThreshold(e.target.value)}
            data-testid="filter-threshold" className="narrow-input" />
        </label>
        {filter.flagged !== undefined && !Number.isFinite(parseFloat(threshold)) &&
          <span className="muted">enter a threshold to filter</span>}
      </>}
      {active && <button type="button" className="secondary" onClick={() => onFilter({})}>Clear filters</button>}
    </div>
  )
}
