import { Fragment, useCallback, useEffect, useRef, useState } from 'react'
import { api, ApiError, formatDate } from './api'
import { JobPanel, JobProgress, TargetLink } from './JobPanel'
import type { Job } from './types'

const PAGE = 50
const FINAL = ['succeeded', 'failed', 'cancelled']
const KINDS: Record<string, string> = { preprocess: 'dataset', training: 'training', postprocess: 'post-processing' }

function duration(job: Job): string {
  if (!job.started_at) return ''
  const end = job.finished_at ? new Date(job.finished_at) : new Date()
  const seconds = Math.max(0, (end.getTime() - new Date(job.started_at).getTime()) / 1000)
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`
}

// What a job made or worked on: the datasets it created, the run it trained (or evaluated, or
// post-processed), the dataset it post-processed.
function Made({ job }: { job: Job }) {
  return <>
    {job.datasets.map((d) => <a key={d.id} href={`#/datasets/${d.id}`} className="dataset-link">{d.name}</a>)}
    {job.target && <TargetLink target={job.target} />}
  </>
}

// Every job of the user, newest first (older ones page in): kind, plugin, state, progress, times and
// what it made; each row opens its log (live while it runs). Rows of unfinished jobs refresh.
export function JobsPage() {
  const [jobs, setJobs] = useState<Job[] | null>(null)
  const [next, setNext] = useState<number | null>(null)
  const [open, setOpen] = useState<Set<number>>(new Set())
  const [error, setError] = useState('')
  const loaded = useRef(PAGE)

  const load = useCallback(async (before?: number) => {
    try {
      const query = before === undefined ? `limit=${loaded.current}` : `limit=${PAGE}&before=${before}`
      const page = await api<{ results: Job[]; next: number | null }>(`/api/jobs/?${query}`)
      setError('')
      if (before === undefined) {
        setJobs(page.results)
        setNext(page.next)
      } else {
        setJobs((prev) => [...(prev ?? []), ...page.results])
        setNext(page.next)
        loaded.current += page.results.length
      }
    } catch (e) {
      setError((e as ApiError).message)
    }
  }, [])

  useEffect(() => { load() }, [load])

  // While a listed job is unfinished the list is read again every two seconds.
  const busy = (jobs ?? []).some((j) => !FINAL.includes(j.state))
  useEffect(() => {
    if (!busy) return
    const timer = window.setInterval(() => load(), 2000)
    return () => window.clearInterval(timer)
  }, [busy, load])

  const toggle = (id: number) => setOpen((prev) => {
    const next = new Set(prev)
    if (next.has(id)) next.delete(id)
    else next.add(id)
    return next
  })

  return (
    <div className="page">
      <div className="page-head"><h2>Jobs</h2><span className="spacer" />
        <button className="secondary" onClick={() => load()}>Refresh</button></div>
      {error && <div className="error" role="alert">{error}</div>}
      {jobs === null ? <p>Loading…</p> : jobs.length === 0 ? (
        <p className="empty">No jobs yet: creating a dataset, training a run or running a plugin makes one.</p>
      ) : (
        <table className="grid jobs-table" data-testid="jobs-list">
          <thead><tr><th>Job</th><th>Kind</th><th>Plugin</th><th>State</th><th>Progress</th><th>Created</th>
            <th>Took</th><th>Ran on</th><th>Made / worked on</th><th></th></tr></thead>
          <tbody>{jobs.map((j) => (
            <Fragment key={j.id}>
              <tr data-testid={`job-row-${j.id}`} data-state={j.state}>
                <td><a href={`#/jobs/${j.id}`}>#{j.id}</a> {j.title}</td>
                <td>{KINDS[j.kind] ?? j.kind}</td>
                <td><code>{j.plugin_id}</code></td>
                <td><span className={`badge state-${j.state}`} title={j.message || undefined}>{j.state}</span>
                  {j.state === 'failed' && j.message && <div className="hint job-message">{j.message}</div>}</td>
                <td className="progress-cell"><JobProgress state={j.state} done={j.progress_done} total={j.progress_total} compact /></td>
                <td>{formatDate(j.created_at)}</td>
                <td>{duration(j)}</td>
                <td className="job-worker" data-testid={`job-worker-${j.id}`}>{j.worker || (j.state === 'queued' ? 'waiting for a worker' : '')}</td>
                <td><Made job={j} /></td>
                <td><button className="secondary small" onClick={() => toggle(j.id)} aria-expanded={open.has(j.id)}
                  data-testid={`job-log-toggle-${j.id}`}>{open.has(j.id) ? 'Hide log' : 'Log'}</button></td>
              </tr>
              {open.has(j.id) && <tr className="job-log-row"><td colSpan={10}><JobPanel jobId={j.id} untitled
                onFinished={() => { if (!FINAL.includes(j.state)) load() }} /></td></tr>}
            </Fragment>
          ))}</tbody>
        </table>
      )}
      {next !== null && <button className="secondary" onClick={() => load(next)}>Older jobs</button>}
    </div>
  )
}
