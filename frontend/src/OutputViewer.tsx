import { useState } from 'react'
import { api } from './api'
import { BokehPlot } from './BokehPlot'
import { CrossTabulation } from './CrossTabulation'
import { NameDialog } from './NameDialog'
import { OutputTable } from './OutputTable'
import { RowDetails } from './RowDetails'
import { ZoomableImage } from './ZoomableImage'
import { navigate } from './hooks'
import type { CellContext, Plugin, Postprocess, PostprocessOutput, TablePage } from './types'
import { outputUrl, tsneAxes, withoutCsv } from './workspace'

// One output of a post-processing run: a table (browsable like the Output result), an image
// (zoomable), a Bokeh plot (tap / select wired) or a file; each downloadable.
export function OutputViewer({ base, postprocess, output, plugins, onPlugin, openPlugin, onCsvSaved, onClose }: {
  base: string; postprocess: Postprocess; output: PostprocessOutput; plugins: Plugin[]
  onPlugin: (plugin: Plugin, context: CellContext) => void
  openPlugin: (plugin: Plugin, initial: Record<string, unknown>) => void
  onCsvSaved: (name: string) => void; onClose: () => void
}) {
  const [page, setPage] = useState<TablePage | null>(null)
  const [row, setRow] = useState<{ csv: string; index: number } | null>(null)
  const [making, setMaking] = useState(false)
  const isTable = output.kind === 'table' && postprocess.plugin_id !== 'cross_tabulation'
  const axes = isTable && page?.csv === output.path ? tsneAxes(page.variables) : null
  const scatter = plugins.find((p) => p.id === 'scatter_plot')
  const hasImages = isTable && page?.csv === output.path && page.columns.some((c) => c.kind === 'image')

  const scatterPlot = () => {
    if (!scatter || !axes || !page) return
    const initial: Record<string, unknown> = { input: output.path, x: axes.x, y: axes.y }
    if (page.variables.includes('y')) initial.c = 'y'
    openPlugin(scatter, initial)
  }
  const makeDataset = async (name: string) => {
    const made = await api<{ job: number }>(`${base}/table/to-dataset/`, { method: 'POST', body: { csv: output.path, name } })
    setMaking(false)
    navigate(`/jobs/${made.job}`)  // the conversion job; its panel links the new dataset
  }

  return (
    <section className="card output-viewer" aria-label={`Output ${output.path}`} data-testid="output-viewer" data-path={output.path}>
      <div className="page-head">
        <h4>{output.path}</h4>
        <span className="muted">{postprocess.title} · {output.kind}</span>
        <span className="spacer" />
        {axes && <button type="button" onClick={scatterPlot} disabled={!scatter} data-testid="scatter-this"
          title={scatter ? `x = ${axes.x}, y = ${axes.y}` : 'The scatter_plot plugin is not installed'}>Scatter plot of this</button>}
        {hasImages && <button type="button" className="secondary" onClick={() => setMaking(true)} data-testid="output-make-dataset">
          Make a dataset</button>}
        <a className="button" href={outputUrl(base, output.path)} download data-testid="output-download">Download</a>
        <button type="button" className="secondary" onClick={onClose}>Close</button>
      </div>
      {output.kind === 'table' && postprocess.plugin_id === 'cross_tabulation' && <CrossTabulation base={base} path={output.path} />}
      {isTable && (
        <OutputTable key={output.path} base={base} view={{ csv: output.path }} picker={false}
          plugins={plugins} onPlugin={onPlugin} onCsvSaved={onCsvSaved} onLoaded={setPage} />
      )}
      {output.kind === 'image' && <ZoomableImage src={outputUrl(base, output.path)} alt={output.path} testId="output-image" />}
      {output.kind === 'plot' && (
        <div className="plot-with-row">
          <BokehPlot base={base} path={output.path} onCsvSaved={onCsvSaved} onRow={(csv, index) => setRow({ csv, index })} />
          {row && <RowDetails base={base} csv={row.csv} index={row.index} onClose={() => setRow(null)} />}
        </div>
      )}
      {output.kind === 'file' && <p className="muted">This output is a file: download it to open it.</p>}
      {making && (
        <NameDialog title="Make a dataset from this CSV" label="Dataset name" submitLabel="Make dataset" testId="make-dataset-dialog"
          initial={withoutCsv(output.path.split('/').pop() ?? output.path)} onSubmit={makeDataset} onClose={() => setMaking(false)} />
      )}
    </section>
  )
}
