import type { ReactNode } from 'react'
import { Modal } from './Modal'

export interface ResultImage { src: string; caption: string; overlay?: string; testId?: string }

// An evaluation image opened larger, with what the model said about it (children: its scores);
// Previous / Next step through the images of the grid it was opened from.
export function ResultDialog({ title, images, children, onClose, onPrevious, onNext, testId = 'result-dialog' }: {
  title: string; images: ResultImage[]; children?: ReactNode; onClose: () => void
  onPrevious?: () => void; onNext?: () => void; testId?: string
}) {
  return (
    <Modal title={title} onClose={onClose} testId={testId} wide>
      <div className="result-dialog-images">
        {images.map((image) => (
          <figure key={image.src + image.caption} className="result-large">
            <div className="result-large-frame">
              <img src={image.src} alt={image.caption} data-testid={image.testId} />
              {image.overlay && <img className="overlay" src={image.overlay} alt="" data-testid={image.testId && `${image.testId}-overlay`} />}
            </div>
            <figcaption>{image.caption} · <a href={image.src} target="_blank" rel="noreferrer">open on its own</a></figcaption>
          </figure>
        ))}
      </div>
      {children}
      {(onPrevious || onNext) && (
        <div className="pager">
          <button type="button" className="secondary" disabled={!onPrevious} onClick={onPrevious} data-testid="result-previous">← Previous image</button>
          <button type="button" className="secondary" disabled={!onNext} onClick={onNext} data-testid="result-next">Next image →</button>
        </div>
      )}
    </Modal>
  )
}

// A classifier's scores for one image, highest first, as bars proportional to the score; the
// actual class is marked.
export function ScoreBars({ names, scores, actual }: { names: string[]; scores: number[]; actual?: number }) {
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a])
  return (
    <table className="grid score-bars" data-testid="result-scores">
      <thead><tr><th>class</th><th>score</th><th></th></tr></thead>
      <tbody>{order.map((i, rank) => (
        <tr key={i} className={[rank === 0 ? 'predicted' : '', i === actual ? 'actual' : ''].filter(Boolean).join(' ') || undefined}>
          <td>{names[i] ?? i}{i === actual && <span className="muted"> (actual)</span>}{rank === 0 && <span className="muted"> (predicted)</span>}</td>
          <td className="number">{(100 * scores[i]).toFixed(1)}%</td>
          <td className="score-track"><span className="class-score-bar" style={{ width: `${100 * Math.max(0, Math.min(1, scores[i]))}%` }} /></td>
        </tr>))}</tbody>
    </table>
  )
}
