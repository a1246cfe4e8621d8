import { useEffect, useImperativeHandle, useRef, useState, forwardRef } from 'react'
import { api } from './api'
import { columnDataSource, embedItem, type BokehDocument, type Embedded } from './bokeh'

export interface EpochPoint { epoch: number; train_loss: number; train_error: number; valid_error: number }
export interface CurvesHandle { add: (runId: number, point: EpochPoint) => void }

// The server's Bokeh figure (one source per run, named run-<id>), embedded with BokehJS; live epochs
// are streamed into the run's source.
export const LearningCurves = forwardRef<CurvesHandle, { runIds: number[] }>(function LearningCurves({ runIds }, ref) {
  const element = useRef<HTMLDivElement>(null)
  const documentRef = useRef<BokehDocument | null>(null)
  const pending = useRef<{ runId: number; point: EpochPoint }[]>([])
  const [error, setError] = useState('')
  const key = runIds.join(',')

  const stream = (runId: number, point: EpochPoint) => {
    const source = documentRef.current && columnDataSource(documentRef.current, `run-${runId}`)
    if (!source) { pending.current.push({ runId, point }); return }
    if (Array.from(source.data.epoch as ArrayLike<number>).includes(point.epoch)) return
    source.stream({ epoch: [point.epoch], train_loss: [point.train_loss], train_error: [point.train_error],
      valid_error: [point.valid_error] })
  }
  useImperativeHandle(ref, () => ({ add: stream }))

  useEffect(() => {
    if (!element.current) return
    let cancelled = false
    let embedded: Embedded | null = null
    api<unknown>(`/api/curves/?runs=${key}`).then(async (item) => {
      if (cancelled || !element.current) return
      embedded = await embedItem(item, element.current)
      if (cancelled) { embedded.dispose(); return }
      documentRef.current = embedded.doc
      const waiting = pending.current
      pending.current = []
      waiting.forEach((p) => stream(p.runId, p.point))
    }).catch((e) => setError((e as Error).message))
    return () => { cancelled = true; embedded?.dispose(); documentRef.current = null }
  }, [key])  // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <div className="card">
      <strong>Learning curves</strong>
      <div ref={element} data-testid="learning-curves" />
      {error && <div className="error">{error}</div>}
    </div>
  )
})
