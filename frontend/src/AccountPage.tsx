import { useEffect, useState } from 'react'
import { api, ApiError } from './api'
import { FieldError } from './FieldError'
import type { User } from './types'

export function AccountPage({ user, onChanged }: { user: User; onChanged: () => void }) {
  const [oldPassword, setOldPassword] = useState('')
  const [newPassword, setNewPassword] = useState('')
  const [error, setError] = useState<ApiError | null>(null)
  const [notice, setNotice] = useState('')
  const [token, setToken] = useState('')
  const [usage, setUsage] = useState<{ used_bytes: number; quota_bytes: number } | null>(null)
  useEffect(() => {
    api<{ used_bytes: number; quota_bytes: number }>('/api/auth/usage/').then(setUsage).catch((e) => setError(e as ApiError))
  }, [])

  const changePassword = async (event: React.FormEvent) => {
    event.preventDefault()
    setError(null)
    setNotice('')
    try {
      await api('/api/auth/password/', { method: 'POST', body: { old_password: oldPassword, new_password: newPassword } })
      setNotice('Password changed.')
      setOldPassword('')
      setNewPassword('')
    } catch (e) {
      setError(e as ApiError)
    }
  }

  const newToken = async () => {
    setError(null)
    try {
      const result = await api<{ token: string }>('/api/auth/token/', { method: 'POST' })
      setToken(result.token)
      onChanged()
    } catch (e) {
      setError(e as ApiError)
    }
  }

  const revoke = async () => {
    await api('/api/auth/token/', { method: 'DELETE' }).catch((e) => setError(e as ApiError))
    setToken('')
    onChanged()
  }

  return (
    <div className="page narrow">
      <h2>Account: {user.username}</h2>
      {usage && (
        <section className="card" data-testid="storage-usage">
          <h3>Storage</h3>
          <p>{(usage.used_bytes / 1e6).toFixed(1)} MB used{usage.quota_bytes > 0
            ? ` of your ${(usage.quota_bytes / 1e6).toFixed(0)} MB quota` : ' (no quota)'}</p>
          {usage.quota_bytes > 0 && (
            <div className="progress" role="progressbar" aria-label="Storage used"
              aria-valuenow={Math.min(100, Math.round(100 * usage.used_bytes / usage.quota_bytes))}>
              <div className="bar" style={{ width: `${Math.min(100, 100 * usage.used_bytes / usage.quota_bytes)}%` }} />
            </div>)}
        </section>)}
      <form className="card" onSubmit={changePassword}>
        <h3>Change password</h3>
        <label>Current password<input type="password" name="old_password" value={oldPassword}
          onChange={(e) => setOldPassword(e.target.value)} required /></label>
        <FieldError error={error} field="old_password" />
        <label>New password<input type="password" name="new_password" value={newPassword}
          onChange={(e) => setNewPassword(e.target.value)} required /></label>
        <FieldError error={error} field="new_password" />
        <button type="submit">Change password</button>
        {notice && <div className="notice">{notice}</div>}
      </form>
      <div className="card">
        <h3>API token</h3>
        <p>Scripts authenticate with <code>Authorization: Token &lt;token&gt;</code>.
          {user.has_token ? ' You have a token; making a new one replaces it.' : ' You have no token yet.'}</p>
        <button onClick={newToken}>New token</button>{' '}
        {user.has_token && <button className="secondary" onClick={revoke}>Revoke</button>}
        {token && <pre className="token">{token}</pre>}
        {error && Object.keys(error.errors).length === 0 && <div className="error">{error.message}</div>}
      </div>
    </div>
  )
}
