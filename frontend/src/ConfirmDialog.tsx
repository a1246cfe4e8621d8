import { useState, type ReactNode } from 'react'
import { ApiError } from './api'
import { Modal } from './Modal'

// Asks before something is deleted: says what goes with it, then runs the action; an error stays
// in the dialog (the page behind it is untouched).
export function ConfirmDialog({ title, children, confirmLabel, onConfirm, onClose, testId = 'confirm-dialog', ready = true }: {
  title: string; children: ReactNode; confirmLabel: string; onConfirm: () => Promise<void>; onClose: () => void
  testId?: string; ready?: boolean
}) {
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)

  const confirm = async () => {
    setBusy(true)
    setError('')
    try {
      await onConfirm()
    } catch (e) {
      setError(e instanceof ApiError ? e.message : (e as Error).message)
      setBusy(false)
    }
  }

  return (
    <Modal title={title} onClose={onClose} testId={testId}>
      <div className="confirm-body">{children}</div>
      {error && <div className="error" role="alert">{error}</div>}
      <div className="dialog-actions">
        <button type="button" className="danger" onClick={confirm} disabled={busy || !ready} data-testid="confirm-button">
          {busy ? 'Working…' : confirmLabel}</button>
        <button type="button" className="secondary" onClick={onClose}>Keep it</button>
      </div>
    </Modal>
  )
}
