import { useState } from 'react'
import { ApiError } from './api'

// The file name a Content-Disposition header gives (`attachment; filename="run3-model.onnx"`).
function attachmentName(header: string | null): string | null {
  const match = header?.match(/filename\*?=(?:UTF-8'')?"?([^";]+)"?/i)
  return match ? decodeURIComponent(match[1]) : null
}

// A file the server makes when asked (a TorchScript or ONNX export, the model bundle): that takes
// seconds, so the button says it is being prepared (and cannot be pressed twice) until the file
// has arrived; it is then saved under the server's name. An error is shown beside it.
export function PreparedDownload({ href, label, fallbackName, testId }: {
  href: string; label: string; fallbackName: string; testId?: string
}) {
  const [preparing, setPreparing] = useState(false)
  const [error, setError] = useState('')

  const download = async () => {
    setPreparing(true)
    setError('')
    try {
      const response = await fetch(href, { credentials: 'same-origin' })
      if (!response.ok) {
        const body = await response.json().catch(() => null) as { detail?: string } | null
        throw new ApiError(response.status, body?.detail || `The server answered ${response.status}.`)
      }
      const url = URL.createObjectURL(await response.blob())
      const link = document.createElement('a')
      link.href = url
      link.download = attachmentName(response.headers.get('Content-Disposition')) ?? fallbackName
      document.body.appendChild(link)
      link.click()
      link.remove()
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000)
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Cannot reach the server: check that NNC Web is running.')
    } finally {
      setPreparing(false)
    }
  }

  return (
    <span className="prepared-download">
      <button type="button" className="button" onClick={download} disabled={preparing} aria-busy={preparing}
        data-testid={testId} data-state={preparing ? 'preparing' : 'idle'}>
        {preparing ? <><span className="spinner" aria-hidden="true" /> Preparing {label}…</> : label}
      </button>
      {error && <span className="error" role="alert">{label}: {error}</span>}
    </span>
  )
}
