// The little of BokehJS (loaded globally by templates/index.html) that the app uses, typed.

export interface BokehSignal { connect(slot: () => void): boolean; disconnect(slot: () => void): boolean }

export interface BokehSelection {
  indices: ArrayLike<number>
  properties: { indices: { change: BokehSignal } }
}

export interface BokehColumnDataSource {
  data: Record<string, ArrayLike<unknown>>
  selected: BokehSelection
  stream(data: Record<string, unknown[]>): void
}

export interface BokehDocument {
  get_model_by_name(name: string): unknown
  get_model_by_id(id: string): unknown
}

interface BokehView { el: Element; model: { document: BokehDocument | null }; remove(): void }

// A model of the document, loosely typed: its properties are read and set by name (Bokeh's own
// setters re-render what changed), e.g. `plot.renderers = [...]`, `ticker.min_interval = 1`.
export type BokehModel = Record<string, any>

interface BokehGlobal {
  embed: {
    embed_item(item: unknown, target: HTMLElement): Promise<{ roots: BokehView[] } | undefined>
    add_document_standalone(doc: BokehDocument, target: HTMLElement): Promise<{ roots: BokehView[] } | undefined>
  }
  documents: BokehDocument[]
  Models: Record<string, any>
}

export interface Embedded { doc: BokehDocument; dispose: () => void }

function bokeh(): BokehGlobal | null {
  return (window as unknown as { Bokeh?: BokehGlobal }).Bokeh ?? null
}

// Embeds a json_item into element and returns the document it was embedded as: the one whose root
// view lives in element (never "the last document", which another plot may have added meanwhile).
// prepare changes the document before it is shown for good: its first views are removed and it is
// drawn again once changed (a figure changed while drawn can ask for views still being built).
export async function embedItem(item: unknown, element: HTMLElement, prepare?: (doc: BokehDocument) => void): Promise<Embedded> {
  const library = bokeh()
  if (!library) throw new Error('BokehJS did not load')
  element.innerHTML = ''
  const manager = await library.embed.embed_item(item, element)
  let views = manager?.roots ?? []
  const view = views.find((v) => element.contains(v.el)) ?? views[0]
  let doc = view?.model.document ?? null
  if (!doc) {
    const rootId = (item as { root_id?: string }).root_id
    doc = [...library.documents].reverse().find((d) => rootId && d.get_model_by_id(rootId)) ?? null
  }
  if (!doc) throw new Error('The plot could not be embedded')
  if (prepare) {
    for (const v of views) v.remove()
    ;(doc as unknown as { views_manager: unknown }).views_manager = null  // add_document_standalone asks for none
    element.innerHTML = ''
    prepare(doc)
    views = (await library.embed.add_document_standalone(doc, element))?.roots ?? []
  }
  const found = doc
  return {
    doc: found,
    dispose: () => {
      for (const v of views) {
        try { v.remove() } catch { /* already gone with its element */ }
      }
      const at = library.documents.indexOf(found)
      if (at >= 0) library.documents.splice(at, 1)
    },
  }
}

export function columnDataSource(doc: BokehDocument, name: string): BokehColumnDataSource | null {
  const model = doc.get_model_by_name(name) as BokehColumnDataSource | null
  return model && typeof model === 'object' && 'data' in model ? model : null
}

// BokehJS's model classes by name (`new (bokehModels().Line)({...})`), to add to an embedded figure.
export function bokehModels(): Record<string, any> {
  const library = bokeh()
  if (!library) throw new Error('BokehJS did not load')
  return library.Models
}
