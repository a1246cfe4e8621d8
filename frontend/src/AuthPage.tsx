import { useState } from 'react'
import { api, ApiError } from './api'
import { FieldError } from './FieldError'
import type { User } from './types'

export function AuthPage({ onSignedIn, initialError }: { onSignedIn: (u: User) => void; initialError: string }) {
  const [mode, setMode] = useState<'signin' | 'signup'>('signin')
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [email, setEmail] = useState('')
  const [error, setError] = useState<ApiError | null>(initialError ? new ApiError(0, initialError) : null)
  const [busy, setBusy] = useState(false)

  const submit = async (event: React.FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const path = mode === 'signin' ? '/api/auth/login/' : '/api/auth/signup/'
      const body = mode === 'signin' ? { username, password } : { username, password, email }
      const result = await api<{ user: User }>(path, { method: 'POST', body })
      onSignedIn(result.user)
    } catch (e) {
      setError(e as ApiError)
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="centered">
      <form className="card auth" onSubmit={submit}>
        <h1>NNC Web</h1>
        <div className="switch">
          <button type="button" className={mode === 'signin' ? 'active' : ''} onClick={() => setMode('signin')}>Sign in</button>
          <button type="button" className={mode === 'signup' ? 'active' : ''} onClick={() => setMode('signup')}>Sign up</button>
        </div>
        <label>Username<input name="username" autoComplete="username" value={username}
          onChange={(e) => setUsername(e.target.value)} required /></label>
        <FieldError error={error} field="username" />
        {mode === 'signup' && (
          <label>Email (optional)<input name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} /></label>
        )}
        <label>Password<input name="password" type="password" value={password}
          autoComplete={mode === 'signin' ? 'current-password' : 'new-password'}
          onChange={(e) => setPassword(e.target.value)} required /></label>
        <FieldError error={error} field="password" />
        {error && Object.keys(error.errors).length === 0 && <div className="error" role="alert">{error.message}</div>}
        <button type="submit" disabled={busy}>{mode === 'signin' ? 'Sign in' : 'Create account'}</button>
      </form>
    </div>
  )
}
