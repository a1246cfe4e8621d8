import { useEffect, useState } from 'react'
import { api, ApiError, formatDate } from './api'
import { JobPanel } from './JobPanel'
import type { JobEvent, Plugin, Postprocess, PostprocessOutput } from './types'
import { outputUrl, paramSummary } from './workspace'

// The log of a finished job, read once from its stored events.
function JobLog({ jobId }: { jobId: number }) {
  const [lines, setLines] = useState<{ seq: number; text: string }[] | null>(null)
  const [error, setError] = useState('')

  useEffect(() => {
    let live = true
    const load = async () => {
      const found: { seq: number; text: string }[] = []
      let after = 0
      for (let page = 0; page < 20; page++) {  // 1,000 events an answer
        const answer = await api<{ events: JobEvent[] }>(`/api/jobs/${jobId}/events/?after=${after}`)
        for (const e of answer.events) if (e.kind === 'log') found.push({ seq: e.seq, text: String(e.data.line) })
        if (answer.events.length < 1000) break
        after = answer.events[answer.events.length - 1].seq
      }
      return found
    }
    load().then((found) => { if (live) setLines(found) }).catch((e) => { if (live) setError((e as ApiError).message) })
    return () => { live = false }
  }, [jobId])

  if (error) return <div className="error" role="alert">Log: {error}</div>
  if (!lines) return <p className="muted">Loading the log…</p>
  return (
    <pre className="log compact" data-testid="job-log">
      {lines.length ? lines.map((l) => <div key={l.seq} className="log-line">{l.text}</div>) : <span className="muted">No log lines.</span>}
    </pre>
  )
}

// The post-processing runs of a run or dataset, newest first: title, what they were given, state,
// time, outputs. While queued or running, its live job panel (progress, log, cancel); once finished,
// its log on demand (logs: the ids whose log is open).
export function OutputsList({ base, items, plugins = [], logs, opened, onOpen, onFinished, onToggleLog }: {
  base: string; items: Postprocess[]; plugins?: Plugin[]; logs: Set<number>; opened: { id: number; path: string } | null
  onOpen: (postprocess: Postprocess, output: PostprocessOutput) => void; onFinished: (postprocess: Postprocess) => void
  onToggleLog: (postprocess: Postprocess) => void
}) {
  if (items.length === 0) {
    return <p className="empty" data-testid="outputs-list">No outputs yet: right-click a cell of the table and pick a plugin.</p>
  }
  return (
    <ul className="outputs-list" data-testid="outputs-list">
      {items.map((pp) => {
        const running = pp.state === 'queued' || pp.state === 'running'
        const summary = paramSummary(pp.params ?? {}, plugins.find((p) => p.id === pp.plugin_id))
        const logOpen = !running && logs.has(pp.id)
        return (
          <li key={pp.id} className="output-entry" data-testid={`postprocess-${pp.id}`} data-state={pp.state}>
            <div className="job-head">
              <strong>{pp.title}</strong>
              <span className={`badge state-${pp.state}`}>{pp.state}</span>
              <span className="spacer" />
              {!running && <button type="button" className="secondary small" aria-expanded={logOpen}
                aria-controls={`log-${pp.id}`} onClick={() => onToggleLog(pp)}>{logOpen ? 'Hide log' : 'Log'}</button>}
            </div>
            {summary && <div className="param-summary" title={summary} data-testid="param-summary">{summary}</div>}
            <div className="muted">{formatDate(pp.created_at)}</div>
            {pp.state === 'failed' && pp.message && <div className="error" role="alert">{pp.message}</div>}
            {pp.outputs.length > 0 && (
              <ul className="output-files">
                {pp.outputs.map((o) => {
                  const active = opened?.id === pp.id && opened.path === o.path
                  return (
                    <li key={o.path}>
                      <button type="button" className={active ? 'link-button active' : 'link-button'} aria-pressed={active}
                        data-testid={`output-${o.path}`} onClick={() => onOpen(pp, o)}>{o.path}</button>
                      <span className="muted"> {o.kind} · </span>
                      <a href={outputUrl(base, o.path)} download aria-label={`Download ${o.path}`}>download</a>
                    </li>)
                })}
              </ul>
            )}
            {running && <JobPanel key={pp.job} jobId={pp.job} untitled onFinished={() => onFinished(pp)} />}
            {logOpen && <div id={`log-${pp.id}`}><JobLog jobId={pp.job} /></div>}
          </li>)
      })}
    </ul>
  )
}
