import { useEffect, useRef, useState } from 'react'
import type { JobEvent } from './types'

const FINAL = ['succeeded', 'failed', 'cancelled']

export interface JobStream {
  lines: { seq: number; text: string; ts?: number }[]  // ts: when the server stored the line
  done: number
  total: number
  state: string
  message: string
  connected: boolean
  lastSeq: number
  error: string
}

// Every open job socket, so a test (or a debugging user) can drop them and watch the resume.
const sockets = new Set<WebSocket>()
;(window as any).__nncDropSockets = () => sockets.forEach((s) => s.close())

// Streams a job's events over /ws/jobs/<id>/?after=<seq>; on a dropped connection it reconnects
// with the last seq it saw, so the server replays exactly the missed events.
export function useJobEvents(jobId: number, initialState = 'queued',
                             onEvents?: (events: JobEvent[]) => void): JobStream {
  const [stream, setStream] = useState<JobStream>({
    lines: [], done: 0, total: 0, state: initialState, message: '', connected: false, lastSeq: 0, error: '',
  })
  const lastSeq = useRef(0)
  const finished = useRef(false)
  const listener = useRef(onEvents)
  listener.current = onEvents

  useEffect(() => {
    let socket: WebSocket | null = null
    let retry = 0
    let timer: number | undefined
    let disposed = false
    lastSeq.current = 0
    finished.current = false

    const apply = (events: JobEvent[]) => {
      const fresh = events.filter((e) => e.seq > lastSeq.current)
      if (fresh.length === 0) return
      lastSeq.current = fresh[fresh.length - 1].seq
      listener.current?.(fresh)
      setStream((prev) => {
        const next = { ...prev, lines: prev.lines.slice(), lastSeq: lastSeq.current }
        for (const e of fresh) {
          if (e.kind === 'log') next.lines.push({ seq: e.seq, text: String(e.data.line), ts: e.ts })
          else if (e.kind === 'progress') { next.done = e.data.done; next.total = e.data.total }
          else if (e.kind === 'state') {
            next.state = e.data.state
            next.message = e.data.message || ''
            if (FINAL.includes(e.data.state)) finished.current = true
          }
        }
        return next
      })
    }

    const connect = () => {
      const proto = window.location.protocol === 'https:' ? 'wss' : 'ws'
      socket = new WebSocket(`${proto}://${window.location.host}/ws/jobs/${jobId}/?after=${lastSeq.current}`)
      sockets.add(socket)
      socket.onopen = () => { retry = 0; setStream((p) => ({ ...p, connected: true, error: '' })) }
      socket.onmessage = (message) => {
        const data = JSON.parse(message.data)
        if (data.type === 'events') apply(data.events)
        if (finished.current) socket?.close(1000)
      }
      socket.onclose = (event) => {
        if (socket) sockets.delete(socket)
        setStream((p) => ({ ...p, connected: false }))
        if (disposed || finished.current) return
        if (event.code === 4404 || event.code === 4401) {
          setStream((p) => ({ ...p, error: event.code === 4404 ? 'This job does not exist.' : 'Please sign in again.' }))
          return
        }
        retry = Math.min(retry + 1, 5)
        timer = window.setTimeout(connect, 300 * retry)
      }
    }
    connect()
    return () => {
      disposed = true
      window.clearTimeout(timer)
      socket?.close(1000)
    }
  }, [jobId])

  return stream
}
