import { useEffect, useRef, useState } from 'react'
import { api, ApiError } from './api'
import { useJobEvents } from './useJobEvents'
import type { Job, JobEvent } from './types'

// Live log lines, a progress bar and the job's state; cancel while it runs. Untitled where the
// page around it already names the job (the outputs list).
export function JobPanel({ jobId, onFinished, onEvents, untitled = false }: {
  jobId: number; onFinished?: (job: Job) => void; onEvents?: (events: JobEvent[]) => void; untitled?: boolean
}) {
  const stream = useJobEvents(jobId, 'queued', onEvents)
  const [job, setJob] = useState<Job | null>(null)
  const [error, setError] = useState('')
  const logRef = useRef<HTMLPreElement>(null)
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

  const percent = stream.total > 0 ? Math.round((100 * stream.done) / stream.total) : final ? 100 : 0
  return (
    <div className="card job-panel" data-testid="job-panel" data-job={jobId} data-state={stream.state} data-seq={stream.lastSeq}>
      <div className="job-head">
        {!untitled && <strong>{job?.title || `Job ${jobId}`}</strong>}
        <span className={`badge state-${stream.state}`} data-testid="job-state">{stream.state}</span>
        <span className={stream.connected ? 'live on' : 'live'}>{stream.connected ? 'live' : final ? '' : 'reconnecting…'}</span>
        <span className="spacer" />
        {!final && <button className="secondary" onClick={cancel}>Cancel</button>}
      </div>
      <div className="progress" role="progressbar" aria-valuenow={percent} aria-valuemin={0} aria-valuemax={100}
        data-testid="job-progress" data-done={stream.done} data-total={stream.total}>
        <div className="bar" style={{ width: `${percent}%` }} />
        <span>{stream.total > 0 ? `${stream.done} / ${stream.total}` : ''} {percent}%</span>
      </div>
      <pre className="log" ref={logRef} data-testid="job-log">
        {stream.lines.map((l) => <div key={l.seq} className="log-line">{l.text}</div>)}
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
