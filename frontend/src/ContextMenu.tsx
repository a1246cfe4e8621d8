import { useEffect, useLayoutEffect, useRef, useState } from 'react'
import { createPortal } from 'react-dom'

export type MenuAction =
  | { type: 'item'; id: string; label: string; testId?: string; disabled?: boolean; onSelect: () => void }
  | { type: 'submenu'; id: string; label: string; testId?: string; entries: MenuEntry[] }
export type MenuEntry = MenuAction | { type: 'group'; label: string; entries: MenuAction[] }

function actionsOf(entries: MenuEntry[]): MenuAction[] {
  return entries.flatMap((e) => (e.type === 'group' ? e.entries : [e]))
}

const usable = (a: MenuAction) => a.type === 'submenu' || !a.disabled

// One level of the menu (the top one or a submenu). Keys: ↑/↓/Home/End move, → or Enter opens a
// submenu, ← or Escape leaves it, Enter/Space picks, Escape on the top level or Tab closes.
function MenuList({ entries, label, testId, onClose, onBack, focusFirst, className, style, listRef }: {
  entries: MenuEntry[]; label: string; testId?: string; onClose: () => void; onBack?: () => void
  focusFirst: boolean; className: string; style?: React.CSSProperties; listRef?: React.RefObject<HTMLUListElement | null>
}) {
  const actions = actionsOf(entries)
  const items = useRef<(HTMLElement | null)[]>([])
  const [open, setOpen] = useState<{ id: string; focus: boolean } | null>(null)
  const ownList = useRef<HTMLUListElement | null>(null)

  const focusAt = (index: number) => items.current[index]?.focus()
  // On opening by key (also a submenu that the mouse opened, then → was pressed).
  useEffect(() => {
    if (focusFirst) focusAt(actions.findIndex(usable))
  }, [focusFirst])  // eslint-disable-line react-hooks/exhaustive-deps

  // A submenu that would leave the window opens on the other side, or moves up.
  useLayoutEffect(() => {
    const el = ownList.current
    if (!el || !onBack) return
    const rect = el.getBoundingClientRect()
    if (rect.right > window.innerWidth) el.classList.add('flip')
    if (rect.bottom > window.innerHeight) el.style.top = `${Math.min(0, window.innerHeight - rect.bottom - 8)}px`
  }, [onBack])

  const move = (from: number, step: number) => {
    const n = actions.length
    for (let k = 1; k <= n; k++) {
      const at = (((from + step * k) % n) + n) % n
      if (usable(actions[at])) { focusAt(at); return }
    }
  }
  const current = () => items.current.findIndex((el) => el === document.activeElement)

  const activate = (action: MenuAction, byKey: boolean) => {
    if (action.type === 'submenu') { setOpen({ id: action.id, focus: byKey }); return }
    if (action.disabled) return
    onClose()
    action.onSelect()
  }

  const onKeyDown = (event: React.KeyboardEvent) => {
    const at = current()
    const action = at >= 0 ? actions[at] : undefined
    let handled = true
    switch (event.key) {
      case 'ArrowDown': move(at, 1); break
      case 'ArrowUp': move(at < 0 ? 0 : at, -1); break
      case 'Home': move(-1, 1); break
      case 'End': move(actions.length, -1); break
      case 'ArrowRight':
        if (action?.type === 'submenu') setOpen({ id: action.id, focus: true })
        break
      case 'ArrowLeft': if (onBack) onBack(); break
      case 'Escape': if (onBack) onBack(); else onClose(); break
      case 'Enter': case ' ': if (action) activate(action, true); break
      case 'Tab': onClose(); break
      default: handled = false
    }
    if (handled) { event.preventDefault(); event.stopPropagation() }
  }

  const renderAction = (action: MenuAction) => {
    const index = actions.indexOf(action)
    const expanded = action.type === 'submenu' && open?.id === action.id
    return (
      <li key={action.id} role="none" className={action.type === 'submenu' ? 'has-submenu' : undefined}>
        <div role="menuitem" tabIndex={-1} ref={(el) => { items.current[index] = el }} data-testid={action.testId}
          aria-disabled={action.type === 'item' && action.disabled ? true : undefined}
          aria-haspopup={action.type === 'submenu' ? 'menu' : undefined}
          aria-expanded={action.type === 'submenu' ? expanded : undefined}
          className={`menu-item${action.type === 'item' && action.disabled ? ' disabled' : ''}`}
          onClick={(e) => { e.stopPropagation(); activate(action, false) }}
          onMouseEnter={() => {
            focusAt(index)
            setOpen(action.type === 'submenu' ? { id: action.id, focus: false } : null)
          }}>
          {action.label}{action.type === 'submenu' && <span className="menu-arrow" aria-hidden="true">▸</span>}
        </div>
        {expanded && (
          <MenuList entries={action.entries} label={action.label} onClose={onClose} focusFirst={open.focus}
            className="context-menu submenu" onBack={() => { setOpen(null); focusAt(index) }} />
        )}
      </li>
    )
  }

  return (
    <ul role="menu" aria-label={label} className={className} style={style} data-testid={testId} onKeyDown={onKeyDown}
      onContextMenu={(e) => e.preventDefault()}
      ref={(el) => { ownList.current = el; if (listRef) listRef.current = el }}>
      {entries.map((entry) => entry.type === 'group' ? (
        <li key={`group-${entry.label}`} role="none" className="menu-group">
          <div className="menu-heading" aria-hidden="true">{entry.label}</div>
          <ul role="group" aria-label={entry.label}>{entry.entries.map(renderAction)}</ul>
        </li>
      ) : renderAction(entry))}
    </ul>
  )
}

// A context menu at (x, y) in the window; clicking elsewhere closes it.
export function ContextMenu({ x, y, entries, label, onClose, testId }: {
  x: number; y: number; entries: MenuEntry[]; label: string; onClose: () => void; testId?: string
}) {
  const list = useRef<HTMLUListElement | null>(null)
  const [position, setPosition] = useState({ left: x, top: y })
  const close = useRef(onClose)
  close.current = onClose

  useLayoutEffect(() => {
    const el = list.current
    if (!el) return
    const rect = el.getBoundingClientRect()
    setPosition({
      left: Math.max(4, Math.min(x, window.innerWidth - rect.width - 4)),
      top: Math.max(4, Math.min(y, window.innerHeight - rect.height - 4)),
    })
  }, [x, y])

  useEffect(() => {
    const outside = (event: MouseEvent) => {
      if (list.current && !list.current.contains(event.target as Node)) close.current()
    }
    const resized = () => close.current()
    document.addEventListener('mousedown', outside)
    window.addEventListener('resize', resized)
    return () => {
      document.removeEventListener('mousedown', outside)
      window.removeEventListener('resize', resized)
    }
  }, [])

  return createPortal(
    <MenuList entries={entries} label={label} testId={testId} onClose={onClose} focusFirst listRef={list}
      className="context-menu" style={{ left: position.left, top: position.top }} />,
    document.body,
  )
}
