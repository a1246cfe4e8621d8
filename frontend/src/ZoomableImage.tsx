import { useEffect, useRef, useState } from 'react'

type Zoom = 'fit' | number

// An image shown to fit, at 100% or 200% (or Ctrl + wheel); larger than the frame, it scrolls.
// Fit fills the frame's width (at most 70% of the window's height), small images scaled up too:
// a 32 x 32 image fills the dialog, its pixels sharp (pixelated) rather than blurred.
export function ZoomableImage({ src, alt, testId }: { src: string; alt: string; testId?: string }) {
  const [zoom, setZoom] = useState<Zoom>('fit')
  const [natural, setNatural] = useState<{ width: number; height: number } | null>(null)
  const [error, setError] = useState('')
  const frame = useRef<HTMLDivElement>(null)
  const [room, setRoom] = useState<{ width: number; height: number } | null>(null)

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

  // The room the frame gives an image: its width inside the padding, 70% of the window's height.
  useEffect(() => {
    const el = frame.current
    if (!el) return
    const measure = () => {
      const styles = getComputedStyle(el)
      const padX = parseFloat(styles.paddingLeft) + parseFloat(styles.paddingRight)
      const padY = parseFloat(styles.paddingTop) + parseFloat(styles.paddingBottom)
      setRoom({ width: Math.max(1, el.clientWidth - padX), height: Math.max(1, window.innerHeight * 0.7 - padY) })
    }
    measure()
    const observer = new ResizeObserver(measure)
    observer.observe(el)
    window.addEventListener('resize', measure)
    return () => { observer.disconnect(); window.removeEventListener('resize', measure) }
  }, [])

  const fitScale = natural && room && natural.width > 0 && natural.height > 0
    ? Math.min(room.width / natural.width, room.height / natural.height) : null
  const scale = zoom === 'fit' ? fitScale : zoom
  const style: React.CSSProperties = !natural || scale === null
    ? { maxWidth: '100%', maxHeight: '70vh' }
    : { width: Math.max(1, Math.floor(natural.width * scale)), height: Math.max(1, Math.floor(natural.height * scale)), maxWidth: 'none' }
  const small = natural !== null && (natural.width <= 64 || natural.height <= 64)
  const pixelated = scale !== null && scale > 1 && (scale >= 2 || small)
  const button = (value: Zoom, label: string) => (
    <button type="button" className={zoom === value ? 'secondary active' : 'secondary'} aria-pressed={zoom === value}
      onClick={() => setZoom(value)}>{label}</button>
  )
  return (
    <div className="zoomable">
      <div className="pager" role="toolbar" aria-label="Zoom">
        {button('fit', 'Fit')}{button(1, '100%')}{button(2, '200%')}
        <span className="muted">{typeof zoom === 'number' ? `${Math.round(zoom * 100)}%`
          : `fit${fitScale ? ` (${Math.round(fitScale * 100)}%)` : ''}`} · Ctrl + wheel zooms</span>
        {natural && <span className="muted">{natural.width} × {natural.height}</span>}
      </div>
      <div className="zoom-frame" ref={frame}>
        <img src={src} alt={alt} data-testid={testId} style={style}
          className={pixelated ? 'pixelated' : undefined}
          onLoad={(e) => setNatural({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
          onError={() => setError(`The image ${alt} could not be loaded.`)} />
      </div>
      {error && <div className="error" role="alert">{error}</div>}
    </div>
  )
}
