import { existsSync } from 'node:fs'
import { open } from 'node:fs/promises'
import path from 'node:path'
import { EXIT, usageError } from '../cli-error.ts'
import { flag, positional, stringValue, type CommandContext, type CommandSpec } from '../command.ts'
import { readTextFile } from '../documents.ts'
import type { Output } from '../output.ts'
import { formatBytes } from '../table.ts'

const SQLITE_MAGIC = 'SQLite format 3\0'

/** An output file given with --out: its folder must exist, and an existing file is replaced only with --force. */
function outputFile(context: CommandContext, required: boolean): string | undefined {
  const file = stringValue(context, 'out')
  if (file === undefined) {
    if (required) throw usageError('where to? --out FILE')
    return undefined
  }
  const resolved = path.resolve(context.cwd, file)
  if (!existsSync(path.dirname(resolved))) throw usageError(`the folder of --out "${file}" does not exist`)
  if (existsSync(resolved) && !flag(context, 'force')) throw usageError(`"${file}" exists; add --force to replace it`, 'FILE_EXISTS')
  return resolved
}

async function startsWith(file: string, magic: string): Promise<boolean> {
  const handle = await open(file, 'r')
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(magic.length), 0, magic.length, 0)
    return bytesRead === magic.length && buffer.toString('latin1') === magic
  } finally {
    await handle.close()
  }
}

/** An import report ({machines: {created, updated}, ...}) as a table, or any other answer as fields. */
function printImportReport(out: Output, report: unknown): void {
  const entries = report !== null && typeof report === 'object' && !Array.isArray(report) ? Object.entries(report) : []
  const counted = entries.every(([, value]) => value !== null && typeof value === 'object' && 'created' in value && 'updated' in value)
  if (entries.length > 0 && counted) {
    out.table(
      [{ header: 'KIND' }, { header: 'CREATED', align: 'right' }, { header: 'UPDATED', align: 'right' }],
      entries.map(([kind, value]) => [kind, (value as { created: unknown }).created, (value as { updated: unknown }).updated]),
    )
    return
  }
  out.fields(entries.length > 0 ? entries.map(([key, value]) => [key, typeof value === 'object' ? JSON.stringify(value) : value]) : [['result', JSON.stringify(report)]])
}

const OUT_OPTIONS = {
  force: { type: 'boolean' as const, help: 'replace the file if it exists' },
}

export const backupCommands: CommandSpec[] = [
  {
    path: ['backup'],
    summary: "download an online-consistent copy of the engine's database",
    options: { out: { type: 'string', short: 'o', value: 'FILE', help: 'where to write it (required)' }, ...OUT_OPTIONS },
    details: 'The copy is written to FILE.partial and renamed when complete (mode 0600: it holds sealed secrets).',
    async run(context) {
      const file = outputFile(context, true)!
      const api = await context.api()
      const { bytes, header } = await api.download('/api/v1/backup', file)
      const takenAt = header('x-slipway-snapshot-taken-at') ?? null
      const schema = header('x-slipway-schema') || null
      if (context.out.json) {
        context.out.print(JSON.stringify({ file, bytes, taken_at: takenAt, schema }))
        return EXIT.ok
      }
      const sqlite = await startsWith(file, SQLITE_MAGIC)
      const about = [sqlite ? 'SQLite database' : null, takenAt ? `taken at ${takenAt}` : null, schema ? `schema ${schema}` : null].filter(Boolean).join(', ')
      context.out.print(`wrote ${formatBytes(bytes)} to ${file}${about ? ` (${about})` : ''}`)
      return EXIT.ok
    },
  },
  {
    path: ['inventory', 'export'],
    summary: 'export the inventory as JSON (to stdout, or --out FILE)',
    options: { out: { type: 'string', short: 'o', value: 'FILE', help: 'write to this file instead of stdout' }, ...OUT_OPTIONS },
    async run(context) {
      const file = outputFile(context, false)
      const api = await context.api()
      if (file === undefined) {
        context.out.printJson((await api.call('GET', '/api/v1/inventory/export')).raw)
        return EXIT.ok
      }
      const { bytes } = await api.download('/api/v1/inventory/export', file)
      if (context.out.json) context.out.print(JSON.stringify({ file, bytes }))
      else context.out.print(`wrote the inventory (${formatBytes(bytes)}) to ${file}`)
      return EXIT.ok
    },
  },
  {
    path: ['inventory', 'import'],
    summary: 'import an inventory exported with `inventory export`',
    args: '<file.json>',
    arity: [1, 1],
    async run(context) {
      const file = positional(context, 0)
      const text = await readTextFile(file, context.cwd, 'inventory file')
      let document: unknown
      try {
        document = JSON.parse(text)
      } catch (error) {
        throw usageError(`"${file}" is not JSON: ${(error as Error).message}`, 'INVALID_DOCUMENT')
      }
      const answer = await (await context.api()).call('POST', '/api/v1/inventory/import', { json: document })
      if (context.out.json) context.out.printJson(answer.raw)
      else printImportReport(context.out, answer.data)
      return EXIT.ok
    },
  },
]
