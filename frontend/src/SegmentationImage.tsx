import { useEffect, useRef, useState } from 'react'

export type MaskView = 'prediction' | 'truth' | 'error'

const IGNORE = 255  // truth pixels left out of the metrics
const WRONG: [number, number, number] = [214, 39, 40]

interface Ids { ids: Uint8Array; width: number; height: number }

// The class id of every pixel of a class-id PNG, read without colour management (the ids are the
// grey values); drawn at width x height by nearest neighbour (the predicted mask is at the model's
// input size, the truth at the image's).
async function readIds(url: string, what: string, width?: number, height?: number): Promise<Ids> {
  let response: Response
  try { response = await fetch(url, { credentials: 'same-origin' }) } catch { throw new Error('Cannot reach the server.') }
  if (!response.ok) {
    throw new Error(response.status === 404 ? `The ${what} is missing${what === 'predicted mask' ? ': evaluate the run again' : ''}.`
      : `The ${what} cannot be loaded (the server answered ${response.status}).`)
  }
  let bitmap: ImageBitmap
  try {
    bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' })
  } catch { throw new Error(`The ${what} is not a readable PNG.`) }
  const w = width ?? bitmap.width, h = height ?? bitmap.height
  const canvas = document.createElement('canvas')
  canvas.width = w
  canvas.height = h
  const context = canvas.getContext('2d', { willReadFrequently: true })!
  context.imageSmoothingEnabled = false
  context.drawImage(bitmap, 0, 0, w, h)
  bitmap.close()
  const rgba = context.getImageData(0, 0, w, h).data
  const ids = new Uint8Array(w * h)
  for (let i = 0; i < ids.length; i++) ids[i] = rgba[4 * i]
  return { ids, width: w, height: h }
}

const rgb = (hex: string): [number, number, number] =>
  [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)]

// An image with a mask drawn over it: the predicted classes, the truth classes (in the dataset's
// class colours), or the error view (the pixels predicted wrong in red; ignored truth pixels left
// out). Both masks are read once; switching the view or the opacity only repaints.
export function SegmentationImage({ src, truth, predicted, palette, view, opacity, large = false }: {
  src: string; truth: string; predicted: string; palette: string[]; view: MaskView; opacity: number; large?: boolean
}) {
  const canvas = useRef<HTMLCanvasElement>(null)
  const [masks, setMasks] = useState<{ truth: Ids | null; predicted: Ids | null; problems: string[] } | null>(null)
  const [imageFailed, setImageFailed] = useState(false)

  useEffect(() => {
    let live = true
    setMasks(null)
    ;(async () => {
      const problems: string[] = []
      const truthIds = await readIds(truth, 'truth mask').catch((e: Error) => { problems.push(e.message); return null })
      const predictedIds = await readIds(predicted, 'predicted mask', truthIds?.width, truthIds?.height)
        .catch((e: Error) => { problems.push(e.message); return null })
      if (live) setMasks({ truth: truthIds, predicted: predictedIds, problems })
    })()
    return () => { live = false }
  }, [truth, predicted])

  const [wrong, setWrong] = useState<{ wrong: number; counted: number } | null>(null)
  useEffect(() => {
    const element = canvas.current
    if (!element || !masks) return
    const shownMask = view === 'truth' ? masks.truth : view === 'prediction' ? masks.predicted
      : masks.truth && masks.predicted ? masks.truth : null
    if (!shownMask) { element.width = 0; return }
    const { width, height } = shownMask
    element.width = width
    element.height = height
    const context = element.getContext('2d')!
    const image = context.createImageData(width, height)
    const colours = palette.map(rgb)
    let wrongPixels = 0, counted = 0
    for (let i = 0; i < width * height; i++) {
      let colour: [number, number, number] | null = null
      if (view === 'error') {
        const want = masks.truth!.ids[i]
        if (want !== IGNORE) {
          counted++
          if (masks.predicted!.ids[i] !== want) { wrongPixels++; colour = WRONG }
        }
      } else {
        const id = shownMask.ids[i]
        if (id !== IGNORE) colour = colours.length ? colours[id % colours.length] : [76, 139, 245]
      }
      if (colour) {
        image.data.set(colour, 4 * i)
        image.data[4 * i + 3] = 255
      }
    }
    context.putImageData(image, 0, 0)
    setWrong(view === 'error' ? { wrong: wrongPixels, counted } : null)
  }, [masks, view, palette])

  const missing = masks && (view === 'truth' ? !masks.truth : view === 'prediction' ? !masks.predicted
    : !(masks.truth && masks.predicted))
  return (
    <div className={`pred-masked${large ? ' pred-large' : ''}`} data-testid="segmentation-image" data-view={view}
      data-ready={masks ? (missing ? 'missing' : 'yes') : 'no'} data-wrong={wrong?.wrong} data-counted={wrong?.counted}>
      {imageFailed
        ? <div className="pred-missing" role="alert">The image cannot be loaded (missing from the validation dataset?)</div>
        : <img src={src} alt="" onError={() => setImageFailed(true)} />}
      <canvas ref={canvas} style={{ opacity }} data-testid="seg-overlay" />
      {masks && masks.problems.length > 0 && (
        <div className="pred-problem" role="alert" data-testid="pred-problem">{masks.problems.join(' ')}</div>)}
    </div>
  )
}
