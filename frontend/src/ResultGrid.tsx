import { useEffect, useState } from 'react'
import { EXPLAIN_METHODS, useExplainMenu, type ExplainTarget } from './ExplainDialog'
import { ResultDialog, ScoreBars } from './ResultDialog'

// A classification result row as /api/runs/<id>/results/ gives it.
export interface ClassifiedRow {
  index: number; image?: string; values?: string[]; label: number; predicted: number; score?: number; scores?: number[]
}

const datasetFile = (dataset: number, cell: string, thumb: boolean) =>
  `/api/datasets/${dataset}/files/${cell.replace(/^\.\//, '').split('/').map(encodeURIComponent).join('/')}${thumb ? '?thumb=1' : ''}`

// The evaluation's image grid: each image (right or wrong, actual → predicted, its score) opens
// larger with every class's score; Previous / Next walk through the grid. With the run's `base`
// (/api/runs/<id>), a right-click (or the menu key) on an image offers Explain with Grad-CAM / LIME /
// SHAP, for its predicted class, the true class one click away in the dialog.
export function ResultGrid({ rows, dataset, names, busy = false, base }: {
  rows: ClassifiedRow[]; dataset: number; names: string[]; busy?: boolean; base?: string
}) {
  const [opened, setOpened] = useState<number | null>(null)
  useEffect(() => setOpened(null), [rows])
  const row = opened === null ? null : rows[opened]
  const menu = useExplainMenu({ base: base ?? '', names })
  const target = (r: ClassifiedRow): ExplainTarget =>
    ({ image: r.image!, src: datasetFile(dataset, r.image!, false), predicted: r.predicted, actual: r.label })
  return (
    <>
      <div className="result-grid" data-testid="result-rows" aria-busy={busy}>
        {rows.map((r, position) => (
          <figure key={r.index} className={r.label === r.predicted ? 'ok' : 'wrong'} data-row={r.index}
            onContextMenu={base && r.image ? (e) => menu.onContextMenu(e, target(r), [{ type: 'item', id: 'open',
              label: 'Open larger, with its scores', testId: 'menu-open-image', onSelect: () => setOpened(position) }]) : undefined}>
            {r.image
              ? <button type="button" className="figure-open" onClick={() => setOpened(position)}
                  title={base ? 'Open larger, with its scores (right-click: explain)' : 'Open larger, with its scores'} aria-label={`Open row ${r.index} larger`}>
                  <img className="thumb" src={datasetFile(dataset, r.image, true)} alt={r.image} /></button>
              : <code className="values">{(r.values ?? []).join(', ')}</code>}
            <figcaption>{names[r.label]} → {names[r.predicted]} ({((r.score ?? 0) * 100).toFixed(0)}%)</figcaption>
          </figure>))}
      </div>
      {row && row.image && opened !== null && (
        <ResultDialog title={`Row ${row.index}: ${row.image}`} onClose={() => setOpened(null)}
          onPrevious={opened > 0 ? () => setOpened(opened - 1) : undefined}
          onNext={opened < rows.length - 1 ? () => setOpened(opened + 1) : undefined}
          images={[{ src: datasetFile(dataset, row.image, false), testId: 'result-image',
            caption: `actual ${names[row.label] ?? row.label}, predicted ${names[row.predicted] ?? row.predicted}` }]}>
          <p className={row.label === row.predicted ? 'notice' : 'error'} data-testid="result-verdict">
            {row.label === row.predicted ? 'Right' : 'Wrong'}: {names[row.label]} → {names[row.predicted]}
            {row.score !== undefined && ` (${(100 * row.score).toFixed(1)}%)`}</p>
          {row.scores && <ScoreBars names={names} scores={row.scores} actual={row.label} />}
          {base && (
            <div className="pager">
              {EXPLAIN_METHODS.map((m) => (
                <button key={m.id} type="button" className="secondary small" data-testid={`image-explain-${m.id}`}
                  onClick={() => { setOpened(null); menu.explain(m.id, target(row)) }}>Explain with {m.label}</button>))}
            </div>)}
        </ResultDialog>
      )}
      {base && menu.node}
    </>
  )
}
