// NNC CSV header cell: name[__index][:label[;class;class...]]
export function parseHeader(cell: string): { name: string; title: string; classes: string[] } {
  const colon = cell.indexOf(':')
  const left = colon >= 0 ? cell.slice(0, colon) : cell
  const right = colon >= 0 ? cell.slice(colon + 1) : ''
  const [label, ...classes] = right.split(';')
  return { name: left, title: label ? `${left}:${label}` : left, classes: colon >= 0 ? classes : [] }
}
