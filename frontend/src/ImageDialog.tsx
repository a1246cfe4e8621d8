import type { ReactNode } from 'react'
import { Modal } from './Modal'
import { ZoomableImage } from './ZoomableImage'

// The full image of a table cell, zoomable, with a link to open it on its own; children: what the
// model said about its row (its scores), where the table has them.
export function ImageDialog({ src, name, onClose, children }: { src: string; name: string; onClose: () => void; children?: ReactNode }) {
  return (
    <Modal title={name} onClose={onClose} testId="image-dialog" wide>
      <ZoomableImage src={src} alt={name} testId="full-image" />
      {children}
      <p><a href={src} target="_blank" rel="noreferrer">Open in a new tab</a></p>
    </Modal>
  )
}
