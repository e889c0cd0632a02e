/**
 * A provisioned cluster's etcd run for real: three (or `count`) etcd 3.4 processes on loopback
 * addresses, each started from exactly the member environment the engine rendered for it
 * (/etc/slipway/etcd-member.env) with the certificates the engine issued, its files under its own
 * root folder as they would be at / on the machine. The engine creates the flavor and cluster,
 * schedules the machines and serves their configs; etcdctl runs on a member's files.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import { auth, removeTree } from './engine.ts'
import { takeSlotAndFetchConfig, type MachineIdentity } from './machine-requests.ts'
import { until } from './wait.ts'

const run = promisify(execFile)

export interface EtcdMembers {
  cluster: string
  machines: MachineIdentity[]
  /** Each member's environment as the engine rendered it, its paths moved under the member's root. */
  variables: Record<string, string>[]
  /** The path of one of member `n`'s files under /etc/kubernetes/pki (0-based `n`). */
  pki(n: number, file: string): string
  /** etcdctl on member n's CA with the client certificate `cert` (the health checker's by default), at `at` (every member by default). */
  etcdctl(n: number, args: string[], cert?: string, at?: string): Promise<{ stdout: string; stderr: string }>
  /** Every member's client URL, comma-separated (etcdctl's --endpoints). */
  endpoints: string
  /** Starts member n's etcd (again, on its data). */
  start(n: number): void
  /** Stops member n's etcd with SIGTERM, as its OS would, and waits until it exited. */
  stop(n: number): Promise<void>
  /** Waits until every running member answers a health check over TLS. */
  healthy(timeoutMs?: number): Promise<void>
  /**
   * A machine that joins the cluster later (a replacement the scheduler placed): takes its install
   * slot, writes the files of the config it is served and starts its etcd; returns its index. Throws
   * with the engine's answer when the config is not served (yet).
   */
  join(machine: MachineIdentity): Promise<number>
  /** Kills every etcd and removes the members' files. */
  close(): Promise<void>
}

/**
 * Creates cluster `cluster` (flavor of `machines.length` control-plane members, no nodes) through the
 * engine, places the machines, writes each member's files and starts its etcd; resolves once all
 * answer health checks.
 */
export async function startEtcdMembers(app: FastifyInstance, cluster: string, machines: MachineIdentity[]): Promise<EtcdMembers> {
  // Grows with the machines that join later; the caller's list stays as it was.
  machines = [...machines]
  const admin = (method: 'GET' | 'POST', url: string, payload?: unknown) => app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })
  const created = [await admin('POST', '/api/v1/flavors', { name: cluster, control_plane_count: machines.length, nodes_min: 0, nodes_max: 0 }), await admin('POST', '/api/v1/clusters', { name: cluster, flavor: cluster })]
  for (const answer of created) if (answer.statusCode !== 201) throw new Error(`creating cluster ${cluster}: ${answer.statusCode} ${answer.body}`)
  for (const machine of machines) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: machine.uuid, mac: machine.mac }, interfaces: [{ name: 'eth0', mac: machine.mac, ipv4: machine.ip }] } })
  }
  const assigned = (await admin('POST', '/api/v1/scheduler/run')).json() as { assignments: unknown[] }
  if (assigned.assignments.length !== machines.length) throw new Error(`the scheduler placed ${assigned.assignments.length} of ${machines.length} machines`)

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-etcd-'))
  const roots = machines.map((_, index) => path.join(scratch, `m${index + 1}`))
  const variables: Record<string, string>[] = []
  /** Writes member `index`'s files from the config the engine serves it, and keeps its environment. */
  const writeMember = async (index: number, machine: MachineIdentity) => {
    const answer = await takeSlotAndFetchConfig(app, machine)
    if (answer.statusCode !== 200) throw new Error(`the config of ${machine.uuid}: ${answer.statusCode} ${answer.body}`)
    const config = answer.json() as { storage: { files: { path: string; contents: { source: string } }[] } }
    for (const file of config.storage.files.filter((candidate) => candidate.contents.source.startsWith('data:'))) {
      mkdirSync(path.dirname(path.join(roots[index]!, file.path)), { recursive: true })
      writeFileSync(path.join(roots[index]!, file.path), decodeURIComponent(file.contents.source.replace(/^data:,/, '')), { mode: 0o600 })
    }
    const env = readFileSync(path.join(roots[index]!, 'etc/slipway/etcd-member.env'), 'utf8')
      .replaceAll('/etc/kubernetes/pki', path.join(roots[index]!, 'etc/kubernetes/pki'))
      .replace(/^ETCD_DATA_DIR=.*$/m, `ETCD_DATA_DIR=${path.join(roots[index]!, 'var/lib/etcd')}`)
    variables[index] = Object.fromEntries(env.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
  }
  for (const [index, machine] of machines.entries()) await writeMember(index, machine)

  const processes: (ChildProcess | undefined)[] = machines.map(() => undefined)
  /** Each etcd's output, kept in memory: what explains a member that exits. */
  const logs: Buffer[][] = machines.map(() => [])
  const start = (n: number) => {
    const child = spawn('etcd', [], { env: { PATH: process.env.PATH!, ...variables[n] }, stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr!.on('data', (chunk: Buffer) => logs[n]!.push(chunk))
    processes[n] = child
  }
  const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null
  const stop = async (n: number) => {
    const child = processes[n]
    if (!child || exited(child)) return
    await new Promise((resolve) => child.once('close', resolve).kill('SIGTERM'))
  }
  const pki = (n: number, file: string) => path.join(roots[n]!, 'etc/kubernetes/pki', file)
  let endpoints = machines.map((machine) => `https://${machine.ip}:2379`).join(',')
  const etcdctl = (n: number, args: string[], cert = 'etcd/healthcheck-client', at = endpoints) =>
    run('etcdctl', ['--endpoints', at, '--cacert', pki(n, 'etcd/ca.crt'), '--cert', pki(n, `${cert}.crt`), '--key', pki(n, `${cert}.key`), '--dial-timeout', '3s', '--command-timeout', '5s', ...args])
  const healthy = async (timeoutMs = 30_000) => {
    const running = machines.filter((_, index) => processes[index] && !exited(processes[index]!)).map((machine) => `https://${machine.ip}:2379`)
    await until(
      `${running.length} healthy etcd members`,
      async () => {
        const result = await etcdctl(0, ['endpoint', 'health', '-w', 'json'], undefined, running.join(',')).catch(() => undefined)
        const entries = result && (JSON.parse(result.stdout) as { health: boolean }[])
        return entries !== undefined && entries.length === running.length && entries.every((entry) => entry.health)
      },
      timeoutMs,
      250,
      {
        abort: () => {
          const dead = processes.findIndex((child) => child && child.exitCode !== null && child.exitCode !== 0)
          return dead >= 0 ? `etcd ${dead + 1} exited: ${Buffer.concat(logs[dead]!).toString().slice(-2000)}` : undefined
        },
      },
    )
  }
  const close = async () => {
    // Each etcd is gone (its last output read) before its folder is removed.
    await Promise.all(processes.map((child) => (child && !exited(child) ? new Promise((resolve) => child.once('close', resolve).kill('SIGKILL')) : undefined)))
    removeTree(scratch)
  }
  const join = async (machine: MachineIdentity) => {
    const index = machines.length
    roots.push(path.join(scratch, `m${index + 1}`))
    await writeMember(index, machine)
    machines.push(machine)
    processes.push(undefined)
    logs.push([])
    endpoints = machines.map((candidate) => `https://${candidate.ip}:2379`).join(',')
    start(index)
    return index
  }
  for (const index of machines.keys()) start(index)
  try {
    await healthy()
  } catch (error) {
    await close()
    throw error
  }
  return {
    cluster,
    machines,
    variables,
    pki,
    etcdctl: (n, args, cert, at) => etcdctl(n, args, cert, at ?? endpoints),
    get endpoints() {
      return endpoints
    },
    start,
    stop,
    healthy,
    join,
    close,
  }
}
