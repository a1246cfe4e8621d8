import { useEffect, useRef, type ReactNode } from 'react'
import { createPortal } from 'react-dom'

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea, [tabindex]:not([tabindex="-1"])'

// A modal dialog: titled, Escape or Close closes it, Tab stays inside, focus returns where it was.
export function Modal({ title, onClose, children, testId, wide }: {
  title: string; onClose: () => void; children: ReactNode; testId?: string; wide?: boolean
}) {
  const dialog = useRef<HTMLDivElement>(null)
  const close = useRef(onClose)
  close.current = onClose

  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null
    const first = dialog.current?.querySelector<HTMLElement>(
      '.dialog-body input:not([readonly]):not([type=hidden]), .dialog-body select, .dialog-body button') ??
      dialog.current?.querySelector<HTMLElement>(FOCUSABLE)
    first?.focus()
    return () => { if (previous && document.contains(previous)) previous.focus() }
  }, [])

  const onKeyDown = (event: React.KeyboardEvent) => {
    if (event.key === 'Escape') {
      event.stopPropagation()
      close.current()
      return
    }
    if (event.key !== 'Tab' || !dialog.current) return
    const items = Array.from(dialog.current.querySelectorAll<HTMLElement>(FOCUSABLE)).filter((e) => e.offsetParent !== null)
    if (items.length === 0) return
    const [head, tail] = [items[0], items[items.length - 1]]
    if (event.shiftKey && document.activeElement === head) { event.preventDefault(); tail.focus() }
    else if (!event.shiftKey && document.activeElement === tail) { event.preventDefault(); head.focus() }
  }

  return createPortal(
    <div className="dialog-backdrop">
      <div ref={dialog} className={wide ? 'card dialog wide' : 'card dialog'} role="dialog" aria-modal="true"
        aria-label={title} data-testid={testId} onKeyDown={onKeyDown}>
        <div className="page-head">
          <h3>{title}</h3>
          <span className="spacer" />
          <button type="button" className="secondary" onClick={onClose}>Close</button>
        </div>
        <div className="dialog-body">{children}</div>
      </div>
    </div>,
    document.body,
  )
}
