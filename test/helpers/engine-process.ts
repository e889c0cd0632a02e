/**
 * An engine in its own process (`node --import tsx <entry>`), to be SIGKILLed and started again on
 * the same data folder: what crash and fault tests need and an in-process engine cannot give (a kill
 * takes the process's open transactions, timers and sockets with it, as a power cut would).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import { Agent, fetch as undiciFetch } from 'undici'
import { ADMIN_TOKEN, removeTree, REPO_ROOT } from './engine.ts'
import { sleep } from './wait.ts'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

const agents = new Map<string, Agent>()
/** One keep-alive agent per source address. */
const agentFrom = (address: string) => {
  let agent = agents.get(address)
  if (!agent) agents.set(address, (agent = new Agent({ localAddress: address })))
  return agent
}

export interface EngineProcessOptions {
  /** The engine's data folder (database, secrets key); reused across restarts. */
  dataDir: string
  /** Folder holding profiles/, ignition/, ipxe/, generic/ (copySampleContent). */
  contentDir: string
  port: number
  /** The script to run; src/main.ts unless a test needs adapters replaced (see engine-child.ts). */
  entry?: string
  env?: Record<string, string>
}

export interface ApiAnswer {
  status: number
  text: string
  json: () => any
}

/**
 * One engine process at a time on a data folder; `start()` again after `kill()` is the restart. All
 * output is kept in `output` (printed by the tests when they fail).
 */
export class EngineProcess {
  output = ''
  private child: ChildProcess | undefined
  readonly baseUrl: string

  constructor(private readonly options: EngineProcessOptions) {
    this.baseUrl = `http://127.0.0.1:${options.port}`
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  async start(): Promise<void> {
    const { dataDir, contentDir, port } = this.options
    const child = spawn(process.execPath, ['--import', 'tsx', this.options.entry ?? 'src/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        SLIPWAY_DATA_DIR: dataDir,
        SLIPWAY_HTTP_HOST: '127.0.0.1',
        SLIPWAY_HTTP_PORT: String(port),
        SLIPWAY_PROXY_PORT: '0',
        SLIPWAY_DNS_PORT: '0',
        SLIPWAY_AUTH_ADMIN_TOKEN: ADMIN_TOKEN,
        // Fleets played from 127.0.0.1, as from behind one NAT address.
        SLIPWAY_MACHINES_DISCOVERY_REPORTS_PER_MINUTE: '1000000',
        SLIPWAY_CONTENT_PROFILES_DIR: path.join(contentDir, 'profiles'),
        SLIPWAY_CONTENT_IGNITION_DIR: path.join(contentDir, 'ignition'),
        SLIPWAY_CONTENT_IPXE_DIR: path.join(contentDir, 'ipxe'),
        SLIPWAY_CONTENT_GENERIC_DIR: path.join(contentDir, 'generic'),
        SLIPWAY_CONTENT_ASSETS_DIR: path.join(contentDir, 'assets'),
        SLIPWAY_LOG_LEVEL: 'info',
        ...this.options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()))
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()))
    this.child = child
    for (let attempt = 0; attempt < 600; attempt++) {
      if (await fetch(`${this.baseUrl}/healthz`).then((response) => response.ok, () => false)) return
      if (child.exitCode !== null) throw new Error(`the engine exited (${child.exitCode}): ${this.output.slice(-3000)}`)
      await sleep(50)
    }
    throw new Error(`the engine did not start: ${this.output.slice(-3000)}`)
  }

  /** SIGKILL, and wait until the process is gone (its locks and sockets released). */
  async kill(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    this.output += '\n--- SIGKILL ---\n'
  }

  /** SIGTERM (a graceful shutdown), falling back to SIGKILL. */
  async stop(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  }

  /**
   * An API call; the admin token unless `headers` says otherwise (`{}`: none). `from`: a loopback
   * source address to send from, as a machine at that address would.
   */
  async call(method: string, url: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` }, from?: string): Promise<ApiAnswer> {
    const init = { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) }
    // undici's own fetch takes a dispatcher (a connection bound to `from`); both throw TypeError when the engine is down.
    const response = from ? await undiciFetch(`${this.baseUrl}${url}`, { ...init, dispatcher: agentFrom(from) }) : await fetch(`${this.baseUrl}${url}`, init)
    const text = await response.text()
    return { status: response.status, text, json: () => JSON.parse(text) }
  }

}

/**
 * A small seeded PRNG (mulberry32): kill points are random but a failing run is replayed with its
 * seed (printed by each test; `SLIPWAY_FAULT_SEED` sets it).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let value = state
    value = Math.imul(value ^ (value >>> 15), value | 1)
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61)
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296
  }
}

export function faultSeed(): number {
  const given = process.env.SLIPWAY_FAULT_SEED
  return given ? Number(given) : Math.floor(Math.random() * 2 ** 31)
}

/** How many kill points a scenario runs: its default (sized for `npm test`), or more for a long local run. */
export function killCount(defaultCount: number): number {
  const given = Number(process.env.SLIPWAY_FAULT_KILLS ?? '')
  return Number.isInteger(given) && given > 0 ? given : defaultCount
}

/**
 * The engine as `npm start` runs it (tsx src/main.ts) in a scratch folder of its own, HTTP on
 * loopback, the proxy and DNS on free ports, the scheduler idle; `env` adds to that or overrides it.
 * With `descriptorLimit`, under `ulimit -n`. Stopped (SIGTERM, then SIGKILL after 15 s) and its
 * folder removed at teardown.
 */
export function spawnScratchEngine(t: Test, env: Record<string, string>, options: { descriptorLimit?: number } = {}): { child: ChildProcess; output: () => string } {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-engine-'))
  writeFileSync(path.join(scratch, 'slipway.yaml'), '{}\n')
  const command = options.descriptorLimit ? ['sh', ['-c', `ulimit -n ${options.descriptorLimit} && exec "${process.execPath}" --import tsx src/main.ts`]] as const : [process.execPath, ['--import', 'tsx', 'src/main.ts']] as const
  const child = spawn(command[0], [...command[1]], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SLIPWAY_CONFIG: path.join(scratch, 'slipway.yaml'),
      SLIPWAY_DATA_DIR: path.join(scratch, 'var'),
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_PROXY_PORT: '0',
      SLIPWAY_DNS_PORT: '0',
      SLIPWAY_AUTH_ADMIN_TOKEN: ADMIN_TOKEN,
      SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(kill)
    }
    removeTree(scratch)
  })
  return { child, output: () => output }
}
