import { useId, type ReactNode } from 'react'

export interface TabInfo { id: string; label: ReactNode; testId?: string }

// Tabs (← / → / Home / End move between them); only the active panel is rendered.
export function Tabs({ tabs, active, onChange, label, children }: {
  tabs: TabInfo[]; active: string; onChange: (id: string) => void; label: string; children: ReactNode
}) {
  const prefix = useId()
  const onKeyDown = (event: React.KeyboardEvent) => {
    const at = tabs.findIndex((t) => t.id === active)
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key]
    if (next === undefined) return
    event.preventDefault()
    const tab = tabs[(next + tabs.length) % tabs.length]
    onChange(tab.id)
    document.getElementById(`${prefix}-tab-${tab.id}`)?.focus()
  }
  return (
    <div className="tabs">
      <div role="tablist" aria-label={label} className="tab-list" onKeyDown={onKeyDown}>
        {tabs.map((t) => (
          <button key={t.id} type="button" role="tab" id={`${prefix}-tab-${t.id}`} aria-selected={t.id === active}
            aria-controls={`${prefix}-panel`} tabIndex={t.id === active ? 0 : -1} data-testid={t.testId}
            className={t.id === active ? 'tab-button active' : 'tab-button'} onClick={() => onChange(t.id)}>{t.label}</button>
        ))}
      </div>
      <div role="tabpanel" id={`${prefix}-panel`} aria-labelledby={`${prefix}-tab-${active}`} className="tab-panel">
        {children}
      </div>
    </div>
  )
}
