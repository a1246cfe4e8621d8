// Helpers shared by the Evaluation workspace components (OutputTable, PluginDialog, OutputViewer…).
import { parseHeader } from './nncHeader'
import type { CellContext, Plugin, PluginGroup, TableFilter, TableSort } from './types'

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
  if (firstVariable && page && column !== null && page.columns[column]) values[firstVariable.name] = page.columns[column].variable
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
