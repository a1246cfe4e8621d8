import { useEffect, useImperativeHandle, useRef, useState, forwardRef } from 'react'
import { api, ApiError } from './api'

export interface EpochPoint { epoch: number; train_loss: number; train_error: number; valid_error: number }
export interface CurvesHandle { add: (runId: number, point: EpochPoint) => void }

// The server's Bokeh figure (one source per run, named run-<id>), embedded with BokehJS; live epochs
// are streamed into the run's source.
export const LearningCurves = forwardRef<CurvesHandle, { runIds: number[] }>(function LearningCurves({ runIds }, ref) {
  const element = useRef<HTMLDivElement>(null)
  const documentRef = useRef<any>(null)
  const pending = useRef<{ runId: number; point: EpochPoint }[]>([])
  const [error, setError] = useState('')
  const key = runIds.join(',')

  const stream = (runId: number, point: EpochPoint) => {
    const source = documentRef.current?.get_model_by_name(`run-${runId}`)
    if (!source) { pending.current.push({ runId, point }); return }
    if ((source.data.epoch as number[]).includes(point.epoch)) return
    source.stream({ epoch: [point.epoch], train_loss: [point.train_loss], train_error: [point.train_error],
      valid_error: [point.valid_error] })
  }
  useImperativeHandle(ref, () => ({ add: stream }))

  useEffect(() => {
    const bokeh = (window as any).Bokeh
    if (!bokeh || !element.current) { setError('BokehJS did not load'); return }
    let cancelled = false
    api(`/api/curves/?runs=${key}`).then(async (item) => {
      if (cancelled || !element.current) return
      element.current.innerHTML = ''
      await bokeh.embed.embed_item(item, element.current)
      documentRef.current = bokeh.documents[bokeh.documents.length - 1]
      const waiting = pending.current
      pending.current = []
      waiting.forEach((p) => stream(p.runId, p.point))
    }).catch((e) => setError((e as ApiError).message))
    return () => { cancelled = true }
  }, [key])  // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <div className="card">
      <strong>Learning curves</strong>
      <div ref={element} data-testid="learning-curves" />
      {error && <div className="error">{error}</div>}
    </div>
  )
})
