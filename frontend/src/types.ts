export interface User { id: number; username: string; email: string; is_staff: boolean; has_token: boolean }

export interface Column { name: string; label: string | null; kind: string; shape: string; classes: string[] }

export interface Dataset {
  id: number; name: string; plugin_id: string; job: number | null; csv_name: string; rows: number
  columns: Column[]; class_names: string[]; class_counts: number[]; palette: string[]; size_bytes: number; created_at: string
  counts_of?: 'images' | 'rows' | 'boxes' | 'pixels'  // what class_counts counts
}

export interface Param {
  name: string; type: string; default: unknown; required: boolean; help: string
  choices: (string | number)[] | null; min: number | null; max: number | null
  multiple?: boolean; extras?: string[]  // variable parameters: a comma-separated list; computed variables
  label?: string  // the words a form shows (the name is then a hint)
}

export type PluginGroup = 'Utils' | 'Visualization' | 'Fairness' | 'XAI'

export interface Plugin {
  id: string; kind: string; title: string; description: string; group?: PluginGroup | null; params: Param[]
  config_fields?: string[] | null  // training: the project-config settings it reads (null: all of them)
}

export interface Job {
  id: number; kind: string; plugin_id: string; title: string; params: Record<string, unknown>; state: string
  progress_done: number; progress_total: number; message: string; last_seq: number; created_at: string
  finished_at: string | null; datasets: { id: number; name: string }[]
  started_at?: string | null; worker?: string; target?: JobTarget | null  // what it worked on (a run, a dataset)
}

export type JobTarget =
  | { kind: 'run'; id: number; name: string; project: string; deleted: boolean }
  | { kind: 'dataset'; id: number; name: string; deleted: boolean }

// {"train_dataset": "<name>"}: datasets deleted while a project or run used them
export type DeletedDatasets = Partial<Record<'train_dataset' | 'valid_dataset', string>>

// Who uses a dataset (asked before deleting it).
export interface DatasetUsage {
  projects: { id: number; name: string; as: string[] }[]
  runs: { id: number; name: string; project: { id: number; name: string }; as: string[]; state: string }[]
}

export interface JobEvent { seq: number; kind: string; data: Record<string, any>; ts: number }

export interface Project {
  id: number; name: string; description: string; train_dataset: number | null; valid_dataset: number | null
  created_at: string; deleted_datasets?: DeletedDatasets
}

export interface Run {
  id: number; project: number; job: number | null; state: string; plugin_id: string; params: Record<string, unknown>
  config: Record<string, unknown>; train_dataset: number | null; valid_dataset: number | null
  metrics: Record<string, any>; history: { epoch: number; train_loss: number; train_error: number; valid_error: number }[]
  created_at: string
  name?: string; project_name?: string; can_resume?: boolean; deleted_datasets?: DeletedDatasets
  settings?: Record<string, unknown>  // its plugin's parameters and the config settings that plugin reads
  setting_labels?: Record<string, string>  // the forms' words for those settings (where they have them)
  exportable?: boolean  // its model has TorchScript / ONNX downloads
}

// The Evaluation workspace of a run or dataset: every endpoint below lives under a base,
// `/api/runs/<id>` or `/api/datasets/<id>`.
export type CsvKind = 'evaluation' | 'dataset' | 'saved' | 'output'
export interface CsvInfo { name: string; rows: number; kind: CsvKind }

export type CellKind = 'image' | 'number' | 'text'
export interface TableColumn { header: string; variable: string; kind: CellKind }

export interface TableRow {
  index: number; cells: string[]
  images: Record<string, string>  // column index -> thumbnail URL
  links: Record<string, string>   // column index -> full image URL
}

export interface TablePage {
  csv: string; header: string[]; columns: TableColumn[]; variables: string[]; classes: string[] | null
  filters: { classification: boolean; anomaly: boolean }
  total: number; start: number; next: number | null; rows: TableRow[]
}

export interface TableFilter {
  misclassified?: boolean; actual?: number; predicted?: number
  flagged?: boolean; threshold?: number  // anomaly: flagged = score >= threshold
}
export interface TableSort { column: number; desc: boolean }

export type OutputKind = 'image' | 'table' | 'plot' | 'file'
export interface PostprocessOutput { path: string; kind: OutputKind }
export type PostprocessState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'

export interface Postprocess {
  id: number; job: number; plugin_id: string; title: string; state: PostprocessState; message: string
  params: Record<string, unknown>; outputs: PostprocessOutput[]; created_at: string
}

// What a right-click was on: the plugin dialog is prefilled from it.
export interface CellContext { csv: string; row: TableRow | null; column: number | null; page: TablePage | null }

// A filter for the Output result table from elsewhere on the page (the confusion matrix); a new
// object applies it again; show switches to the table.
export interface ExternalFilter { filter: TableFilter; show?: boolean }

// Endpoints (serving): a run's model over REST.
export interface EndpointColumn { name: string; kind: 'numeric' | 'categorical'; categories?: string[] }
export interface Endpoint {
  id: number; name: string; run: number; run_name: string; project: number; project_name: string
  state: 'running' | 'stopped'; url: string; curl: string
  max_instances: number; max_body_bytes: number; max_image_pixels: number; rate_per_minute: number
  model: { available: boolean; problem?: string; architecture?: string; inputs?: 'image' | 'table'
    task?: 'classification' | 'anomaly' | 'regression'; classes?: string[]; input_size?: number | null
    columns?: EndpointColumn[]; threshold?: number }
  stats: { requests: number; errors: number; instances: number; batches: number; batched_instances: number
    largest_batch: number; latency_ms: { p50: number | null; p95: number | null; p99: number | null }
    runtime: { runtime?: string; torch_ms?: number; onnxruntime_ms?: number; why?: string }; last_request_at: string | null }
  tokens: number; created_at: string
}
export interface EndpointToken { id: number; name: string; prefix: string; created_at: string; last_used_at: string | null }
// One instance's answer: ranked labels, an anomaly verdict, or a regressor's number.
export type Prediction = { label: string; score: number }[] | number
  | { score: number; anomalous: boolean; threshold: number; heatmap?: string }
