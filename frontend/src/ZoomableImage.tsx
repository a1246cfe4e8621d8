import { useEffect, useRef, useState } from 'react'

type Zoom = 'fit' | number

// An image shown to fit, at 100% or 200% (or Ctrl + wheel); larger than the frame, it scrolls.
export function ZoomableImage({ src, alt, testId }: { src: string; alt: string; testId?: string }) {
  const [zoom, setZoom] = useState<Zoom>('fit')
  const [natural, setNatural] = useState<{ width: number; height: number } | null>(null)
  const [error, setError] = useState('')
  const frame = useRef<HTMLDivElement>(null)

  useEffect(() => { setZoom('fit'); setNatural(null); setError('') }, [src])

  // A native listener: React's wheel listeners are passive and cannot keep the page from scrolling.
  useEffect(() => {
    const el = frame.current
    if (!el) return
    const onWheel = (event: WheelEvent) => {
      if (!event.ctrlKey && !event.metaKey) return
      event.preventDefault()
      setZoom((z) => {
        const image = el.querySelector('img')
        const now = z === 'fit' ? (image && image.naturalWidth ? image.clientWidth / image.naturalWidth : 1) : z
        return Math.min(16, Math.max(0.1, now * (event.deltaY < 0 ? 1.25 : 0.8)))
      })
    }
    el.addEventListener('wheel', onWheel, { passive: false })
    return () => el.removeEventListener('wheel', onWheel)
  }, [])

  const style: React.CSSProperties = zoom === 'fit' || !natural
    ? { maxWidth: '100%', maxHeight: '70vh' }
    : { width: natural.width * zoom, height: natural.height * zoom, maxWidth: 'none' }
  const button = (value: Zoom, label: string) => (
    <button type="button" className={zoom === value ? 'secondary active' : 'secondary'} aria-pressed={zoom === value}
      onClick={() => setZoom(value)}>{label}</button>
  )
  return (
    <div className="zoomable">
      <div className="pager" role="toolbar" aria-label="Zoom">
        {button('fit', 'Fit')}{button(1, '100%')}{button(2, '200%')}
        <span className="muted">{typeof zoom === 'number' ? `${Math.round(zoom * 100)}%` : 'fit'} · Ctrl + wheel zooms</span>
        {natural && <span className="muted">{natural.width} × {natural.height}</span>}
      </div>
      <div className="zoom-frame" ref={frame}>
        <img src={src} alt={alt} data-testid={testId} style={style}
          className={typeof zoom === 'number' && zoom >= 2 ? 'pixelated' : undefined}
          onLoad={(e) => setNatural({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
          onError={() => setError(`The image ${alt} could not be loaded.`)} />
      </div>
      {error && <div className="error" role="alert">{error}</div>}
    </div>
  )
}
