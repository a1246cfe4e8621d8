import { useEffect, useState } from 'react'
import { api, formatBytes, formatDate } from './api'
import { DeleteDatasetDialog } from './DeleteDatasetDialog'
import { navigate } from './hooks'
import { shapes } from './DatasetsTab'
import type { Dataset } from './types'
import { parseHeader } from './nncHeader'
import { BoxedImage, ClassHistogram, MaskedImage, type BoxAnnotation } from './BoxedImage'
import { EvaluationWorkspace } from './EvaluationWorkspace'
import { PageError } from './PageError'

interface Page {
  total: number; start: number; header: string[]; rows: { index: number; cells: string[]; boxes?: BoxAnnotation[] }[]
  next: number | null; previous: number | null
}

const PAGE_SIZE = 50

// The histogram's heading: what the server counted per class.
const UNITS = { images: 'Images', rows: 'Rows', boxes: 'Boxes', pixels: 'Pixels' }

// One view per dataset: going to another dataset starts afresh (never showing this one's rows,
// whose files are not the other's, while the other loads).
export function DatasetViewer({ datasetId }: { datasetId: number }) {
  return <DatasetView key={datasetId} datasetId={datasetId} />
}

function DatasetView({ datasetId }: { datasetId: number }) {
  const [dataset, setDataset] = useState<Dataset | null>(null)
  const [page, setPage] = useState<Page | null>(null)
  const [start, setStart] = useState(0)
  const [deleting, setDeleting] = useState(false)  // the dialog that says which projects and runs use it
  const [loadError, setLoadError] = useState<unknown>(null)  // the dataset cannot be shown: a page with a way back
  const [analysing, setAnalysing] = useState(false)

  useEffect(() => {
    let live = true
    api<Dataset>(`/api/datasets/${datasetId}/`).then((d) => { if (live) setDataset(d) })
      .catch((e) => { if (live) setLoadError(e) })
    return () => { live = false }
  }, [datasetId])
  useEffect(() => {
    let live = true
    api<Page>(`/api/datasets/${datasetId}/rows/?start=${start}&limit=${PAGE_SIZE}`).then((p) => { if (live) setPage(p) })
      .catch((e) => { if (live) setLoadError(e) })
    return () => { live = false }
  }, [datasetId, start])

  if (loadError) return <PageError error={loadError} back="#/datasets" backLabel="Datasets" />
  if (!dataset || !page) return <div className="page">Loading…</div>
  const columns = page.header.map(parseHeader)
  const fileUrl = (cell: string, thumb: boolean) =>
    `/api/datasets/${datasetId}/files/${cell.replace(/^\.\//, '').split('/').map(encodeURIComponent).join('/')}${thumb ? '?thumb=1' : ''}`
  const isFile = (cell: string) => cell.startsWith('./') || /\.(png|jpe?g|bmp|gif|tiff?)$/i.test(cell)

  const imageColumn = dataset.columns.find((c) => c.kind === 'image')
  const [, imageHeight, imageWidth] = (imageColumn?.shape ?? '3,1,1').split(',').map(Number)
  const maskColumn = dataset.columns.findIndex((c) => c.kind === 'mask')
  const renderCell = (cell: string, column: number, row: { cells: string[]; boxes?: BoxAnnotation[] }) => {
    const info = columns[column]
    const aspect = imageWidth / imageHeight || 1
    if (row.boxes && isFile(cell) && /\.(png|jpe?g|bmp|gif|tiff?)$/i.test(cell)) {
      return <BoxedImage src={fileUrl(cell, false)} href={fileUrl(cell, false)} boxes={row.boxes}
        classes={dataset.class_names} aspect={aspect} palette={dataset.palette} />
    }
    if (column === maskColumn) {
      return <a href={fileUrl(cell, false)} target="_blank" rel="noreferrer">
        <img className="thumb" src={`${fileUrl(cell, false)}?overlay=1`} alt={cell} loading="lazy" /></a>
    }
    if (maskColumn >= 0 && dataset.columns[column]?.kind === 'image') {
      return <MaskedImage src={fileUrl(cell, false)} href={fileUrl(row.cells[maskColumn], false)} aspect={aspect}
        overlay={`${fileUrl(row.cells[maskColumn], false)}?overlay=1`} />
    }
    if (isFile(cell) && /\.(png|jpe?g|bmp|gif|tiff?)$/i.test(cell)) {
      return <a href={fileUrl(cell, false)} target="_blank" rel="noreferrer"><img className="thumb" src={fileUrl(cell, true)} alt={cell} loading="lazy" /></a>
    }
    const index = Number(cell)
    if (info.classes.length && Number.isInteger(index) && info.classes[index] !== undefined) {
      return <span className="label">{cell}: {info.classes[index]}</span>
    }
    return <span>{cell}</span>
  }

  const last = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE)
  return (
    <div className="page">
      <p><a href="#/datasets">← Datasets</a></p>
      <div className="page-head">
        <h2 data-testid="dataset-name">{dataset.name}</h2>
        <span className="spacer" />
        <a className="button" href={`/api/datasets/${datasetId}/download/`}>Download zip</a>
        <button className="danger" onClick={() => setDeleting(true)}>Delete</button>
      </div>
      {deleting && <DeleteDatasetDialog dataset={dataset} onClose={() => setDeleting(false)}
        onDeleted={() => navigate('/datasets')} />}
      <p className="muted">{dataset.rows} rows · {shapes(dataset)} · {formatBytes(dataset.size_bytes)} · created {formatDate(dataset.created_at)}
        {dataset.class_names.length > 0 && <> · classes: {dataset.class_names.join(', ')}</>}</p>
      <ClassHistogram names={dataset.class_names} counts={dataset.class_counts} palette={dataset.palette}
        unit={UNITS[dataset.counts_of ?? 'rows']} />
      <section className="card analyse" aria-label="Analyse">
        <div className="page-head">
          <h3>Analyse</h3>
          <span className="muted">the dataset CSV as a table, post-processing plugins (right-click a cell) and their outputs</span>
          <span className="spacer" />
          <button className="secondary" aria-expanded={analysing} aria-controls={analysing ? "dataset-analyse" : undefined}
            onClick={() => setAnalysing(!analysing)} data-testid="analyse-toggle">{analysing ? 'Hide' : 'Open'}</button>
        </div>
        {analysing && <div id="dataset-analyse">
          <EvaluationWorkspace base={`/api/datasets/${datasetId}`} tableLabel="Dataset CSV" />
        </div>}
      </section>
      <div className="pager">
        <button className="secondary" disabled={page.start === 0} onClick={() => setStart(0)}>First</button>
        <button className="secondary" disabled={page.previous === null} onClick={() => setStart(page.previous ?? 0)}>Previous</button>
        <span data-testid="page-range">rows {page.total ? page.start + 1 : 0}–{page.start + page.rows.length} of {page.total}</span>
        <button className="secondary" disabled={page.next === null} onClick={() => setStart(page.next ?? 0)}>Next</button>
        <button className="secondary" disabled={page.next === null} onClick={() => setStart(last)}>Last</button>
      </div>
      <table className="grid rows" data-testid="dataset-rows">
        <thead><tr><th>#</th>{page.header.map((h) => <th key={h}>{parseHeader(h).title}</th>)}</tr></thead>
        <tbody>
          {page.rows.map((row) => (
            <tr key={row.index}><td className="muted">{row.index}</td>
              {row.cells.map((cell, i) => <td key={i}>{renderCell(cell, i, row)}</td>)}</tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}
