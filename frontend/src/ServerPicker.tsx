import { useEffect, useState } from 'react'
import { api, ApiError, formatBytes } from './api'

interface Entry { path: string; name: string; kind: string; size?: number | null }

// Browse the folders staff configured (NNC_IMPORT_DIRS) and pick a folder or an archive.
export function ServerPicker({ onPick }: { onPick: (path: string) => void }) {
  const [path, setPath] = useState('')
  const [entries, setEntries] = useState<Entry[] | null>(null)
  const [error, setError] = useState('')

  useEffect(() => {
    api<{ entries: Entry[] }>(`/api/imports/?path=${encodeURIComponent(path)}`)
      .then((r) => { setEntries(r.entries); setError('') })
      .catch((e) => setError((e as ApiError).message))
  }, [path])

  if (entries === null) return error ? <div className="error">{error}</div> : null
  const up = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : ''
  return (
    <div className="server-picker" data-testid="server-picker">
      <div className="hint">Server folder: /{path}</div>
      {path && <button type="button" className="secondary" onClick={() => setPath(up)}>Up</button>}{' '}
      {path.includes('/') && <button type="button" onClick={() => onPick(path)}>Use this folder</button>}
      <ul>
        {entries.map((e) => (
          <li key={e.path}>
            {e.kind === 'folder'
              ? <a href="#" onClick={(ev) => { ev.preventDefault(); setPath(e.path) }}>{e.name}/</a>
              : <a href="#" onClick={(ev) => { ev.preventDefault(); onPick(e.path) }}>{e.name}</a>}
            {e.size != null && <span className="muted"> {formatBytes(e.size)}</span>}
          </li>
        ))}
        {entries.length === 0 && <li className="muted">empty</li>}
      </ul>
      {error && <div className="error">{error}</div>}
    </div>
  )
}
