import type { Param } from './types'

// A form field's label: words (the schema's label), "required" where it must be filled, and the
// parameter's own name as a hint, since the API, the command line and the docs use that name.
export function FieldLabel({ param, htmlFor }: { param: Param; htmlFor: string }) {
  const words = param.label || param.name
  return (
    <span className="field-label">
      <label htmlFor={htmlFor} className="name">{words}</label>
      {param.required && <span className="required-mark">required</span>}
      {words !== param.name && <code className="param-name" title="the parameter's name (API and command line)">{param.name}</code>}
    </span>
  )
}

// Whether a value counts as not filled in (a required field then says "required").
export function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.trim() === '')
}
