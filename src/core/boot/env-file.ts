import type { RenderContext } from './template.ts'

/**
 * matchbox's `/metadata` format: `KEY=value` lines, keys upper-cased, nested objects flattened with
 * `_` (`etcd.name` -> `ETCD_NAME`), strings, numbers and booleans printed, arrays and nulls skipped.
 * Unlike matchbox, lines come sorted (Go map order is random) and numbers print as written, not 1e+06.
 */
export function renderEnvFile(variables: RenderContext): string {
  const lines: string[] = []
  collect(variables, '', lines)
  return lines.sort().map((line) => `${line}\n`).join('')
}

function collect(values: Record<string, unknown>, prefix: string, lines: string[]) {
  for (const [key, value] of Object.entries(values)) {
    const name = (prefix + key).toUpperCase()
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      lines.push(`${name}=${String(value)}`)
    } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      collect(value as Record<string, unknown>, `${name}_`, lines)
    }
  }
}
