import { formatDate } from './api'
import { JobPanel } from './JobPanel'
import type { Postprocess, PostprocessOutput } from './types'
import { outputUrl } from './workspace'

// The post-processing runs of a run or dataset, newest first: state, time, outputs; a live job
// panel (log + progress) for the ones running or opened.
export function OutputsList({ base, items, live, opened, onOpen, onFinished, onToggleLog }: {
  base: string; items: Postprocess[]; live: Set<number>; opened: { id: number; path: string } | null
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
        return (
          <li key={pp.id} className="output-entry" data-testid={`postprocess-${pp.id}`} data-state={pp.state}>
            <div className="job-head">
              <strong>{pp.title}</strong>
              <span className={`badge state-${pp.state}`}>{pp.state}</span>
              <span className="spacer" />
              {!running && <button type="button" className="secondary small" aria-expanded={live.has(pp.id)}
                onClick={() => onToggleLog(pp)}>{live.has(pp.id) ? 'Hide log' : 'Log'}</button>}
            </div>
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
            {(running || live.has(pp.id)) && <JobPanel key={pp.job} jobId={pp.job} onFinished={() => onFinished(pp)} />}
          </li>)
      })}
    </ul>
  )
}
