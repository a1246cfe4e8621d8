import { ApiError } from './api'

// A page that could not be shown (not found, deleted, not yours): what happened, and a way back.
export function PageError({ error, back, backLabel }: { error: unknown; back: string; backLabel: string }) {
  const missing = error instanceof ApiError && error.status === 404
  const message = missing ? 'This was not found: it may have been deleted, or it is not yours.'
    : error instanceof Error ? error.message : String(error)
  return (
    <div className="page" data-testid="page-error">
      <p><a href={back}>← {backLabel}</a></p>
      <div className="error" role="alert">{message}</div>
      <p><a href={back} className="button" data-testid="page-error-back">Back to {backLabel}</a></p>
    </div>
  )
}
