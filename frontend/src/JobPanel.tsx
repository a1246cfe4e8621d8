import { useEffect, useRef, useState } from 'react'
import { api, ApiError } from './api'
import { logTime } from './logTime'
import { useJobEvents } from './useJobEvents'
import type { Job, JobEvent, JobTarget } from './types'

// The share of the work done: only a job that succeeded is full without a count; a failed or
// cancelled one shows how far it got.
export function jobPercent(state: string, done: number, total: number): number {
  if (total > 0) return Math.min(100, Math.round((100 * done) / total))
  return state === 'succeeded' ? 100 : 0
}

// A progress bar coloured by the job's state (blue while it works or once it succeeded, red when it
// failed, grey when cancelled).
export function JobProgress({ state, done, total, compact = false }: {
  state: string; done: number; total: number; compact?: boolean
}) {
  const percent = jobPercent(state, done, total)
  return (
    <div className={compact ? 'progress compact' : 'progress'} role="progressbar" aria-valuenow={percent}
      aria-valuemin={0} aria-valuemax={100} data-testid="job-progress" data-done={done} data-total={total}
      data-state={state}>
      <div className={`bar bar-${state}`} style={{ width: `${percent}%` }} />
      <span>{total > 0 ? `${done} / ${total}` : ''} {percent}%</span>
    </div>
  )
}

// A link to what a job worked on (a run, a dataset), or its name when it has been deleted.
export function TargetLink({ target }: { target: JobTarget }) {
  if (target.deleted) return <span className="muted">{target.kind} #{target.id} (deleted)</span>
  if (target.kind === 'run') {
    return <a href={`#/runs/${target.id}`} className="target-link">{target.name} <span className="muted">of {target.project}</span></a>
  }
  return <a href={`#/datasets/${target.id}`} className="target-link">dataset {target.name}</a>
}

// Live log lines, a progress bar and the job's state; cancel while it runs. Untitled where the
// page around it already names the job (the outputs list).
export function JobPanel({ jobId, onFinished, onEvents, untitled = false }: {
  jobId: number; onFinished?: (job: Job) => void; onEvents?: (events: JobEvent[]) => void; untitled?: boolean
}) {
  const stream = useJobEvents(jobId, 'queued', onEvents)
  const [job, setJob] = useState<Job | null>(null)
  const [error, setError] = useState('')
  const logRef = useRef<HTMLPreElement>(null)
  // Until the stream has replayed the job's events, the row's own state and progress stand in
  // (a finished job is never shown as queued while its socket connects).
  const replayed = stream.lastSeq > 0 || job === null
  const state = replayed ? stream.state : job.state
  const [done, total] = replayed ? [stream.done, stream.total] : [job.progress_done, job.progress_total]
  const final = ['succeeded', 'failed', 'cancelled'].includes(stream.state)

  useEffect(() => {
    api<Job>(`/api/jobs/${jobId}/`).then(setJob).catch((e) => setError((e as ApiError).message))
  }, [jobId, final])

  useEffect(() => {
    if (final && job && onFinished) onFinished(job)
  }, [final, job])  // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const el = logRef.current
    if (el) el.scrollTop = el.scrollHeight
  }, [stream.lines.length])

  const cancel = async () => {
    try {
      await api(`/api/jobs/${jobId}/cancel/`, { method: 'POST' })
    } catch (e) {
      setError((e as ApiError).message)
    }
  }

  return (
    <div className="card job-panel" data-testid="job-panel" data-job={jobId} data-state={stream.state} data-seq={stream.lastSeq}>
      <div className="job-head">
        {!untitled && <strong>{job?.title || `Job ${jobId}`}</strong>}
        <span className={`badge state-${state}`} data-testid="job-state">{state}</span>
        <span className={stream.connected ? 'live on' : 'live'}>
          {stream.connected ? 'live' : final ? '' : stream.lastSeq ? 'reconnecting…' : 'connecting…'}</span>
        <span className="spacer" />
        {!final && !['succeeded', 'failed', 'cancelled'].includes(state) && <button className="secondary" onClick={cancel}>Cancel</button>}
      </div>
      <JobProgress state={state} done={done} total={total} />
      <pre className="log" ref={logRef} data-testid="job-log">
        {stream.lines.map((l) => <div key={l.seq} className="log-line" data-time={logTime(l.ts)}
          title={l.ts ? new Date(l.ts * 1000).toLocaleString() : undefined}>{l.text}</div>)}
      </pre>
      {stream.state === 'failed' && <div className="error" role="alert">Failed: {stream.message}</div>}
      {(error || stream.error) && <div className="error" role="alert">{error || stream.error}</div>}
      {stream.state === 'succeeded' && job && job.datasets.length > 0 && (
        <div className="notice">Created: {job.datasets.map((d) => (
          <a key={d.id} href={`#/datasets/${d.id}`} className="dataset-link">{d.name}</a>))}</div>
      )}
    </div>
  )
}
