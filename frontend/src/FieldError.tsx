import { ApiError } from './api'

export function FieldError({ error, field }: { error: ApiError | null; field: string }) {
  const messages = error?.errors?.[field]
  if (!messages || messages.length === 0) return null
  return <div className="error field-error" role="alert">{messages.join(' ')}</div>
}
