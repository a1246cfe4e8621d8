import { Modal } from './Modal'
import { ZoomableImage } from './ZoomableImage'

// The full image of a table cell, zoomable, with a link to open it on its own.
export function ImageDialog({ src, name, onClose }: { src: string; name: string; onClose: () => void }) {
  return (
    <Modal title={name} onClose={onClose} testId="image-dialog" wide>
      <ZoomableImage src={src} alt={name} testId="full-image" />
      <p><a href={src} target="_blank" rel="noreferrer">Open in a new tab</a></p>
    </Modal>
  )
}
