// A dataset image with its boxes drawn over it (normalised cx, cy, w, h) and class names.
export interface BoxAnnotation { cls: number; cx: number; cy: number; w: number; h: number }

// Colours come from the server's palette (dataset.palette), the same that colours mask overlays.
function colourIn(palette: string[], cls: number): string {
  return palette.length ? palette[cls % palette.length] : '#4c8bf5'
}

export function BoxedImage({ src, href, boxes, classes, aspect, palette }: {
  src: string; href: string; boxes: BoxAnnotation[]; classes: string[]; aspect: number; palette: string[]
}) {
  const colourOf = (cls: number) => colourIn(palette, cls)
  const width = 128
  return (
    <a href={href} target="_blank" rel="noreferrer" className="boxed" style={{ width, height: width / aspect }}
      data-testid="boxed-image" data-boxes={boxes.length}>
      <img src={src} alt="" loading="lazy" />
      <svg viewBox="0 0 1 1" preserveAspectRatio="none">
        {boxes.map((b, i) => (
          <rect key={i} x={b.cx - b.w / 2} y={b.cy - b.h / 2} width={b.w} height={b.h} fill="none"
            stroke={colourOf(b.cls)} strokeWidth={2} vectorEffect="non-scaling-stroke" className="box" />
        ))}
      </svg>
      {boxes.map((b, i) => (
        <span key={i} className="box-label" style={{ left: `${(b.cx - b.w / 2) * 100}%`, top: `${(b.cy - b.h / 2) * 100}%`,
          background: colourOf(b.cls) }}>{classes[b.cls] ?? b.cls}</span>
      ))}
    </a>
  )
}

export function MaskedImage({ src, overlay, href, aspect }: { src: string; overlay: string; href: string; aspect: number }) {
  const width = 128
  return (
    <a href={href} target="_blank" rel="noreferrer" className="boxed" style={{ width, height: width / aspect }}
      data-testid="masked-image">
      <img src={src} alt="" loading="lazy" />
      <img src={overlay} alt="" loading="lazy" className="overlay" />
    </a>
  )
}

// Bars proportional to their counts: each bar is a share of one track of the same width in every
// row (a bar sized against the whole row would be squeezed by the name and count beside it).
export function ClassHistogram({ names, counts, unit, palette }: {
  names: string[]; counts: number[]; unit: string; palette: string[]
}) {
  const colourOf = (cls: number) => colourIn(palette, cls)
  if (!names.length || !counts.length) return null
  const top = Math.max(1, ...counts)
  const total = counts.reduce((sum, c) => sum + (c ?? 0), 0)
  return (
    <div className="card histogram" data-testid="class-histogram">
      <strong>{unit} per class</strong> <span className="muted">({total.toLocaleString()} in all)</span>
      {names.map((name, i) => (
        <div className="hist-row" key={name + i}>
          <span className="hist-name" title={name}>{name}</span>
          <span className="hist-track">
            <span className="hist-bar" data-count={counts[i] ?? 0}
              style={{ width: `${(100 * (counts[i] ?? 0)) / top}%`, background: colourOf(i) }} />
          </span>
          <span className="hist-count">{(counts[i] ?? 0).toLocaleString()}</span>
        </div>
      ))}
    </div>
  )
}
