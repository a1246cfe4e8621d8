import type { Run } from './types'

const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : '—')
const num = (v: unknown) => (typeof v === 'number' ? v.toFixed(4) : '—')
const setting = (v: unknown) => (typeof v === 'boolean' ? (v ? 'on' : 'off') : v === '' || v === null ? 'none' : String(v))

// The settings a run was trained with (its plugin's parameters, then the project-config settings
// that plugin reads), each under the form's words for it (its name on hover).
export function RunSettings({ run }: { run: Run }) {
  const settings = Object.entries(run.settings ?? run.params)
  const deleted = Object.entries(run.deleted_datasets ?? {})
  return (
    <div className="run-settings" data-testid="run-settings">
      {settings.map(([name, value]) => (
        <span key={name} className="setting" data-setting={name} title={name}>
          <span className="muted">{run.setting_labels?.[name] ?? name}</span> {setting(value)}</span>))}
      {deleted.map(([field, name]) => (
        <span key={field} className="setting deleted">{field === 'train_dataset' ? 'training' : 'validation'} dataset “{name}” deleted</span>))}
    </div>
  )
}

// A run's scores, each with its own name: accuracy and F1 for classifiers, AUROCs for anomaly
// detection, errors for regressors; nothing before its evaluation.
export function RunScores({ run }: { run: Run }) {
  const m = run.metrics
  const scores: [string, string][] = m.kind === 'anomaly'
    ? [['image AUROC', pct(m.image_auroc)], ['pixel AUROC', pct(m.pixel_auroc)]]
    : m.accuracy !== undefined ? [['accuracy', pct(m.accuracy)], ['F1 (macro)', pct(m.f1_macro)]]
      : m.rmse !== undefined ? [['RMSE', num(m.rmse)], ['R²', num(m.r2)]] : []
  if (!scores.length) return <span className="muted">—</span>
  return (
    <div className="run-scores" data-testid="run-scores">
      {scores.map(([name, value]) => <span key={name} className="score" data-score={name}><span className="muted">{name}</span> {value}</span>)}
    </div>
  )
}
