/**
 * A running engine (real SQLite, the real runner job) with an installed, outdated cluster, and the
 * adapters that reach outside replaced by doubles: a machine shell whose "restart" makes the machine
 * report its new config after `rebootMs`, a node drainer that records cordons, and an etcd whose
 * members (one per control-plane member) are all healthy and caught up, so that the etcd gates let
 * each member through as soon as it reported (the gates themselves: test/core/lifecycle and
 * test/e2e/etcd-quorum.test.ts). Shared by the rollout tests and the rollout benchmark.
 */
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { CommandResult, DrainOptions, MachineShell, NodeDrainer, SshTarget } from '../../src/core/lifecycle/ports.ts'
import { FixedEtcdGateway } from './etcd-gateway.ts'
import { machineCredentials } from '../helpers/machine-credentials.ts'
import { reportInstalled, takeSlotAndFetchConfig } from '../helpers/machine-requests.ts'
import { auth, removeTree, startTestEngine, type TestEngine } from '../helpers/engine.ts'
import { sleep } from '../helpers/wait.ts'

export const uuidOf = (n: number) => `5e110000-0000-4000-8000-${String(n).padStart(12, '0')}`
export const macOf = (n: number) => `52:54:00:0a:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`
// Loopback addresses: a test client can send from a machine's own address (secret-bearing configs go only there).
export const ipOf = (n: number) => `127.9.${n >> 8}.${n & 0xff}`
const numberOf = (ip: string) => {
  const [, , high, low] = ip.split('.').map(Number)
  return high! * 256 + low!
}

export interface Fleet {
  engine: TestEngine
  app: FastifyInstance
  shell: RecordingShell
  drainer: RecordingDrainer
  /** The highest number of holders one lock group showed at any restart. */
  maxHolders: () => number
}

/** A node drainer that records what it was asked; every node is Ready. */
export class RecordingDrainer implements NodeDrainer {
  readonly cordoned = new Set<string>()
  readonly calls: string[] = []
  async cordon(node: string) {
    this.calls.push(`cordon ${node}`)
    this.cordoned.add(node)
  }
  async drain(node: string, _options: DrainOptions) {
    this.calls.push(`drain ${node}`)
    return { evicted: [`default/${node}-pod`], skipped: [] }
  }
  async uncordon(node: string) {
    this.calls.push(`uncordon ${node}`)
    this.cordoned.delete(node)
  }
  async isReady() {
    return true
  }
}

/**
 * A machine shell whose machines "restart" in `rebootMs`: then they report the config they were given
 * (POST /lifecycle/ignition with their own credential), as a real machine's agent does after booting.
 */
export class RecordingShell implements MachineShell {
  readonly written = new Map<string, string>()
  readonly commands: { host: string; command: string; holders: number }[] = []
  failHost: string | undefined
  constructor(
    private readonly report: (host: string, config: string) => Promise<void>,
    private readonly holders: () => Promise<number>,
    private readonly rebootMs: number,
  ) {}
  async writeFile(target: SshTarget, file: string, content: string) {
    this.written.set(`${target.host}:${file}`, content)
  }
  async run(target: SshTarget, command: string): Promise<CommandResult & { hostKey: string }> {
    this.commands.push({ host: target.host, command, holders: await this.holders() })
    if (target.host === this.failHost) return { exitCode: 1, stdout: '', stderr: 'apply-config: disk full', hostKey: 'ssh-ed25519 AAAAfake' }
    const config = this.written.get(`${target.host}:/var/lib/slipway/next.ign`)!
    setTimeout(() => void this.report(target.host, config), this.rebootMs)
    return { exitCode: null, signal: 'SIGHUP', stdout: '', stderr: '', hostKey: 'ssh-ed25519 AAAAfake' }
  }
}

export const admin = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

/**
 * A running engine with `count` installed members (`controlPlane` members + nodes) in each of the
 * named clusters (default: one, "roll"), all outdated. Machines are numbered from 1 across clusters.
 */
export async function fleet(t: { teardown(fn: () => unknown): void }, count: number, rebootMs = 150, controlPlane: 1 | 3 | 5 = 3, clusters = ['roll']): Promise<Fleet> {
  let app!: FastifyInstance
  let credentials!: ReturnType<typeof machineCredentials>
  let maxHolders = 0
  const total = count * clusters.length
  /** The holders of the busiest lock group. */
  const holders = async () => {
    const groups = (await admin(app, 'GET', '/api/v1/locks')).json() as { name: string; holders: unknown[] }[]
    const held = Math.max(0, ...groups.filter((group) => clusters.includes(group.name)).map((group) => group.holders.length))
    maxHolders = Math.max(maxHolders, held)
    return held
  }
  const uuidOfHost = (host: string) => uuidOf(numberOf(host))
  const report = async (host: string, config: string) => {
    const uuid = uuidOfHost(host)
    // Generation 1: the install grant started it.
    await app.inject({ method: 'POST', url: '/lifecycle/ignition', headers: { authorization: `Bearer ${credentials.issue(uuid, 1)}`, 'content-type': 'application/json' }, payload: config })
  }
  const shell = new RecordingShell(report, holders, rebootMs)
  const drainer = new RecordingDrainer()
  // The scheduler names control-plane members <cluster>-cp-<n>: etcd's member names.
  const etcd = new FixedEtcdGateway(Object.fromEntries(clusters.map((name) => [name, Array.from({ length: controlPlane }, (_, index) => `${name}-cp-${index + 1}`)])))
  const engine = await startTestEngine({ env: { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' }, adapters: { shell, drainerFrom: () => drainer, etcd } })
  t.teardown(async () => {
    await engine.engine.close()
    removeTree(path.dirname(engine.dataDir))
  })
  app = engine.engine.app
  credentials = machineCredentials(engine.config.secrets.keyFile)
  await engine.engine.start()
  await admin(app, 'POST', '/api/v1/flavors', { name: 'roll', control_plane_count: controlPlane, nodes_min: 0, nodes_max: count - controlPlane })
  for (const name of clusters) await admin(app, 'POST', '/api/v1/clusters', { name, flavor: 'roll' })
  for (let n = 1; n <= total; n++) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n) }] } })
  }
  await admin(app, 'POST', '/api/v1/scheduler/run')
  for (let n = 1; n <= total; n++) {
    const machine = { uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) }
    const config = (await takeSlotAndFetchConfig(app, machine)).body
    await reportInstalled(app, machine)
    await report(ipOf(n), config)
  }
  // A change to both role templates: every machine is outdated.
  for (const template of ['kubernetes-control-plane.json', 'kubernetes-node.json']) {
    const body = (await admin(app, 'GET', `/api/v1/templates/ignition/${template}`)).json().body as string
    await admin(app, 'PUT', `/api/v1/templates/ignition/${template}`, { body: body.replace('"/etc/slipway/role"', '"/etc/slipway/role.v2"') })
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const fleetDrift = (await admin(app, 'GET', '/lifecycle/ignition')).json() as { state: string }[]
    if (fleetDrift.length === total && fleetDrift.every((record) => record.state === 'outdated')) break
    await sleep(50)
  }
  return { engine, app, shell, drainer, maxHolders: () => maxHolders }
}

