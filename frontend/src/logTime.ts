// The time a job event was stored (its `ts`, seconds since the epoch, from the server's clock), as
// a log line shows it: the time of day, with the date when it is not today.
export function logTime(ts: number | undefined, now: Date = new Date()): string {
  if (ts === undefined || !Number.isFinite(ts)) return ''
  const at = new Date(ts * 1000)
  const time = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false })
  return at.toDateString() === now.toDateString() ? time : `${at.toLocaleDateString()} ${time}`
}
