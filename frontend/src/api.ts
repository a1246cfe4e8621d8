// Thin fetch wrapper: session cookie + CSRF header, JSON in and out, errors as ApiError.

export class ApiError extends Error {
  status: number
  errors: Record<string, string[]>
  received?: number  // chunked uploads: the bytes the server holds (409 answers)
  constructor(status: number, detail: string, errors: Record<string, string[]> = {}, received?: number) {
    super(detail)
    this.status = status
    this.errors = errors
    this.received = received
  }
}

export function csrfToken(): string {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)
  return match ? decodeURIComponent(match[1]) : ''
}

function messageFor(status: number, body: unknown): ApiError {
  const data = (body && typeof body === 'object' ? body : {}) as {
    detail?: string; errors?: Record<string, string[]>; received?: number }
  const fallback: Record<number, string> = {
    400: 'The request was not valid.',
    401: 'Please sign in.',
    403: 'You are not allowed to do that (are you signed in?).',
    404: 'Not found: it may have been deleted.',
    413: 'The file is too large.',
    429: 'Too many attempts: please wait and try again.',
  }
  const detail = data.detail || fallback[status] || `The server answered ${status}.`
  return new ApiError(status, detail, data.errors || {}, data.received)
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

// A file's text (e.g. an output CSV); errors as ApiError, like api().
export async function apiText(path: string): Promise<string> {
  let response: Response
  try {
    response = await fetch(path, { credentials: 'same-origin' })
  } catch {
    throw new ApiError(0, 'Cannot reach the server: check that NNC Web is running.')
  }
  if (!response.ok) {
    let data: unknown = null
    try { data = await response.json() } catch { data = null }
    throw messageFor(response.status, data)
  }
  return response.text()
}

export interface UploadInfo { id: number; filename: string; size: number; expected_size: number; state: string }

// One chunk as a raw PUT body, with progress inside the chunk.
function putChunk(id: number, offset: number, chunk: Blob, onProgress: (loaded: number) => void,
                  signal?: AbortSignal): Promise<UploadInfo> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('PUT', `/api/uploads/${id}/chunk/?offset=${offset}`)
    xhr.setRequestHeader('X-CSRFToken', csrfToken())
    xhr.setRequestHeader('Content-Type', 'application/octet-stream')
    xhr.upload.onprogress = (event) => onProgress(event.loaded)
    xhr.onload = () => {
      let data: unknown = null
      try { data = JSON.parse(xhr.responseText) } catch { data = null }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data as UploadInfo)
      else reject(messageFor(xhr.status, data))
    }
    xhr.onerror = () => reject(new ApiError(0, 'The connection was interrupted.'))
    xhr.onabort = () => reject(new ApiError(-1, 'Upload cancelled.'))
    signal?.addEventListener('abort', () => xhr.abort())
    xhr.send(chunk)
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// Upload in chunks (the server never holds a whole file in memory). A broken connection is
// retried; the server says how many bytes it has, and the upload resumes from there.
export async function uploadFile(file: File, onProgress: (loaded: number, total: number) => void,
                                 signal?: AbortSignal): Promise<UploadInfo> {
  const started = await api<UploadInfo & { chunk_size: number }>('/api/uploads/start/', {
    method: 'POST', body: { filename: file.name, size: file.size } })
  let offset = 0
  let failures = 0
  onProgress(0, file.size)
  const cancelled = async () => {
    await api(`/api/uploads/${started.id}/`, { method: 'DELETE' }).catch(() => undefined)  // free the space
    return new ApiError(-1, 'Upload cancelled.')
  }
  while (offset < file.size) {
    if (signal?.aborted) throw await cancelled()
    const chunk = file.slice(offset, offset + started.chunk_size)
    try {
      const base = offset
      offset = (await putChunk(started.id, offset, chunk, (loaded) => onProgress(base + loaded, file.size), signal)).size
      failures = 0
    } catch (e) {
      const error = e as ApiError
      if (signal?.aborted) throw await cancelled()
      if (error.status === 409 && typeof error.received === 'number') { offset = error.received; continue }
      if (error.status !== 0 || ++failures > 10) throw error
      await sleep(Math.min(500 * failures, 5000))
      try { offset = (await api<UploadInfo>(`/api/uploads/${started.id}/`)).size } catch { /* next try */ }
    }
  }
  onProgress(file.size, file.size)
  return api<UploadInfo>(`/api/uploads/${started.id}/finish/`, { method: 'POST' })
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
