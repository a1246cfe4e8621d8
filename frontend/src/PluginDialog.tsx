import { api } from './api'
import { Modal } from './Modal'
import { PluginForm } from './PluginForm'
import type { Plugin, Postprocess } from './types'

// A post-processing plugin's form (from its schema, prefilled from what was clicked) in a modal;
// it runs as {base}/postprocess/ and the dialog closes once the job is queued.
export function PluginDialog({ base, plugin, initial, onQueued, onClose }: {
  base: string; plugin: Plugin; initial: Record<string, unknown>; onQueued: (postprocess: Postprocess) => void
  onClose: () => void
}) {
  return (
    <Modal title={plugin.title} onClose={onClose} testId="plugin-dialog" wide>
      <PluginForm<Postprocess> plugin={plugin} base={base} initial={initial} submitTestId="plugin-submit"
        submit={(values) => api<Postprocess>(`${base}/postprocess/`, { method: 'POST', body: { plugin: plugin.id, params: values } })}
        onQueued={onQueued} />
    </Modal>
  )
}
