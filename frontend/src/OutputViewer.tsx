import { useRef, useState } from 'react'
import { BokehPlot } from './BokehPlot'
import { CrossTabulation } from './CrossTabulation'
import { NameDialog } from './NameDialog'
import { JobPanel } from './JobPanel'
import { OutputTable, type TableView } from './OutputTable'
import { RowDetails } from './RowDetails'
import { ZoomableImage } from './ZoomableImage'
import type { CellContext, Plugin, Postprocess, PostprocessOutput, TablePage } from './types'
import { datasetHint, filterFields, makeDataset as convert, outputUrl, tsneAxes, withoutCsv } from './workspace'

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
  const [conversion, setConversion] = useState<{ job: number; name: string } | null>(null)
  const view = useRef<TableView | null>(null)  // the table's filter and order: the dataset is of the rows shown
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
  const viewFields = () => {
    const v = view.current
    if (!v || v.csv !== output.path) return {}
    return filterFields({ ...v.filter, threshold: v.filter.flagged === undefined ? undefined : parseFloat(v.threshold) }, v.sort)
  }
  // The conversion job shows here, with a link to the dataset once it is made.
  const makeDataset = async (name: string) => {
    const made = await convert(base, output.path, name, viewFields())
    setMaking(false)
    setConversion({ job: made.job, name })
    if (made.saved) onCsvSaved(made.saved)
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
          plugins={plugins} onPlugin={onPlugin} onCsvSaved={onCsvSaved} onLoaded={setPage}
          onViewChange={(v) => { view.current = v }} />
      )}
      {output.kind === 'image' && <ZoomableImage src={outputUrl(base, output.path)} alt={output.path} testId="output-image" />}
      {conversion && (
        <div className="inline-job">
          <div className="pager"><span className="muted">Making the dataset {conversion.name}</span><span className="spacer" />
            <button type="button" className="secondary small" onClick={() => setConversion(null)}>Dismiss</button></div>
          <JobPanel key={conversion.job} jobId={conversion.job} />
        </div>
      )}
      {output.kind === 'plot' && (
        <div className="plot-with-row">
          <BokehPlot base={base} path={output.path} onCsvSaved={onCsvSaved} onRow={(csv, index) => setRow({ csv, index })} />
          {row && <RowDetails base={base} csv={row.csv} index={row.index} onClose={() => setRow(null)} />}
        </div>
      )}
      {output.kind === 'file' && <p className="muted">This output is a file: download it to open it.</p>}
      {making && (
        <NameDialog title="Make a dataset from this CSV" label="Dataset name" submitLabel="Make dataset" testId="make-dataset-dialog"
          initial={withoutCsv(output.path.split('/').pop() ?? output.path)} onSubmit={makeDataset} onClose={() => setMaking(false)}
          hint={datasetHint(output.path, viewFields(), page)} />
      )}
    </section>
  )
}
