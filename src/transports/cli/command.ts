import type { ApiClient } from './api-client.ts'
import { usageError, type ExitCode } from './cli-error.ts'
import type { Output } from './output.ts'

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  multiple?: boolean
  /** The value's placeholder in help, e.g. SELECTOR. */
  value?: string
  help: string
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>

export interface CommandContext {
  values: OptionValues
  positionals: string[]
  out: Output
  /** The API client (created on first use; a missing token fails here, before any request). */
  api(): Promise<ApiClient>
  env: NodeJS.ProcessEnv
  cwd: string
  /** Whether stdin is a terminal a person can answer a confirmation on. */
  interactive: boolean
  confirm(question: string): Promise<string>
}

export interface CommandSpec {
  /** The words that name it: ['clusters', 'list']. */
  path: string[]
  summary: string
  /** Positionals in usage form, e.g. "<namespace/name>". */
  args?: string
  /** How many positionals it takes: [min, max] (max Infinity for "the rest"). */
  arity?: [number, number]
  options?: Record<string, OptionSpec>
  /** More help, printed under the options. */
  details?: string
  /** Everything after the command words goes to it unparsed (lab has its own options). */
  passThrough?: boolean
  /** Runs the command; returns its exit code, or 'running' when it keeps the process alive (serve). */
  run(context: CommandContext): Promise<ExitCode | 'running'>
}

// ----- option values, checked before any request -----

export function stringValue(context: CommandContext, name: string): string | undefined {
  const value = context.values[name]
  return typeof value === 'string' ? value : undefined
}

export function stringValues(context: CommandContext, name: string): string[] {
  const value = context.values[name]
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : []
}

export function flag(context: CommandContext, name: string): boolean {
  return context.values[name] === true
}

/** An integer option within bounds, or undefined when absent. */
export function integerValue(context: CommandContext, name: string, min: number, max: number): number | undefined {
  const text = stringValue(context, name)
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(`--${name} must be a whole number from ${min} to ${max}, not "${text}"`)
  }
  return value
}

/** A number of seconds (fractions allowed) as milliseconds, or `fallback` when absent. */
export function secondsValue(context: CommandContext, name: string, fallbackMs: number, min = 0): number {
  const text = stringValue(context, name)
  if (text === undefined) return fallbackMs
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > 31_536_000) throw usageError(`--${name} must be a number of seconds (at least ${min}), not "${text}"`)
  return Math.round(value * 1000)
}

/** `key=value` options (labels) as a record; a key without "=" is a usage error. */
export function keyValues(context: CommandContext, name: string): Record<string, string> {
  const result: Record<string, string> = {}
  for (const item of stringValues(context, name)) {
    const at = item.indexOf('=')
    if (at <= 0) throw usageError(`--${name} takes key=value, not "${item}"`)
    result[item.slice(0, at)] = item.slice(at + 1)
  }
  return result
}

export function positional(context: CommandContext, index: number): string {
  return context.positionals[index]!
}

/** The options every wait (--wait, --watch) takes. */
export const WAIT_OPTIONS: Record<string, OptionSpec> = {
  'wait-timeout': { type: 'string', value: 'SECONDS', help: 'stop waiting after this long (exit 7); default: no limit' },
  interval: { type: 'string', value: 'SECONDS', help: 'how often to ask the engine while waiting (default 1)' },
}

export function waitSettings(context: CommandContext): { timeoutMs: number; intervalMs: number } {
  return { timeoutMs: secondsValue(context, 'wait-timeout', 0), intervalMs: secondsValue(context, 'interval', 1000, 0.05) }
}

/**
 * Destructive commands ask first: --yes, or typing the name on a terminal. Returns whether to ask;
 * without --yes and without a terminal it is a usage error, before any request.
 */
export function mustConfirm(context: CommandContext, what: string): boolean {
  if (flag(context, 'yes')) return false
  if (!context.interactive) throw usageError(`${what} is destructive: add --yes to confirm (stdin is not a terminal to ask on)`, 'CONFIRMATION_REQUIRED')
  return true
}

export async function confirmByName(context: CommandContext, consequence: string, name: string): Promise<void> {
  const answer = await context.confirm(`${consequence}. Type "${name}" to confirm: `)
  if (answer.trim() !== name) throw usageError('not confirmed; nothing was changed', 'NOT_CONFIRMED')
}

export const YES_OPTION: Record<string, OptionSpec> = { yes: { type: 'boolean', short: 'y', help: 'do not ask for confirmation' } }
