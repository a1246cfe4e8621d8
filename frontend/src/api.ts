// Thin fetch wrapper: session cookie + CSRF header, JSON in and out, errors as ApiError.

export class ApiError extends Error {
  status: number
  errors: Record<string, string[]>
  constructor(status: number, detail: string, errors: Record<string, string[]> = {}) {
    super(detail)
    this.status = status
    this.errors = errors
  }
}

export function csrfToken(): string {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)
  return match ? decodeURIComponent(match[1]) : ''
}

function messageFor(status: number, body: unknown): ApiError {
  const data = (body && typeof body === 'object' ? body : {}) as { detail?: string; errors?: Record<string, string[]> }
  const fallback: Record<number, string> = {
    400: 'The request was not valid.',
    401: 'Please sign in.',
    403: 'You are not allowed to do that (are you signed in?).',
    404: 'Not found: it may have been deleted.',
    413: 'The file is too large.',
    429: 'Too many attempts: please wait and try again.',
  }
  const detail = data.detail || fallback[status] || `The server answered ${status}.`
  return new ApiError(status, detail, data.errors || {})
}

export async function api<T = any>(path: string, options: { method?: string; body?: unknown } = {}): Promise<T> {
  const method = options.method || 'GET'
  const headers: Record<string, string> = { Accept: 'application/json' }
  let body: BodyInit | undefined
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(options.body)
  }
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken()
  let response: Response
  try {
    response = await fetch(path, { method, headers, body, credentials: 'same-origin' })
  } catch {
    throw new ApiError(0, 'Cannot reach the server: check that NNC Web is running.')
  }
  if (response.status === 204) return undefined as T
  let data: unknown = null
  try {
    data = await response.json()
  } catch {
    data = null
  }
  if (!response.ok) throw messageFor(response.status, data)
  return data as T
}

// Upload a file as the raw request body (streamed to disk on the server) with progress.
export function uploadFile(file: File, onProgress: (loaded: number, total: number) => void,
                           signal?: AbortSignal): Promise<{ id: number; filename: string; size: number }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', `/api/uploads/?filename=${encodeURIComponent(file.name)}`)
    xhr.setRequestHeader('X-CSRFToken', csrfToken())
    xhr.setRequestHeader('Content-Type', 'application/octet-stream')
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.total || file.size)
    xhr.onload = () => {
      let data: unknown = null
      try { data = JSON.parse(xhr.responseText) } catch { data = null }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data as { id: number; filename: string; size: number })
      else reject(messageFor(xhr.status, data))
    }
    xhr.onerror = () => reject(new ApiError(0, 'The upload was interrupted: check the connection and retry.'))
    xhr.onabort = () => reject(new ApiError(0, 'Upload cancelled.'))
    signal?.addEventListener('abort', () => xhr.abort())
    xhr.send(file)
  })
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

export function formatDate(text: string): string {
  return new Date(text).toLocaleString()
}
