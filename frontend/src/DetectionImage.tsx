import { useState } from 'react'
import type { BoxAnnotation } from './BoxedImage'

// A predicted box: the dataset's normalised cx, cy, w, h plus the detector's score.
export interface ScoredBox extends BoxAnnotation { score: number }

export const TRUTH_COLOUR = '#2ee62e'
export const PREDICTED_COLOUR = '#ff8c00'

function iou(a: BoxAnnotation, b: BoxAnnotation): number {
  const w = Math.min(a.cx + a.w / 2, b.cx + b.w / 2) - Math.max(a.cx - a.w / 2, b.cx - b.w / 2)
  const h = Math.min(a.cy + a.h / 2, b.cy + b.h / 2) - Math.max(a.cy - a.h / 2, b.cy - b.h / 2)
  const inter = Math.max(0, w) * Math.max(0, h)
  const union = a.w * a.h + b.w * b.h - inter
  return union > 0 ? inter / union : 0
}

// False positives + missed truth boxes at `threshold`, matched as the evaluation's #errors column is
// (best score first, each to the unmatched truth box of its class with the highest IoU >= 0.5), so
// the count follows the slider and equals #errors at the run's threshold.
export function imageErrors(predicted: ScoredBox[], truth: BoxAnnotation[], threshold: number): number {
  const kept = predicted.filter((b) => b.score >= threshold).sort((a, b) => b.score - a.score)
  const matched = new Set<number>()
  let hits = 0
  for (const box of kept) {
    const ious = truth.map((t) => iou(box, t))
    const order = truth.map((_, i) => i).sort((a, b) => ious[b] - ious[a])
    for (const g of order) {
      if (ious[g] < 0.5) break
      if (!matched.has(g) && truth[g].cls === box.cls) { matched.add(g); hits++; break }
    }
  }
  return kept.length - hits + truth.length - hits
}

// An image with its truth boxes (solid green) and the predicted boxes at or above `threshold`
// (dashed orange, labelled with class and score). The boxes are drawn in the image's own
// normalised coordinates, so they fit whatever size the image is shown at.
export function DetectionImage({ src, truth, predicted, threshold, classes, large = false, truthLabels = false }: {
  src: string; truth: BoxAnnotation[]; predicted: ScoredBox[]; threshold: number; classes: string[]
  large?: boolean; truthLabels?: boolean
}) {
  const [failed, setFailed] = useState(false)
  const shown = predicted.filter((b) => b.score >= threshold)
  const name = (cls: number) => classes[cls] ?? `class ${cls}`
  const left = (b: BoxAnnotation) => `${Math.max(0, b.cx - b.w / 2) * 100}%`
  return (
    <div className={`pred-boxed${large ? ' pred-large' : ''}`} data-testid="detection-image"
      data-truth={truth.length} data-predicted={shown.length}>
      {failed
        ? <div className="pred-missing" role="alert">The image cannot be loaded (missing from the validation dataset?)</div>
        : <img src={src} alt="" onError={() => setFailed(true)} />}
      <svg viewBox="0 0 1 1" preserveAspectRatio="none" aria-hidden="true">
        {truth.map((b, i) => (  // a dark outline under the green: visible on a green object too
          <rect key={`u${i}`} x={b.cx - b.w / 2} y={b.cy - b.h / 2} width={b.w} height={b.h} fill="none"
            stroke="#000" strokeOpacity={0.6} strokeWidth={large ? 5 : 3.5} vectorEffect="non-scaling-stroke" />))}
        {truth.map((b, i) => (
          <rect key={`t${i}`} x={b.cx - b.w / 2} y={b.cy - b.h / 2} width={b.w} height={b.h} fill="none"
            stroke={TRUTH_COLOUR} strokeWidth={large ? 3 : 2} vectorEffect="non-scaling-stroke" data-testid="truth-box">
            <title>{`truth: ${name(b.cls)}`}</title></rect>))}
        {shown.map((b, i) => (
          <rect key={`p${i}`} x={b.cx - b.w / 2} y={b.cy - b.h / 2} width={b.w} height={b.h} fill="none"
            stroke={PREDICTED_COLOUR} strokeWidth={large ? 2.5 : 1.5} strokeDasharray={large ? '6 4' : '4 3'}
            vectorEffect="non-scaling-stroke" data-testid="pred-box" data-score={b.score}>
            <title>{`predicted: ${name(b.cls)} ${b.score.toFixed(2)}`}</title></rect>))}
      </svg>
      {shown.map((b, i) => (
        <span key={`l${i}`} className="pred-box-label" style={{ left: left(b), top: `${Math.max(0, b.cy - b.h / 2) * 100}%` }}>
          {name(b.cls)} {b.score.toFixed(2)}</span>))}
      {truthLabels && truth.map((b, i) => (
        <span key={`tl${i}`} className="pred-truth-label" style={{ left: left(b), top: `${Math.min(1, b.cy + b.h / 2) * 100}%` }}>
          {name(b.cls)}</span>))}
    </div>
  )
}
