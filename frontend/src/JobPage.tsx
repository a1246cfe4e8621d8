import { useEffect, useState } from 'react'
import { api } from './api'
import { JobPanel, TargetLink } from './JobPanel'
import type { Job } from './types'

export function JobPage({ jobId }: { jobId: number }) {
  const [job, setJob] = useState<Job | null>(null)
  useEffect(() => { api<Job>(`/api/jobs/${jobId}/`).then(setJob).catch(() => setJob(null)) }, [jobId])
  return (
    <div className="page">
      <p><a href="#/jobs">← Jobs</a></p>
      {job?.target && <p className="muted">Worked on: <TargetLink target={job.target} /></p>}
      <JobPanel jobId={jobId} />
    </div>
  )
}
