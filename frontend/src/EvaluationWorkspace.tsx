import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react'
import { api, ApiError } from './api'
import { OutputTable, type TableView } from './OutputTable'
import { OutputViewer } from './OutputViewer'
import { OutputsList } from './OutputsList'
import { PluginDialog } from './PluginDialog'
import { Tabs, type TabInfo } from './Tabs'
import type { CellContext, ExternalFilter, Plugin, Postprocess, PostprocessOutput } from './types'
import { FINAL_STATES, knownParams, prefill } from './workspace'

type Tab = 'metrics' | 'table' | 'outputs'

// NNC's Evaluation tab for a run or dataset (base): the table over its CSVs with the context menu
// and Plugins, the post-processing runs with their live jobs, and the opened output.
export function EvaluationWorkspace({ base, metrics, tableLabel, tableFilter, defaultThreshold }: {
  base: string; metrics?: ReactNode; tableLabel: string; tableFilter?: ExternalFilter | null; defaultThreshold?: number
}) {
  const [tab, setTab] = useState<Tab>(metrics ? 'metrics' : 'table')
  const [plugins, setPlugins] = useState<Plugin[]>([])
  const [items, setItems] = useState<Postprocess[] | null>(null)
  const [logs, setLogs] = useState<Set<number>>(new Set())  // finished runs whose log is open
  const [opened, setOpened] = useState<{ id: number; path: string } | null>(null)
  const [dialog, setDialog] = useState<{ plugin: Plugin; initial: Record<string, unknown> } | null>(null)
  const [csvVersion, setCsvVersion] = useState(0)
  const [tableKey, setTableKey] = useState(0)
  const [error, setError] = useState('')
  const view = useRef<Partial<TableView>>({ threshold: defaultThreshold === undefined ? '' : String(defaultThreshold) })
  const autoOpen = useRef<Set<number>>(new Set())  // submitted or running here: opened once they succeed
  const timers = useRef<number[]>([])

  useEffect(() => {
    api<{ results: Plugin[] }>('/api/plugins/?kind=postprocess')
      .then((r) => setPlugins(r.results.filter((p) => p.kind === 'postprocess')))
      .catch((e) => setError(`Plugins: ${(e as ApiError).message}`))
  }, [])

  useEffect(() => {
    let alive = true
    api<{ results: Postprocess[] }>(`${base}/postprocess/`).then((r) => {
      if (!alive) return
      setItems(r.results)
      const running = r.results.filter((p) => !FINAL_STATES.includes(p.state)).map((p) => p.id)
      running.forEach((id) => autoOpen.current.add(id))
    }).catch((e) => { if (alive) setError(`Outputs: ${(e as ApiError).message}`) })
    return () => { alive = false; timers.current.forEach(clearTimeout) }
  }, [base])

  // The confusion matrix chose rows: the table starts over on output_result.csv with that filter.
  useEffect(() => {
    if (!tableFilter) return
    view.current = { ...view.current, csv: undefined, start: 0, sort: null, filter: tableFilter.filter }
    setTableKey((k) => k + 1)
    if (tableFilter.show) setTab('table')
  }, [tableFilter])

  const open = (postprocess: Postprocess, output: PostprocessOutput) => {
    setOpened({ id: postprocess.id, path: output.path })
    setTab('outputs')
  }

  // Once a job ends, its state and outputs are listed (retried briefly: they are recorded as the
  // job ends); the list then shows it finished, without its live panel.
  const refresh = useCallback(async (id: number, attempt = 0) => {
    try {
      const r = await api<{ results: Postprocess[] }>(`${base}/postprocess/`)
      setItems(r.results)
      setCsvVersion((v) => v + 1)
      const done = r.results.find((p) => p.id === id)
      if (!done) return
      const pending = !FINAL_STATES.includes(done.state) ||
        (autoOpen.current.has(id) && done.state === 'succeeded' && done.outputs.length === 0)
      if (pending && attempt < 5) {
        timers.current.push(window.setTimeout(() => refresh(id, attempt + 1), 400 * (attempt + 1)))
        return
      }
      if (!autoOpen.current.has(id)) return
      autoOpen.current.delete(id)
      if (done.state === 'succeeded' && done.outputs.length) open(done, done.outputs[0])
    } catch (e) {
      setError(`Outputs: ${(e as ApiError).message}`)
    }
  }, [base])

  const queued = (postprocess: Postprocess) => {
    setDialog(null)
    setItems((prev) => [postprocess, ...(prev ?? []).filter((p) => p.id !== postprocess.id)])
    autoOpen.current.add(postprocess.id)
    setTab('outputs')
  }
  // An explanation started from the table shows in its own dialog; the Outputs list has it too.
  const explained = (postprocess: Postprocess) =>
    setItems((prev) => [postprocess, ...(prev ?? []).filter((p) => p.id !== postprocess.id)])
  const toggleLog = (postprocess: Postprocess) => setLogs((prev) => {
    const next = new Set(prev)
    if (!next.delete(postprocess.id)) next.add(postprocess.id)
    return next
  })

  const onPlugin = (plugin: Plugin, context: CellContext) => setDialog({ plugin, initial: knownParams(plugin, prefill(plugin, context)) })
  const openPlugin = (plugin: Plugin, initial: Record<string, unknown>) => setDialog({ plugin, initial: knownParams(plugin, initial) })
  const onCsvSaved = () => setCsvVersion((v) => v + 1)

  const openedItem = opened && items?.find((p) => p.id === opened.id)
  const openedOutput = openedItem?.outputs.find((o) => o.path === opened?.path)
  const running = (items ?? []).filter((p) => !FINAL_STATES.includes(p.state)).length
  const tabs: TabInfo[] = [
    ...(metrics ? [{ id: 'metrics', label: 'Metrics', testId: 'tab-metrics' }] : []),
    { id: 'table', label: tableLabel, testId: 'tab-table' },
    { id: 'outputs', label: <>Outputs{items?.length ? <> <span className="tab-count">{items.length}{running ? ` · ${running} running` : ''}</span></> : null}</>,
      testId: 'tab-outputs' },
  ]

  return (
    <div className="evaluation-workspace" data-testid="evaluation-workspace">
      {error && <div className="error" role="alert">{error}</div>}
      <Tabs tabs={tabs} active={tab} onChange={(id) => setTab(id as Tab)} label="Evaluation">
        {metrics && <div hidden={tab !== 'metrics'}>{metrics}</div>}  {/* kept: its filters and slider stay as they were */}
        {tab === 'table' && (
          <div className="card">
            <OutputTable key={tableKey} base={base} view={view.current} csvVersion={csvVersion} plugins={plugins}
              onPlugin={onPlugin} onCsvSaved={onCsvSaved} onViewChange={(v) => { view.current = v }}
              onExplained={explained} />
          </div>
        )}
        {tab === 'outputs' && (
          <div className="outputs-layout">
            <div className="card">
              <h4>Outputs</h4>
              {items === null ? <p className="muted">Loading…</p> : (
                <OutputsList base={base} items={items} plugins={plugins} logs={logs} opened={opened} onOpen={open}
                  onFinished={(p) => refresh(p.id)} onToggleLog={toggleLog} />
              )}
            </div>
            {openedItem && openedOutput ? (
              <OutputViewer key={`${openedItem.id}/${openedOutput.path}`} base={base} postprocess={openedItem} output={openedOutput}
                plugins={plugins} onPlugin={onPlugin} openPlugin={openPlugin} onCsvSaved={onCsvSaved}
                onClose={() => setOpened(null)} />
            ) : <div className="card muted">Open an output of the list to see it here.</div>}
          </div>
        )}
      </Tabs>
      {dialog && <PluginDialog key={dialog.plugin.id} base={base} plugin={dialog.plugin} initial={dialog.initial}
        onQueued={queued} onClose={() => setDialog(null)} />}
    </div>
  )
}
