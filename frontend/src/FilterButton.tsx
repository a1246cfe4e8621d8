import type { ReactNode } from 'react'

// One of a row of filter buttons: the active one is drawn pressed (and says so to screen readers),
// so the rows below can always be read against the filter that chose them.
export function FilterButton({ active, onClick, children, testId, title }: {
  active: boolean; onClick: () => void; children: ReactNode; testId?: string; title?: string
}) {
  return (
    <button type="button" className={active ? 'secondary filter active' : 'secondary filter'} aria-pressed={active}
      onClick={onClick} data-testid={testId} title={title}>{children}</button>
  )
}
