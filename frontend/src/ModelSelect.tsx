import { useEffect, useState, type ReactNode } from 'react'
import { api } from './api'
import type { Param, User } from './types'

// `plugin`/`param`: a Hugging Face model (DETR, SegFormer) that this training plugin's switch asks for.
interface ModelInfo { id: string; title: string; available: boolean; plugin?: string; param?: string }

// The model store and who is asking, fetched once per page load: every backbone choice shares them.
let models: Promise<ModelInfo[]> | null = null
let staff: Promise<boolean> | null = null
const loadModels = () => (models ??= api<{ results: ModelInfo[] }>('/api/models/').then((r) => r.results))
const loadStaff = () => (staff ??= api<{ user?: User }>('/api/auth/me/').then((r) => Boolean(r.user?.is_staff)))

// A switch (DETR's and SegFormer's `pretrained`) whose weights are not on this server: marked before the
// run is started, with the import command for staff, as a backbone of the store is.
export function SwitchWeights({ plugin, param, value }: { plugin: string; param: Param; value: unknown }) {
  const [model, setModel] = useState<ModelInfo | null>(null)
  const [isStaff, setStaff] = useState(false)
  useEffect(() => {
    if (param.type !== 'bool') return
    let live = true
    loadModels().then((r) => { if (live) setModel(r.find((m) => m.plugin === plugin && m.param === param.name) ?? null) })
      .catch(() => undefined)  // the run's own check still answers at submission
    loadStaff().then((s) => { if (live) setStaff(s) }).catch(() => undefined)
    return () => { live = false }
  }, [plugin, param.name, param.type])
  if (!model || model.available || !value) return null
  return (
    <MissingWeights model={model} isStaff={isStaff} needs={<>with {param.name} on</>} source="folder or model.safetensors"
      staffAlternative={<>, or turn {param.name} off.</>} otherwise={<>turn {param.name} off (random weights).</>} />
  )
}

// What a choice whose weights are not on this server means, and how to get them (staff) or whom to ask.
function MissingWeights({ model, isStaff, needs, source, staffAlternative, otherwise }: {
  model: ModelInfo; isStaff: boolean; needs: ReactNode; source: string; staffAlternative: ReactNode
  otherwise: ReactNode
}) {
  return (
    <div className="warning" role="status" data-testid="missing-weights">
      The weights of {model.title} are not on this server, so a run {needs} cannot start.
      {isStaff
        ? <> Import them (as the server's administrator): <code>python manage.py import_weights {model.id} &lt;{source}&gt;</code>{staffAlternative}</>
        : <> Ask the administrator to import them, or {otherwise}</>}
    </div>
  )
}

// A backbone of the model store: models whose weights are not on this server are marked; chosen,
// staff see the command that imports them, others whom to ask.
export function ModelSelect({ id, param, value, onChange }: {
  id: string; param: Param; value: unknown; onChange: (v: string) => void
}) {
  const [known, setKnown] = useState<ModelInfo[] | null>(null)
  const [isStaff, setStaff] = useState(false)
  const [error, setError] = useState('')

  useEffect(() => {
    let live = true
    loadModels().then((r) => { if (live) setKnown(r) }).catch((e) => { if (live) setError((e as Error).message) })
    loadStaff().then((s) => { if (live) setStaff(s) }).catch(() => undefined)
    return () => { live = false }
  }, [])

  const current = String(value ?? '')
  const info = (choice: string) => known?.find((m) => m.id === choice)
  const chosen = info(current)
  return (
    <>
      <select id={id} name={param.name} value={current} onChange={(e) => onChange(e.target.value)} data-testid={`model-select-${param.name}`}>
        {(param.choices ?? []).map((c) => {
          const model = info(String(c))
          const missing = model && !model.available
          return <option key={String(c)} value={String(c)} data-available={model ? String(model.available) : undefined}>
            {model ? model.title : String(c)}{missing ? ' — no weights on this server' : ''}</option>
        })}
      </select>
      {chosen && !chosen.available && (
        <MissingWeights model={chosen} isStaff={isStaff} needs="with it" source="file" staffAlternative={null}
          otherwise="choose a model without this mark." />
      )}
      {error && <div className="error" role="alert">Model list: {error}</div>}
    </>
  )
}
