/**
 * Shared by the validation passes: the collector both report into, and the untyped JSON object they
 * read with the accessors over it. The accessors tolerate anything (absent keys, wrong types, the
 * structural pass's INVALID marker) so the semantic rules can read a half-valid config without
 * guarding every access.
 */

export interface ValidationFinding {
  path: string
  message: string
}

export type Obj = Record<string, unknown>

export class Findings {
  readonly errors: ValidationFinding[] = []
  readonly warnings: ValidationFinding[] = []
  error(path: string, message: string): void {
    this.errors.push({ path, message })
  }
  warn(path: string, message: string): void {
    this.warnings.push({ path, message })
  }
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
export function str(o: Obj | undefined, k: string): string | undefined {
  const v = o?.[k]
  return typeof v === 'string' ? v : undefined
}
export function int(o: Obj | undefined, k: string): number | undefined {
  const v = o?.[k]
  return typeof v === 'number' ? v : undefined
}
export function isTrue(o: Obj | undefined, k: string): boolean {
  return o?.[k] === true
}
export function child(o: Obj | undefined, k: string): Obj | undefined {
  const v = o?.[k]
  return isObj(v) ? v : undefined
}
/** Entries of a list; entries that failed the structural pass are undefined but keep their index. */
export function items(o: Obj | undefined, k: string): Array<Obj | undefined> {
  const v = o?.[k]
  return Array.isArray(v) ? v.map((x) => (isObj(x) ? x : undefined)) : []
}
export function strings(o: Obj | undefined, k: string): Array<string | undefined> {
  const v = o?.[k]
  return Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : undefined)) : []
}
export function nonEmpty(s: string | undefined): s is string {
  return s !== undefined && s !== ''
}
/** Absent, null or empty: what Ignition's util.NilOrEmpty means. A rejected value is not missing. */
export function missing(o: Obj | undefined, k: string): boolean {
  const v = o?.[k]
  return v === undefined || v === null || v === ''
}
