import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { sleep } from '../../test/helpers/wait.ts'

/**
 * Child processes the benchmark started, so that every exit path (success, error, SIGINT) stops
 * exactly those, by PID, and nothing else.
 */
export interface Tracked {
  name: string
  child: ChildProcess
  /** Last output lines, shown when the process fails. */
  output: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const tracked = new Set<Tracked>()

export function spawnTracked(name: string, command: string, args: string[], options: SpawnOptions = {}): Tracked {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  const chunks: string[] = []
  let size = 0
  const keep = (data: Buffer) => {
    chunks.push(data.toString('utf8'))
    size += data.length
    while (size > 64_000 && chunks.length > 1) size -= chunks.shift()!.length
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  const entry: Tracked = { name, child, output: () => chunks.join(''), exited }
  tracked.add(entry)
  void exited.then(
    () => tracked.delete(entry),
    () => tracked.delete(entry),
  )
  return entry
}

/** Runs a process to completion and returns its stdout; fails with its output on a non-zero exit. */
export async function runTracked(name: string, command: string, args: string[], options: SpawnOptions = {}): Promise<string> {
  const entry = spawnTracked(name, command, args, options)
  let stdout = ''
  entry.child.stdout?.on('data', (data: Buffer) => (stdout += data.toString('utf8')))
  const { code, signal } = await entry.exited
  if (code !== 0) throw new Error(`${name} exited with ${code ?? signal}:\n${entry.output().slice(-4000)}`)
  return stdout
}

/** SIGTERM by PID, then SIGKILL after `graceMs` if the process is still there. */
export async function stopProcess(entry: Tracked, graceMs = 10_000): Promise<void> {
  const { child } = entry
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = entry.exited.catch(() => undefined)
  try {
    process.kill(child.pid, 'SIGTERM')
  } catch {
    return
  }
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref())
  if ((await Promise.race([exited, timer])) === 'timeout') {
    try {
      process.kill(child.pid, 'SIGKILL')
    } catch {
      // already gone
    }
    await exited
  }
}

/** Stops every process this benchmark started that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...tracked].map((entry) => stopProcess(entry)))
}

/** Synchronous last resort for `process.on('exit')`: SIGKILL whatever is still tracked. */
export function killAllSync(): void {
  for (const entry of tracked) {
    if (entry.child.pid !== undefined && entry.child.exitCode === null && entry.child.signalCode === null) {
      try {
        process.kill(entry.child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (!address || typeof address === 'string') throw new Error('could not obtain a free port')
  return address.port
}

/** Polls `url` until it answers 200, failing early if `entry` exits and after `timeoutMs`. */
export async function waitForHttp(url: string, entry: Tracked, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError = ''
  while (Date.now() < deadline) {
    if (entry.child.exitCode !== null || entry.child.signalCode !== null) {
      throw new Error(`${entry.name} exited (${entry.child.exitCode ?? entry.child.signalCode}) before ${url} answered:\n${entry.output().slice(-4000)}`)
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
      if (response.status === 200) return
      lastError = `HTTP ${response.status}`
    } catch (error) {
      lastError = (error as Error).message
    }
    await sleep(100)
  }
  throw new Error(`${entry.name} did not answer ${url} within ${timeoutMs} ms (${lastError}):\n${entry.output().slice(-4000)}`)
}
