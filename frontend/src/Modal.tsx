import { useId, useLayoutEffect, useRef, type ReactNode } from 'react'
import { createPortal } from 'react-dom'

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), ' +
  'textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])'
// Where focus starts: the first field of the body (a readonly field, e.g. "this run's model", is skipped).
const FIRST_FIELD = '.dialog-body input:not([readonly]):not([disabled]):not([type=hidden]), ' +
  '.dialog-body select:not([disabled]), .dialog-body textarea:not([disabled]), .dialog-body button:not([disabled])'

const visible = (el: HTMLElement) => el.getClientRects().length > 0

// The open modals, innermost last: only that one handles keys and keeps focus.
const open: object[] = []

// A modal dialog: titled, Escape or Close closes it, Tab stays inside, focus returns where it was.
// It owns focus for as long as it is open, also when its content arrives late or the focused
// field is replaced (a form whose selects fill in after a fetch): focus then goes to the first
// field, or to the dialog itself (tabIndex -1) until there is one.
export function Modal({ title, onClose, children, testId, wide }: {
  title: string; onClose: () => void; children: ReactNode; testId?: string; wide?: boolean
}) {
  const dialog = useRef<HTMLDivElement>(null)
  const close = useRef(onClose)
  close.current = onClose
  const titleId = useId()

  useLayoutEffect(() => {
    const el = dialog.current
    if (!el) return
    const token = {}
    open.push(token)
    const topmost = () => open[open.length - 1] === token
    const active = document.activeElement
    const previous = active instanceof HTMLElement && active !== document.body && !el.contains(active) ? active : null
    // Until the user moves focus themselves, it goes to the first field as soon as one appears.
    let settled = false

    const items = () => Array.from(el.querySelectorAll<HTMLElement>(FOCUSABLE)).filter(visible)
    const place = () => {
      const first = Array.from(el.querySelectorAll<HTMLElement>(FIRST_FIELD)).find(visible)
      if (first) {
        first.focus()
        settled = true
      } else if (!el.contains(document.activeElement)) {
        el.focus()
      }
    }
    const lost = () => {
      const now = document.activeElement
      return !now || now === document.body || !el.contains(now)
    }
    const check = () => {
      if (!topmost()) return
      if (lost() || (!settled && document.activeElement === el)) place()
    }
    place()

    // Content that arrives (or a focused element that is replaced) is seen as a mutation; a field
    // that blurs without focus going anywhere (disabled, removed) after the current task.
    const observer = new MutationObserver(check)
    observer.observe(el, { childList: true, subtree: true, attributes: true, attributeFilter: ['disabled', 'hidden'] })
    let timer: number | undefined
    const onFocusOut = (event: FocusEvent) => {
      if (event.relatedTarget && el.contains(event.relatedTarget as Node)) return
      window.clearTimeout(timer)
      timer = window.setTimeout(check, 0)
    }
    const onUser = () => { settled = true }
    el.addEventListener('focusout', onFocusOut)
    el.addEventListener('pointerdown', onUser)

    // Keys on the document, so they work wherever focus is (even on <body>); an inner widget that
    // handles a key itself (preventDefault / stopPropagation) keeps it.
    const onKeyDown = (event: KeyboardEvent) => {
      if (!topmost() || event.defaultPrevented) return
      if (event.key === 'Escape') {
        event.preventDefault()
        close.current()
        return
      }
      if (event.key !== 'Tab') return
      settled = true
      const list = items()
      if (list.length === 0) { event.preventDefault(); el.focus(); return }
      const [head, tail] = [list[0], list[list.length - 1]]
      const now = document.activeElement
      if (lost() || now === el) {
        event.preventDefault()
        ;(event.shiftKey ? tail : head).focus()
      } else if (event.shiftKey && now === head) {
        event.preventDefault()
        tail.focus()
      } else if (!event.shiftKey && now === tail) {
        event.preventDefault()
        head.focus()
      }
    }
    // Focus that goes outside (a click on the page behind, another window's element) comes back.
    const onFocusIn = (event: FocusEvent) => {
      if (topmost() && event.target instanceof Node && !el.contains(event.target)) place()
    }
    document.addEventListener('keydown', onKeyDown)
    document.addEventListener('focusin', onFocusIn)

    return () => {
      observer.disconnect()
      window.clearTimeout(timer)
      el.removeEventListener('focusout', onFocusOut)
      el.removeEventListener('pointerdown', onUser)
      document.removeEventListener('keydown', onKeyDown)
      document.removeEventListener('focusin', onFocusIn)
      const at = open.indexOf(token)
      if (at >= 0) open.splice(at, 1)
      const now = document.activeElement
      const focusHere = !now || now === document.body || el.contains(now)
      if (previous && focusHere && document.contains(previous)) previous.focus()
    }
  }, [])

  return createPortal(
    <div className="dialog-backdrop">
      <div ref={dialog} className={wide ? 'card dialog wide' : 'card dialog'} role="dialog" aria-modal="true"
        aria-labelledby={titleId} data-testid={testId} tabIndex={-1}>
        <div className="page-head dialog-head">
          <h3 id={titleId}>{title}</h3>
          <span className="spacer" />
          <button type="button" className="secondary" onClick={onClose}>Close</button>
        </div>
        <div className="dialog-body">{children}</div>
      </div>
    </div>,
    document.body,
  )
}
