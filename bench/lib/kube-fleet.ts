import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { withTimeout } from './bench-scope.ts'
import { spawnTracked, type Tracked } from './processes.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const FLEET_CHILD = path.join(REPO, 'bench', 'lib', 'kube-fleet-child.ts')

export interface FleetCluster {
  name: string
  url: string
  token: string
}

export interface FleetStats {
  tlsConnections: number
  requests: number
  cpuMicros: number
  memory: NodeJS.MemoryUsage
}

/** The Kubernetes API doubles of kube-fleet-child.ts, running in their own process. */
export interface KubeFleet {
  entry: Tracked
  caPem: string
  clusters: FleetCluster[]
  /** One question over IPC (see kube-fleet-child.ts), its answer matched by id: several may be in flight. */
  ask<T>(question: Record<string, unknown>): Promise<T>
  stats(): Promise<FleetStats>
}

/**
 * Starts kube-fleet-child.ts with `settings` as its FLEET_* environment (the engine's SLIPWAY_* left
 * out) and waits for the line that describes the doubles. Stopped by PID with the benchmark's scope.
 */
export async function startKubeFleet(label: string, settings: Record<string, string | number>): Promise<KubeFleet> {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SLIPWAY_') && !key.startsWith('FLEET_')))
  for (const [key, value] of Object.entries(settings)) env[key] = String(value)
  const entry = spawnTracked(label, process.execPath, ['--import', 'tsx', FLEET_CHILD], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  const { child } = entry
  const ready = new Promise<{ caPem: string; clusters: FleetCluster[] }>((resolve, reject) => {
    let buffered = ''
    const onData = (data: Buffer) => {
      buffered += data.toString('utf8')
      let newline: number
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        if (!line.startsWith('{')) continue
        try {
          const parsed = JSON.parse(line) as { ready?: boolean; caPem: string; clusters: FleetCluster[] }
          if (parsed.ready) {
            child.stdout?.off('data', onData)
            resolve(parsed)
          }
        } catch (error) {
          reject(new Error(`the doubles' process printed a line that is not JSON: ${(error as Error).message}`))
        }
      }
    }
    child.stdout?.on('data', onData)
    void entry.exited.then(({ code, signal }) => reject(new Error(`the doubles' process exited (${code ?? signal}) before it was ready:\n${entry.output().slice(-4000)}`)), reject)
  })
  const description = await withTimeout(ready, 180_000, () => new Error(`the doubles' process was not ready within 180 s:\n${entry.output().slice(-4000)}`))
  let nextId = 0
  const pending = new Map<number, (message: Record<string, unknown>) => void>()
  child.on('message', (message: { id?: number }) => {
    const resolve = message.id === undefined ? undefined : pending.get(message.id)
    if (resolve) {
      pending.delete(message.id!)
      resolve(message as Record<string, unknown>)
    }
  })
  const ask = async <T>(question: Record<string, unknown>): Promise<T> => {
    const id = nextId++
    const answer = new Promise<Record<string, unknown>>((resolve) => pending.set(id, resolve))
    child.send({ ...question, id })
    const message = await withTimeout(answer, 30_000, () => {
      pending.delete(id)
      return new Error(`the doubles' process did not answer ${JSON.stringify(question)} within 30 s`)
    })
    if (typeof message.error === 'string') throw new Error(`the doubles' process: ${message.error}`)
    return message as T
  }
  return { entry, ...description, ask, stats: () => ask<FleetStats>({ type: 'stats' }) }
}
