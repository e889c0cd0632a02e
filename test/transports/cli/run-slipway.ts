/**
 * Runs the real `slipway` binary (bin/slipway.js under node, as an installed package runs it) and
 * collects what it printed and its exit status. The environment is built from scratch: a
 * developer's own SLIPWAY_TOKEN or SLIPWAY_URL never leaks into a test.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

// Not from helpers/engine.ts: importing it loads the whole engine into the test process.
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url))
export const SLIPWAY_BIN = path.join(REPO_ROOT, 'bin', 'slipway.js')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

export interface RunOptions {
  /** SLIPWAY_URL; left unset when undefined. */
  url?: string
  /** SLIPWAY_TOKEN; left unset when undefined. */
  token?: string | undefined
  env?: Record<string, string>
  cwd?: string
  timeoutMs?: number
}

export function baseEnv(options: RunOptions = {}): Record<string, string> {
  const token = options.token
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
    ...(options.url !== undefined ? { SLIPWAY_URL: options.url } : {}),
    ...(token !== undefined ? { SLIPWAY_TOKEN: token } : {}),
    ...options.env,
  }
}

export function slipway(args: string[], options: RunOptions = {}): Promise<CliResult> {
  const started = Date.now()
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SLIPWAY_BIN, ...args],
      { env: baseEnv(options), cwd: options.cwd ?? REPO_ROOT, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : null) : 0
        resolve({ code, stdout, stderr, ms: Date.now() - started })
      },
    )
  })
}

/** A long-running `slipway` (serve); the caller stops it by its PID. */
export function spawnSlipway(args: string[], options: RunOptions = {}): ChildProcess {
  return spawn(process.execPath, [SLIPWAY_BIN, ...args], { env: baseEnv(options), cwd: options.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** A loopback port nothing listens on: bound, then closed (connections to it are refused). */
export async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** The lines of a table, split into cells on runs of two or more spaces. */
export function tableRows(text: string): string[][] {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => line.trim().split(/ {2,}/))
}

/** Runs `run` over `items`, at most `limit` at once, keeping the order of the results. */
export async function inBatches<I, R>(items: readonly I[], limit: number, run: (item: I) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await run(items[index]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}
