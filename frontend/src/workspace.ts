// Helpers shared by the Evaluation workspace components (OutputTable, PluginDialog, OutputViewer…).
import { api } from './api'
import { parseHeader } from './nncHeader'
import type { CellContext, Plugin, PluginGroup, TableFilter, TablePage, TableSort } from './types'

export const PAGE_SIZE = 50

export const isRunBase = (base: string): boolean => /^\/api\/runs\/\d+/.test(base)

export const encodePath = (path: string): string => path.split('/').map(encodeURIComponent).join('/')

// Download (attachment) of any output file of the run or dataset.
export const outputUrl = (base: string, path: string): string => `${base}/outputs/${encodePath(path)}`

export const withoutCsv = (name: string): string => name.replace(/\.csv$/i, '')

// The filter and sort as the server reads them: the GET query uses them as text, save as JSON numbers.
export function filterFields(filter: TableFilter, sort: TableSort | null): Record<string, number> {
  const fields: Record<string, number> = {}
  if (filter.misclassified) fields.misclassified = 1
  if (filter.actual !== undefined) fields.actual = filter.actual
  if (filter.predicted !== undefined) fields.predicted = filter.predicted
  if (filter.flagged !== undefined && filter.threshold !== undefined && Number.isFinite(filter.threshold)) {
    fields.flagged = filter.flagged ? 1 : 0
    fields.threshold = filter.threshold
  }
  if (sort) {
    fields.sort = sort.column
    if (sort.desc) fields.desc = 1
  }
  return fields
}

export function tableUrl(base: string, csv: string, start: number, limit: number, filter: TableFilter = {},
                         sort: TableSort | null = null): string {
  const query = new URLSearchParams({ csv, start: String(start), limit: String(limit) })
  for (const [key, value] of Object.entries(filterFields(filter, sort))) query.set(key, String(value))
  return `${base}/table/?${query}`
}

// NNC's Plugins menu order; XAI arrives later, anything else goes last.
export const GROUP_ORDER: (PluginGroup | 'Other')[] = ['Utils', 'Visualization', 'Fairness', 'XAI', 'Other']

export function groupPlugins(plugins: Plugin[]): { group: string; plugins: Plugin[] }[] {
  return GROUP_ORDER.map((group) => ({
    group,
    plugins: plugins.filter((p) => (p.group && GROUP_ORDER.includes(p.group) ? p.group : 'Other') === group),
  })).filter((g) => g.plugins.length > 0)
}

// Values that a plugin's form starts with, from what was clicked (NNC prefills the same way).
export function prefill(plugin: Plugin, context: CellContext): Record<string, unknown> {
  const values: Record<string, unknown> = {}
  const firstCsv = plugin.params.find((p) => p.type === 'csv')
  if (firstCsv && context.csv) values[firstCsv.name] = context.csv
  for (const p of plugin.params) if (p.type === 'model') values[p.name] = 'model'
  const { row, column, page } = context
  if (row && page) {
    const clickedImage = column !== null && page.columns[column]?.kind === 'image' ? column
      : page.columns.findIndex((c) => c.kind === 'image')
    for (const p of plugin.params) {
      if (p.type === 'image' && clickedImage >= 0) values[p.name] = row.cells[clickedImage]
    }
    const index = plugin.params.find((p) => p.name === 'index')
    if (index) values.index = row.index
  }
  const firstVariable = plugin.params.find((p) => p.type === 'variable')
  if (firstVariable && page && column !== null && page.columns[column]) {
    // The clicked column itself (`y'__2`, not its vector `y'`, which means `y'__0` to a scatter plot).
    const key = page.columns[column].header.split(':')[0]
    values[firstVariable.name] = page.variables.includes(key) ? key : page.columns[column].variable
  }
  return values
}

// A t-SNE output has <var>_tsne__0 and <var>_tsne__1: the axes of its scatter plot.
export function tsneAxes(variables: string[]): { x: string; y: string } | null {
  for (const v of variables) {
    const match = v.match(/^(.*)_tsne__0$/)
    if (match && variables.includes(`${match[1]}_tsne__1`)) return { x: v, y: `${match[1]}_tsne__1` }
  }
  return null
}

// Only the keys the plugin has: the server rejects unknown parameters.
export function knownParams(plugin: Plugin, values: Record<string, unknown>): Record<string, unknown> {
  const names = new Set(plugin.params.map((p) => p.name))
  return Object.fromEntries(Object.entries(values).filter(([key]) => names.has(key)))
}

export const FINAL_STATES = ['succeeded', 'failed', 'cancelled']

// A class index cell under a header that names its classes ("y:label;cat;dog") reads "1: dog".
export function classOf(header: string, cell: string): string | null {
  const classes = parseHeader(header).classes
  const index = Number(cell)
  return classes.length && cell !== '' && Number.isInteger(index) && classes[index] !== undefined ? classes[index] : null
}

// A post-processing run's parameters in a line (`input=tsne.csv, variable=features, perplexity=5`):
// what tells two runs of a plugin apart. The CSV and variables first, then what differs from the
// plugin's defaults; the model (always this run's), hidden and empty values are left out.
export function paramSummary(params: Record<string, unknown>, plugin?: Plugin, limit = 6): string {
  const shown = (value: unknown): string | null => {
    if (value === null || value === undefined || value === '' || typeof value === 'object') return null
    return String(value)
  }
  const entries: [string, string][] = []
  if (plugin) {
    const order = [...plugin.params.filter((p) => p.type === 'csv' || p.type === 'variable'),
      ...plugin.params.filter((p) => p.type !== 'csv' && p.type !== 'variable')]
    for (const p of order) {
      if (p.type === 'model' && !p.choices) continue
      const value = shown(params[p.name])
      if (value === null) continue
      const always = p.type === 'csv' || p.type === 'variable' || p.type === 'image'
      if (!always && value === shown(p.default)) continue
      entries.push([p.name, value])
    }
  } else {
    for (const [name, raw] of Object.entries(params)) {
      const value = shown(raw)
      if (name.startsWith('_') || value === null || (name === 'model' && value === 'model')) continue
      entries.push([name, value])
    }
  }
  const text = entries.slice(0, limit).map(([name, value]) => `${name}=${value.length > 40 ? `${value.slice(0, 39)}…` : value}`)
  return text.join(', ') + (entries.length > limit ? ', …' : '')
}

// The filter and sort that make a table show fewer rows, or others in another order, than its CSV.
export const hasView = (fields: Record<string, number>): boolean => Object.keys(fields).length > 0

// A CSV name (letters, digits, `._-`) from a dataset name.
export function csvNameFor(name: string): string {
  const stem = name.trim().replace(/\.csv$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 90)
  return `${stem || 'rows'}.csv`
}

// Rows saved for a dataset whose conversion was then refused (e.g. its name): a retry of the same
// view reuses them rather than saving another copy.
const savedForRetry = new Map<string, string>()

// "Make a dataset from this CSV": of the rows the table shows when it is filtered or sorted (saved
// first as a CSV beside it, then converted), else of the whole CSV. Answers the conversion job.
export async function makeDataset(base: string, csv: string, name: string,
                                  fields: Record<string, number>): Promise<{ job: number; saved: string | null }> {
  let source = csv
  let saved: string | null = null
  const key = JSON.stringify([base, csv, fields])
  if (hasView(fields)) {
    saved = savedForRetry.get(key) ?? null
    if (saved === null) {
      const answer = await api<{ name: string; rows: number }>(`${base}/table/save/`, {
        method: 'POST', body: { csv, name: csvNameFor(name), ...fields } })
      saved = answer.name
      savedForRetry.set(key, saved)
    }
    source = saved
  }
  const made = await api<{ job: number }>(`${base}/table/to-dataset/`, { method: 'POST', body: { csv: source, name } })
  savedForRetry.delete(key)
  return { job: made.job, saved }
}

// What the dialog says about the rows it converts.
export function datasetHint(csv: string, fields: Record<string, number>, page: TablePage | null): string {
  if (hasView(fields)) {
    const rows = page?.total ?? 0
    return `Made from the ${rows} row${rows === 1 ? '' : 's'} shown (the current filter and order), saved first as a CSV ` +
      `beside ${csv}; their images are copied.`
  }
  return `Every row of ${csv} becomes a row of the new dataset, its images copied.`
}
