/**
 * The etcd member configuration the engine renders for a 3-member control plane
 * (/etc/slipway/etcd-member.env, from the scheduler's initial cluster) run by three real etcd 3.4
 * processes on loopback addresses, with the certificates the engine issued: the cluster forms with
 * mutual TLS, its members are exactly the scheduler's initial cluster, a write through one member is
 * read through another, a client certificate from another CA is refused, and the quorum survives one
 * member going away.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../helpers/engine.ts'
import { takeSlotAndFetchConfig } from '../helpers/machine-requests.ts'
import { until } from '../helpers/wait.ts'

const run = promisify(execFile)
const admin = (app: FastifyInstance, method: 'GET' | 'POST', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })
const machines = [1, 2, 3].map((n) => ({ uuid: `e7cd0000-0000-4000-8000-00000000000${n}`, mac: `52:54:00:00:e7:0${n}`, ip: `127.0.0.${10 + n}` }))

t.test('three real etcd members from the rendered configuration form the scheduler’s initial cluster, over the engine’s certificates', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-etcd-'))
  const processes: ChildProcess[] = []
  t.teardown(async () => {
    // Each etcd is gone (its last output read) before its folder is removed.
    await Promise.all(processes.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((resolve) => child.once('close', resolve).kill('SIGKILL')) : undefined)))
    await engine.close()
    removeTree(path.dirname(dataDir))
    removeTree(scratch)
  })
  const app = engine.app
  await admin(app, 'POST', '/api/v1/flavors', { name: 'quorum', control_plane_count: 3, nodes_min: 0, nodes_max: 0 })
  await admin(app, 'POST', '/api/v1/clusters', { name: 'q', flavor: 'quorum' })
  for (const machine of machines) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: machine.uuid, mac: machine.mac }, interfaces: [{ name: 'eth0', mac: machine.mac, ipv4: machine.ip }] } })
  }
  t.equal((await admin(app, 'POST', '/api/v1/scheduler/run')).json().assignments.length, 3)

  const roots: string[] = []
  /** Each etcd's output, kept in memory: what explains a member that exits. */
  const logs: Buffer[][] = []
  let initialCluster = ''
  for (const [index, machine] of machines.entries()) {
    const config = (await takeSlotAndFetchConfig(app, machine)).json() as { storage: { files: { path: string; contents: { source: string } }[] } }
    const root = path.join(scratch, `m${index + 1}`)
    roots.push(root)
    for (const file of config.storage.files.filter((candidate) => candidate.contents.source.startsWith('data:'))) {
      mkdirSync(path.dirname(path.join(root, file.path)), { recursive: true })
      writeFileSync(path.join(root, file.path), decodeURIComponent(file.contents.source.replace(/^data:,/, '')), { mode: 0o600 })
    }
    // The member's files live under its root here, as they would at / on the machine.
    const env = readFileSync(path.join(root, 'etc/slipway/etcd-member.env'), 'utf8').replaceAll('/etc/kubernetes/pki', path.join(root, 'etc/kubernetes/pki')).replace(/^ETCD_DATA_DIR=.*$/m, `ETCD_DATA_DIR=${path.join(root, 'var/lib/etcd')}`)
    const variables = Object.fromEntries(env.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
    t.equal(variables.ETCD_NAME, `q-cp-${index + 1}`)
    initialCluster = variables.ETCD_INITIAL_CLUSTER!
    const child = spawn('etcd', [], { env: { PATH: process.env.PATH!, ...variables }, stdio: ['ignore', 'ignore', 'pipe'] })
    const output: Buffer[] = []
    child.stderr!.on('data', (chunk: Buffer) => output.push(chunk))
    logs.push(output)
    processes.push(child)
  }
  t.equal(initialCluster, machines.map((machine, index) => `q-cp-${index + 1}=https://${machine.ip}:2380`).join(','), "every member starts from the scheduler's initial cluster")

  const pki = (n: number, file: string) => path.join(roots[n]!, 'etc/kubernetes/pki', file)
  const endpoints = machines.map((machine) => `https://${machine.ip}:2379`).join(',')
  /** etcdctl on member n's files: its CA, and the client certificate `cert` (the health checker's by default). */
  const etcdctl = (n: number, args: string[], cert = 'etcd/healthcheck-client', at = endpoints) =>
    run('etcdctl', ['--endpoints', at, '--cacert', pki(n, 'etcd/ca.crt'), '--cert', pki(n, `${cert}.crt`), '--key', pki(n, `${cert}.key`), '--dial-timeout', '3s', '--command-timeout', '5s', ...args])
  const healthy = await until(
    'three healthy etcd members',
    async () => {
      const result = await etcdctl(0, ['endpoint', 'health', '-w', 'json']).catch(() => undefined)
      const entries = result && (JSON.parse(result.stdout) as { endpoint: string; health: boolean }[])
      return entries && entries.length === 3 && entries.every((entry) => entry.health) ? entries : undefined
    },
    30_000,
    250,
    { abort: () => processes.find((child) => child.exitCode !== null) && `an etcd exited: ${Buffer.concat(logs[processes.findIndex((child) => child.exitCode !== null)]!).toString().slice(-2000)}` },
  )
  t.equal(healthy.length, 3, 'all three members answer health checks over TLS')
  const members = JSON.parse((await etcdctl(1, ['member', 'list', '-w', 'json'])).stdout) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] }
  t.same(members.members.map((member) => `${member.name}=${member.peerURLs[0]}`).sort(), initialCluster.split(',').sort(), "the members are the scheduler's initial cluster")

  await etcdctl(0, ['put', '/slipway/check', 'formed'], 'apiserver-etcd-client', `https://${machines[0]!.ip}:2379`)
  const read = await etcdctl(2, ['get', '/slipway/check', '--print-value-only'], 'apiserver-etcd-client', `https://${machines[2]!.ip}:2379`)
  t.equal(read.stdout.trim(), 'formed', 'a write through the first member is read through the third (the API server’s client certificate)')

  const foreign = await etcdctl(0, ['endpoint', 'health'], 'apiserver-kubelet-client').then(
    () => 'accepted',
    (error: { stderr?: string }) => error.stderr ?? 'refused',
  )
  t.not(foreign, 'accepted', 'a client certificate from the Kubernetes CA is refused: etcd trusts only the etcd CA')

  processes[2]!.kill('SIGTERM')
  await new Promise((resolve) => processes[2]!.once('exit', resolve))
  const survivors = machines.slice(0, 2).map((machine) => `https://${machine.ip}:2379`).join(',')
  await until('a write with two of three members', async () => etcdctl(0, ['put', '/slipway/check', 'quorum'], 'apiserver-etcd-client', survivors).then(() => true, () => false), 15_000, 250)
  t.equal((await etcdctl(1, ['get', '/slipway/check', '--print-value-only'], 'apiserver-etcd-client', survivors)).stdout.trim(), 'quorum', 'the quorum survives one member going away')
})
