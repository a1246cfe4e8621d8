import { useState } from 'react'
import { ApiError } from './api'
import { FieldError } from './FieldError'
import { Modal } from './Modal'

// Asks for a name (of a CSV to save, of a dataset to make), then runs the action; its errors stay
// in the dialog so the name can be changed and tried again (each once: the name's under it).
export function NameDialog({ title, label, initial, hint, submitLabel, onSubmit, onClose, testId }: {
  title: string; label: string; initial: string; hint?: string; submitLabel: string
  onSubmit: (name: string) => Promise<void>; onClose: () => void; testId?: string
}) {
  const [name, setName] = useState(initial)
  const [error, setError] = useState<ApiError | null>(null)
  const [busy, setBusy] = useState(false)

  const submit = async (event: React.FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await onSubmit(name.trim())
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, (e as Error).message))
      setBusy(false)
    }
  }

  return (
    <Modal title={title} onClose={onClose} testId={testId}>
      <form className="plugin-form" onSubmit={submit}>
        <div className="field">
          <label htmlFor="name-dialog-name" className="name">{label}</label>
          <input id="name-dialog-name" name="name" value={name} required onChange={(e) => setName(e.target.value)}
            data-testid="name-input" />
          {hint && <div className="hint">{hint}</div>}
          <FieldError error={error} field="name" />
        </div>
        {error && (Object.keys(error.errors ?? {}).length === 0 ? <div className="error" role="alert">{error.message}</div>
          : Object.entries(error.errors).filter(([field]) => field !== 'name').map(([field, messages]) => (
            <div key={field} className="error" role="alert">{field}: {messages.join(' ')}</div>)))}
        <button type="submit" disabled={busy || !name.trim()} data-testid="name-submit">{submitLabel}</button>
      </form>
    </Modal>
  )
}
