import { JobPanel } from './JobPanel'

export function JobPage({ jobId }: { jobId: number }) {
  return (
    <div className="page">
      <p><a href="#/datasets">← Datasets</a></p>
      <JobPanel jobId={jobId} />
    </div>
  )
}
