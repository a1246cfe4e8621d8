export interface User { id: number; username: string; email: string; is_staff: boolean; has_token: boolean }

export interface Column { name: string; label: string | null; kind: string; shape: string; classes: string[] }

export interface Dataset {
  id: number; name: string; plugin_id: string; job: number | null; csv_name: string; rows: number
  columns: Column[]; class_names: string[]; class_counts: number[]; palette: string[]; size_bytes: number; created_at: string
}

export interface Param {
  name: string; type: string; default: unknown; required: boolean; help: string
  choices: (string | number)[] | null; min: number | null; max: number | null
}

export interface Plugin { id: string; kind: string; title: string; description: string; params: Param[] }

export interface Job {
  id: number; kind: string; plugin_id: string; title: string; params: Record<string, unknown>; state: string
  progress_done: number; progress_total: number; message: string; last_seq: number; created_at: string
  finished_at: string | null; datasets: { id: number; name: string }[]
}

export interface JobEvent { seq: number; kind: string; data: Record<string, any>; ts: number }

export interface Project {
  id: number; name: string; description: string; train_dataset: number | null; valid_dataset: number | null
  created_at: string
}

export interface Run {
  id: number; project: number; job: number | null; state: string; plugin_id: string; params: Record<string, unknown>
  config: Record<string, unknown>; train_dataset: number | null; valid_dataset: number | null
  metrics: Record<string, any>; history: { epoch: number; train_loss: number; train_error: number; valid_error: number }[]
  created_at: string
}
