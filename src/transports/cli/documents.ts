import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { usageError } from './cli-error.ts'

/** Reads a file a command line names; a missing or unreadable one is a usage error (nothing was sent). */
export async function readInputFile(file: string, cwd: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path.resolve(cwd, file))
  } catch (error) {
    const code = (error as { code?: string }).code
    throw usageError(`cannot read ${what} "${file}": ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a folder' : (error as Error).message}`, 'UNREADABLE_FILE')
  }
}

export async function readTextFile(file: string, cwd: string, what: string): Promise<string> {
  return (await readInputFile(file, cwd, what)).toString('utf8')
}

/** A JSON or YAML document that must be a mapping (values files, request documents). */
export async function readDocument(file: string, cwd: string, what: string): Promise<Record<string, unknown>> {
  const text = await readTextFile(file, cwd, what)
  const { parse } = await import('yaml')
  let parsed: unknown
  try {
    parsed = parse(text)
  } catch (error) {
    throw usageError(`${what} "${file}" is neither JSON nor YAML: ${(error as Error).message.split('\n')[0]}`, 'INVALID_DOCUMENT')
  }
  if (parsed === null || parsed === undefined) return {}
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw usageError(`${what} "${file}" must be a mapping (key: value) at the top`, 'INVALID_DOCUMENT')
  return parsed as Record<string, unknown>
}

/**
 * Applies helm-style `--set a.b=value` to `values`: dotted keys make nested mappings, and the value is
 * read as a YAML scalar (true, 3, null, "text"), as helm reads it.
 */
export async function applySetValues(values: Record<string, unknown>, assignments: string[]): Promise<Record<string, unknown>> {
  if (assignments.length === 0) return values
  const { parse } = await import('yaml')
  for (const assignment of assignments) {
    const at = assignment.indexOf('=')
    if (at <= 0) throw usageError(`--set takes key=value (dots for nesting: image.tag=2.5), not "${assignment}"`)
    const keys = assignment.slice(0, at).split('.')
    if (keys.some((key) => key === '')) throw usageError(`--set "${assignment}": an empty key`)
    let target = values
    for (const key of keys.slice(0, -1)) {
      const next = target[key]
      if (next === null || typeof next !== 'object' || Array.isArray(next)) target[key] = {}
      target = target[key] as Record<string, unknown>
    }
    const raw = assignment.slice(at + 1)
    let value: unknown
    try {
      value = parse(raw)
    } catch {
      value = raw
    }
    target[keys.at(-1)!] = value === undefined ? null : value
  }
  return values
}
