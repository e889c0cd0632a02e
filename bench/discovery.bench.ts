/**
 * Slipway discovery and scheduling benchmark: a real engine process takes the first discovery report
 * of 10,000 simulated machines on `POST /discovery` (then the same machines again, as after a reboot),
 * side by side with nginx taking the same requests and storing nothing (the transport ceiling); then
 * flavors and clusters are created through the admin API and one scheduling pass places every
 * machine. Memory and database size are read along the way. See bench/README.md.
 *
 *   npx tsx bench/discovery.bench.ts          (or: npm run bench:discovery)
 *   BENCH_MACHINES=2000 npx tsx bench/discovery.bench.ts   (quick run)
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ProfileWindow } from './lib/cpuprofile.ts'
import { waitForQuiet, withCpuUsage, withCpuUsageInProcess, treeCpuSeconds, type CpuUsage } from './lib/cpu-usage.ts'
import { discoveryFleet, FLEET_MINIMUMS, rebootedDocument, type SimulatedMachine } from './lib/discovery-fixtures.ts'
import { prng } from './lib/fixtures.ts'
import { requestJson, runPostLoad, type PostLoadResult } from './lib/http-load.ts'
import { NGINX, NGINX_ECHO_MODULE, nginxIngestConfig, nginxVersion, startNginxWithConfig } from './lib/nginx.ts'
import { processMemory, type ProcessMemory } from './lib/proc-memory.ts'
import { fmt, log, mb, nowUs, profileFooter, windowedProfileLines } from './lib/report.ts'
import { BenchScope, SetupError, engineRevision, envNumber, keepEngineProfile, machineFacts, runBenchmark, writeResults } from './lib/bench-scope.ts'
import { freePort, spawnTracked, stopProcess, waitForHttp } from './lib/processes.ts'
import { WRK, runWrk, writeWrkPostScript, wrkVersion } from './lib/wrk.ts'
import { sleep } from '../test/helpers/wait.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = path.join(REPO, 'bench', 'results')
/** The engine's limit for a discovery body (src/transports/http/routes/machine/discovery.ts); nginx gets the same. */
const DISCOVERY_BODY_LIMIT = 64 * 1024
/** Outside CPU use during a run above which its row is flagged as noisy. */
const NOISY_CORES = 0.2
/** Load generator CPU above which it, not the server, is likely the limit. */
const SATURATED_CORES = 0.9
const GiB = 1024 ** 3

const scope = new BenchScope()

// --- flavors and clusters ---------------------------------------------------------------------------

interface FlavorSpec {
  name: string
  control_plane_count: 1 | 3 | 5
  nodes_min: number
  nodes_max: number
  min_cpu_cores?: number
  min_memory_bytes?: number
  min_disk_bytes?: number
  kubernetes_version?: string
}
interface ClusterSpec {
  name: string
  flavor: FlavorSpec
  labels: Record<string, string>
  latitude: number
  longitude: number
}

const FLAVORS = {
  large: {
    name: 'bench-large',
    control_plane_count: 5,
    nodes_min: 50,
    nodes_max: 195,
    min_cpu_cores: FLEET_MINIMUMS.cores,
    min_memory_bytes: FLEET_MINIMUMS.memoryBytes,
    min_disk_bytes: FLEET_MINIMUMS.largestDiskBytes,
    kubernetes_version: 'v1.32.4',
  },
  medium: { name: 'bench-medium', control_plane_count: 3, nodes_min: 10, nodes_max: 97, min_cpu_cores: FLEET_MINIMUMS.cores, min_memory_bytes: 16 * GiB },
  small: { name: 'bench-small', control_plane_count: 1, nodes_min: 1, nodes_max: 19 },
} satisfies Record<string, FlavorSpec>
/** 1,000 machines: 2 large (200 each), 5 medium (100), 5 small (20), interleaved. */
const PATTERN: FlavorSpec[] = [FLAVORS.large, FLAVORS.medium, FLAVORS.small, FLAVORS.medium, FLAVORS.small, FLAVORS.medium, FLAVORS.small, FLAVORS.large, FLAVORS.medium, FLAVORS.small, FLAVORS.medium, FLAVORS.small]
const size = (flavor: FlavorSpec) => flavor.control_plane_count + flavor.nodes_max

/**
 * Clusters whose capacities add up to exactly `machines`: the pattern above repeated, then medium
 * and small clusters, then one `bench-rest` cluster (1 control plane + the remaining nodes).
 */
function clusterPlan(machines: number): { flavors: FlavorSpec[]; clusters: ClusterSpec[] } {
  const sequence: FlavorSpec[] = []
  let left = machines
  while (left >= 1000) {
    sequence.push(...PATTERN)
    left -= 1000
  }
  for (const flavor of [FLAVORS.medium, FLAVORS.small]) {
    while (left >= size(flavor)) {
      sequence.push(flavor)
      left -= size(flavor)
    }
  }
  if (left > 0) sequence.push({ name: 'bench-rest', control_plane_count: 1, nodes_min: 0, nodes_max: left - 1 })
  const random = prng(7)
  const clusters = sequence.map((flavor, index) => ({
    name: `c${String(index + 1).padStart(4, '0')}-${flavor.name.replace('bench-', '')}`,
    flavor,
    labels: { env: index % 4 === 0 ? 'staging' : 'production', site: `dc${1 + (index % 3)}` },
    latitude: Math.round((random() * 120 - 60) * 1e4) / 1e4,
    longitude: Math.round((random() * 360 - 180) * 1e4) / 1e4,
  }))
  const flavors = [...new Map(sequence.map((flavor) => [flavor.name, flavor])).values()]
  return { flavors, clusters }
}

// --- engine probes ----------------------------------------------------------------------------------

/**
 * Sends `GET /boot.ipxe` (no database: the in-memory catalog) every `intervalMs` until stopped, one at
 * a time, and keeps each latency: how long a booting machine waits while something else runs.
 */
function startResponsivenessProbe(baseUrl: string, intervalMs = 100): { stop: () => Promise<{ count: number; maxMs: number; p50Ms: number; failures: number }> } {
  const latencies: number[] = []
  let failures = 0
  let running = true
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const once = () =>
    new Promise<void>((resolve) => {
      const started = process.hrtime.bigint()
      const request = http.get(`${baseUrl}/boot.ipxe`, { agent }, (response) => {
        response.resume()
        response.on('end', () => {
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6)
          if (response.statusCode !== 200) failures++
          resolve()
        })
      })
      request.on('error', () => {
        failures++
        resolve()
      })
    })
  const loop = (async () => {
    while (running) {
      await once()
      await sleep(intervalMs)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      agent.destroy()
      const sorted = [...latencies].sort((a, b) => a - b)
      return { count: sorted.length, maxMs: sorted.at(-1) ?? 0, p50Ms: sorted[Math.floor((sorted.length - 1) / 2)] ?? 0, failures }
    },
  }
}

async function databaseSize(dataDir: string): Promise<{ dbBytes: number; walBytes: number; shmBytes: number; totalBytes: number }> {
  const sizeOf = async (name: string) => (await fs.stat(path.join(dataDir, name)).catch(() => undefined))?.size ?? 0
  const [dbBytes, walBytes, shmBytes] = await Promise.all([sizeOf('slipway.db'), sizeOf('slipway.db-wal'), sizeOf('slipway.db-shm')])
  return { dbBytes, walBytes, shmBytes, totalBytes: dbBytes + walBytes + shmBytes }
}

// --- the benchmark ----------------------------------------------------------------------------------

type RoundId = 'first' | 'again'
type TargetId = 'engine' | 'nginx' | 'nginx-wrk'
interface DiscoveryRun {
  round: RoundId
  target: TargetId
  label: string
  /** Not part of the ratio: shown to tell how far the load generator limits the nginx row. */
  informational: boolean
  load: Pick<PostLoadResult, 'requests' | 'durationSeconds' | 'requestsPerSecond' | 'latencyMs' | 'failures'> & Partial<PostLoadResult>
  cpu: CpuUsage
}

async function main(): Promise<void> {
  const machineCount = envNumber('BENCH_MACHINES', 10_000, { min: 1, integer: true })
  const connections = envNumber('BENCH_CONNECTIONS', 50, { min: 1, integer: true })
  const quietCores = envNumber('BENCH_QUIET_CORES', 0.25, { min: 0 })
  const quietWait = envNumber('BENCH_QUIET_WAIT', 30, { min: 0 })
  const cpuProf = process.env.BENCH_CPU_PROF === '1'
  const rediscover = process.env.BENCH_REDISCOVER !== '0'
  const wrkSeconds = envNumber('BENCH_WRK_SECONDS', 5, { min: 0 })
  const withWrk = wrkSeconds > 0 && (await fs.access(WRK, constants.X_OK).then(() => true, () => false))
  if (wrkSeconds > 0 && !withWrk) log(`note: no wrk at ${WRK}: the informational "nginx driven by wrk" rows are left out`)
  const loadBefore = os.loadavg()

  try {
    await fs.access(NGINX, constants.X_OK)
  } catch {
    throw new SetupError(`nginx not found at ${NGINX} (install nginx-light, or set BENCH_NGINX)`)
  }
  let nginxBody: 'read' | 'discard'
  const wanted = process.env.BENCH_NGINX_BODY
  if (wanted === 'read' || wanted === 'discard') nginxBody = wanted
  else if (wanted) throw new SetupError(`BENCH_NGINX_BODY=${wanted}: use read or discard`)
  else nginxBody = await fs.access(NGINX_ECHO_MODULE).then(() => 'read' as const, () => 'discard' as const)
  if (nginxBody === 'read') {
    try {
      await fs.access(NGINX_ECHO_MODULE)
    } catch {
      throw new SetupError(`BENCH_NGINX_BODY=read needs nginx's echo module at ${NGINX_ECHO_MODULE} (Debian libnginx-mod-http-echo)`)
    }
  } else {
    log(`note: nginx's echo module (${NGINX_ECHO_MODULE}) is not used: nginx discards the bodies instead of buffering them (see bench/README.md)`)
  }

  const revision = await engineRevision(REPO, ['src', 'migrations', 'package.json', 'package-lock.json'])
  const tmp = await scope.makeTemp('slipway-bench-discovery-')
  log(`temp folder ${tmp}`)

  // --- fleet --------------------------------------------------------------------------------------
  const fleet = discoveryFleet(machineCount)
  const byUuid = new Map(fleet.map((machine) => [machine.uuid, machine]))
  const firstBodies = fleet.map((machine) => Buffer.from(JSON.stringify(machine.document)))
  const rebootRandom = prng(99)
  const againBodies = fleet.map((machine) => Buffer.from(JSON.stringify(rebootedDocument(machine, rebootRandom))))
  const bodyBytes = firstBodies.map((body) => body.length)
  const fixtures = {
    machines: machineCount,
    averageBodyBytes: Math.round(bodyBytes.reduce((a, b) => a + b, 0) / machineCount),
    largestBodyBytes: Math.max(...bodyBytes),
    bootNicNotFirst: fleet.filter((machine) => machine.bootNicNotFirst).length,
    disks: [1, 2, 3, 4].map((count) => fleet.filter((machine) => machine.diskCount === count).length),
    withLldp: fleet.filter((machine) => machine.document.lldp !== undefined).length,
  }
  if (fixtures.largestBodyBytes > DISCOVERY_BODY_LIMIT) throw new SetupError(`a generated report is ${fixtures.largestBodyBytes} bytes, above the 64 KiB limit`)
  log(
    `fleet: ${fmt(machineCount)} machines, reports of ${fmt(fixtures.averageBodyBytes)} B on average, boot NIC not first on ${fmt(fixtures.bootNicNotFirst)}, ` +
      `1/2/3/4 disks: ${fixtures.disks.map((n) => fmt(n)).join('/')}`,
  )

  // --- engine -------------------------------------------------------------------------------------
  const enginePort = await freePort()
  const engineBase = `http://127.0.0.1:${enginePort}`
  const configFile = path.join(tmp, 'slipway.yaml')
  // An explicit, empty config file: a slipway.yaml in the repo must not change what is measured.
  await fs.writeFile(configFile, '{}\n')
  const dataDir = path.join(tmp, 'var')
  const assetsDir = path.join(tmp, 'assets')
  await fs.mkdir(assetsDir)
  const token = randomBytes(24).toString('base64url') // 32 characters
  const profDir = path.join(tmp, 'cpu-prof')
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SLIPWAY_')))
  Object.assign(env, {
    NODE_ENV: 'production',
    SLIPWAY_CONFIG: configFile,
    SLIPWAY_HTTP_HOST: '127.0.0.1',
    SLIPWAY_HTTP_PORT: String(enginePort),
    SLIPWAY_PROXY_ENABLED: 'false',
    SLIPWAY_DNS_ENABLED: 'false',
    SLIPWAY_DATA_DIR: dataDir,
    // The repo's sample content (read only): it holds the role profiles the scheduler assigns.
    SLIPWAY_CONTENT_PROFILES_DIR: path.join(REPO, 'profiles'),
    SLIPWAY_CONTENT_IGNITION_DIR: path.join(REPO, 'ignition'),
    SLIPWAY_CONTENT_IPXE_DIR: path.join(REPO, 'ipxe'),
    SLIPWAY_CONTENT_GENERIC_DIR: path.join(REPO, 'generic'),
    SLIPWAY_CONTENT_ASSETS_DIR: assetsDir,
    SLIPWAY_LOG_LEVEL: 'warn',
    SLIPWAY_AUTH_ADMIN_TOKEN: token,
    // The load comes from one address, as from machines behind one NAT: more reports a minute than one machine sends.
    SLIPWAY_MACHINES_DISCOVERY_REPORTS_PER_MINUTE: '1000000',
    // No timed passes: the measured pass must be the only one (discoveries still trigger a debounced
    // pass, which has nothing to do before the clusters exist).
    SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
  })
  const nodeArgs = [...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), '--import', 'tsx', 'src/main.ts']
  log(`starting the engine on ${engineBase}`)
  const spawnedUs = nowUs()
  const started = Date.now()
  const engine = spawnTracked('engine', process.execPath, nodeArgs, { cwd: REPO, env })
  await waitForHttp(`${engineBase}/healthz`, engine, 120_000)
  log(`engine ready in ${fmt((Date.now() - started) / 1000, 1)} s`)
  const enginePid = engine.child.pid!
  const memory: { when: string; memory: ProcessMemory | undefined }[] = []
  const sampleMemory = (when: string) => memory.push({ when, memory: processMemory(enginePid) })
  sampleMemory('after start')

  const api = async (method: string, route: string, body?: unknown, expect = 200) => {
    const answer = await requestJson(engineBase, method, route, { token, ...(body !== undefined ? { body } : {}) })
    if (answer.status !== expect) throw new SetupError(`${method} ${route} answered ${answer.status} (expected ${expect}): ${answer.text.slice(0, 600)}`)
    return answer
  }
  for (const profile of ['etcd-member-kubernetes-control-plane', 'kubernetes-node']) await api('GET', `/api/v1/profiles/${profile}`)

  // --- nginx --------------------------------------------------------------------------------------
  const nginxPort = await freePort()
  const nginxAnswer = JSON.stringify({ 'new-discovery': true, uuid: '00000000-0000-4000-8000-000000000000', state: 'discovered' })
  const nginxDir = path.join(tmp, 'nginx')
  const nginx = await startNginxWithConfig(
    'nginx',
    nginxDir,
    nginxIngestConfig({ dir: nginxDir, port: nginxPort, workers: 1, path: '/discovery', answer: nginxAnswer, body: nginxBody, bodyLimit: DISCOVERY_BODY_LIMIT }),
    `http://127.0.0.1:${nginxPort}/healthz`,
  )
  const nginxBase = `http://127.0.0.1:${nginxPort}`
  const nginxLabel = `nginx (1 worker, body ${nginxBody === 'read' ? 'read' : 'discarded'})`

  // --- discoveries --------------------------------------------------------------------------------
  const engineCheck = (round: RoundId) => (index: number, status: number, text: string) => {
    if (status !== 200) return `HTTP ${status}: ${text.slice(0, 300)}`
    let answer: { 'new-discovery'?: unknown; uuid?: unknown; state?: unknown }
    try {
      answer = JSON.parse(text) as typeof answer
    } catch {
      return `not JSON: ${text.slice(0, 200)}`
    }
    const machine = fleet[index]!
    if (answer['new-discovery'] !== (round === 'first')) return `new-discovery is ${String(answer['new-discovery'])} on the ${round === 'first' ? 'first' : 'second'} report of ${machine.uuid}`
    if (answer.uuid !== machine.uuid) return `answered uuid ${String(answer.uuid)} for ${machine.uuid}`
    if (answer.state !== 'discovered') return `state ${String(answer.state)} for ${machine.uuid}`
    return undefined
  }
  const nginxCheck = (_index: number, status: number, text: string) => {
    if (status !== 200) return `HTTP ${status}: ${text.slice(0, 300)}`
    try {
      const answer = JSON.parse(text) as { 'new-discovery'?: unknown }
      return typeof answer['new-discovery'] === 'boolean' ? undefined : `unexpected answer ${text.slice(0, 200)}`
    } catch {
      return `not JSON: ${text.slice(0, 200)}`
    }
  }

  const rounds: { id: RoundId; label: string; bodies: Buffer[] }[] = [{ id: 'first', label: 'first report', bodies: firstBodies }]
  if (rediscover) rounds.push({ id: 'again', label: 'again (reboot)', bodies: againBodies })
  const runs: DiscoveryRun[] = []
  const windows: Record<string, ProfileWindow> = {}
  log(`load: node:http, ${connections} keep-alive connections, one request in flight each, ${fmt(machineCount)} POST /discovery per run`)
  for (const round of rounds) {
    const targets = [
      { id: 'engine' as const, label: 'engine (1 node process)', base: engineBase, pid: enginePid, check: engineCheck(round.id) },
      { id: 'nginx' as const, label: nginxLabel, base: nginxBase, pid: nginx.child.pid!, check: nginxCheck },
    ]
    for (const target of targets) {
      if (quietWait > 0) {
        const idle = await waitForQuiet(quietCores, quietWait, (cores) => log(`  other processes use ${fmt(cores * 100)}% of a core; waiting up to ${quietWait} s for a quieter machine`))
        if (idle !== undefined && idle > quietCores) log(`  still ${fmt(idle * 100)}% of a core busy elsewhere; measuring anyway`)
      }
      const fromUs = nowUs()
      const { result: load, ...cpu } = await withCpuUsageInProcess(target.pid, () =>
        runPostLoad({ baseUrl: target.base, path: '/discovery', bodies: round.bodies, connections, check: target.check }),
      )
      if (target.id === 'engine') windows[`discovery, ${round.label}`] = { fromUs, toUs: nowUs() }
      log(
        `  ${round.label.padEnd(15)} ${target.label.padEnd(32)} ${fmt(load.requestsPerSecond).padStart(7)} /s  p50 ${fmt(load.latencyMs.p50, 2)} ms  p99 ${fmt(load.latencyMs.p99, 2)} ms` +
          (cpu.otherCores !== undefined ? `  (other processes: ${fmt(cpu.otherCores * 100)}% of a core)` : ''),
      )
      if (load.failures > 0) {
        throw new SetupError(`${target.label}, ${round.label}: ${load.failures} of ${load.requests} answers were wrong:\n  ${load.failureExamples.join('\n  ')}`)
      }
      runs.push({ round: round.id, target: target.id, label: target.label, informational: false, load, cpu })
    }
    if (withWrk) {
      // The same bodies from a C load generator, cycled for a fixed time: nginx's ceiling when the
      // node:http client (which needs far more CPU per request than nginx) is not the limit.
      const script = path.join(tmp, `wrk-${round.id}.lua`)
      await writeWrkPostScript(script, '/discovery', round.bodies)
      const options = { baseUrl: nginxBase, script, threads: 1, connections }
      if (quietWait > 0) await waitForQuiet(quietCores, quietWait, () => undefined)
      await runWrk({ ...options, durationSeconds: 1 })
      const { result: load, ...cpu } = await withCpuUsage(nginx.child.pid!, () => runWrk({ ...options, durationSeconds: wrkSeconds }))
      if (load.errorCount > 0 || load.requests === 0) throw new SetupError(`nginx driven by wrk, ${round.label}: ${load.requests} requests with errors ${JSON.stringify(load.errors)}`)
      const label = nginxLabel.replace('nginx (1 worker', 'nginx (1 worker, wrk')
      log(`  ${round.label.padEnd(15)} ${label.padEnd(32)} ${fmt(load.requestsPerSecond).padStart(7)} /s  (information: wrk, ${wrkSeconds} s)`)
      runs.push({ round: round.id, target: 'nginx-wrk', label, informational: true, load: { ...load, failures: load.errorCount }, cpu })
    }
    if (round.id === 'first') sampleMemory('after first reports')
    else sampleMemory('after second reports')
  }
  const dbAfterDiscovery = await databaseSize(dataDir)

  // Every machine is in the inventory, unplaced, with the boot NIC's address (never interfaces[0]'s).
  const availableStarted = Date.now()
  const available = (await api('GET', '/api/v1/scheduler/available')).json as { uuid: string; mac: string; ip: string | null }[]
  const availableMs = Date.now() - availableStarted
  if (available.length !== machineCount) throw new SetupError(`/api/v1/scheduler/available lists ${available.length} machines, ${machineCount} reported`)
  for (const entry of available) {
    const machine = byUuid.get(entry.uuid)
    if (!machine) throw new SetupError(`/api/v1/scheduler/available lists an unknown machine ${entry.uuid}`)
    if (entry.mac !== machine.bootMac || entry.ip !== machine.bootIp) {
      throw new SetupError(`machine ${entry.uuid}: boot mac/ip ${entry.mac}/${entry.ip}, reported ${machine.bootMac}/${machine.bootIp}`)
    }
  }

  // --- flavors, clusters, scheduling ---------------------------------------------------------------
  const plan = clusterPlan(machineCount)
  const createStarted = Date.now()
  for (const flavor of plan.flavors) await api('POST', '/api/v1/flavors', flavor, 201)
  for (const cluster of plan.clusters) {
    await api('POST', '/api/v1/clusters', { name: cluster.name, flavor: cluster.flavor.name, labels: cluster.labels, latitude: cluster.latitude, longitude: cluster.longitude }, 201)
  }
  const createMs = Date.now() - createStarted
  const flavorCounts = plan.flavors.map((flavor) => `${plan.clusters.filter((c) => c.flavor === flavor).length} x ${flavor.name} (${flavor.control_plane_count}+${flavor.nodes_max})`)
  log(`created ${plan.flavors.length} flavors and ${plan.clusters.length} clusters in ${fmt(createMs / 1000, 1)} s: ${flavorCounts.join(', ')}`)

  interface ScheduleAnswer {
    assignments: { cluster: string; machine_uuid: string; boot_mac: string; ip: string; role: string; hostname: string; group: string; profile: string }[]
    clusters: { name: string; state: string; waiting: string[] }[]
  }
  const schedulingPass = async (name: string) => {
    if (quietWait > 0) await waitForQuiet(quietCores, quietWait, () => undefined)
    log(`${name}: POST /api/v1/scheduler/run ...`)
    const probe = startResponsivenessProbe(engineBase)
    const cpu0 = treeCpuSeconds(enginePid)
    const fromUs = nowUs()
    const answer = await api('POST', '/api/v1/scheduler/run')
    const toUs = nowUs()
    const cpu1 = treeCpuSeconds(enginePid)
    const responsiveness = await probe.stop()
    windows[name] = { fromUs, toUs }
    const wallSeconds = (toUs - fromUs) / 1e6
    const result = answer.json as ScheduleAnswer
    log(`  ${fmt(wallSeconds, 2)} s, ${fmt(result.assignments.length)} assignments; /boot.ipxe waited up to ${fmt(responsiveness.maxMs)} ms meanwhile`)
    return {
      wallSeconds,
      engineCpuSeconds: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined,
      responseBytes: Buffer.byteLength(answer.text),
      result,
      responsiveness,
    }
  }
  const pass1 = await schedulingPass('scheduling pass 1')
  sampleMemory('after scheduling')

  // Checks: every machine placed once, where the plan says, with its boot NIC's address.
  const problems: string[] = []
  const assigned = new Set(pass1.result.assignments.map((assignment) => assignment.machine_uuid))
  if (pass1.result.assignments.length !== machineCount) problems.push(`pass 1 made ${pass1.result.assignments.length} assignments for ${machineCount} machines`)
  if (assigned.size !== pass1.result.assignments.length) problems.push(`pass 1 assigned ${pass1.result.assignments.length - assigned.size} machine(s) twice`)
  for (const cluster of pass1.result.clusters) {
    if (cluster.state !== 'scheduled' || cluster.waiting.length) problems.push(`cluster ${cluster.name} is ${cluster.state}: ${cluster.waiting.join('; ')}`)
  }
  const readStarted = Date.now()
  const entries = (await api('GET', '/api/v1/scheduler')).json as { cluster: string; role: string; profile: string; hostname: string; uuid: string; mac: string; ip: string | null; state: string }[]
  const schedulerReadMs = Date.now() - readStarted
  const seen = new Set<string>()
  const hostnames = new Set<string>()
  const perCluster = new Map<string, { 'control-plane': number; node: number }>()
  let bootNicNotFirstChecked = 0
  for (const entry of entries) {
    const machine: SimulatedMachine | undefined = byUuid.get(entry.uuid)
    if (!machine) {
      problems.push(`GET /api/v1/scheduler lists an unknown machine ${entry.uuid}`)
      continue
    }
    if (seen.has(entry.uuid)) problems.push(`machine ${entry.uuid} is placed twice`)
    seen.add(entry.uuid)
    if (hostnames.has(entry.hostname)) problems.push(`hostname ${entry.hostname} is used twice`)
    hostnames.add(entry.hostname)
    if (!assigned.has(entry.uuid)) problems.push(`machine ${entry.uuid} is placed but was not in pass 1's answer`)
    if (entry.mac !== machine.bootMac) problems.push(`machine ${entry.uuid}: mac ${entry.mac}, boot mac ${machine.bootMac}`)
    if (entry.ip !== machine.bootIp) problems.push(`machine ${entry.uuid}: ip ${entry.ip}, boot NIC's ${machine.bootIp}`)
    else if (machine.bootNicNotFirst) bootNicNotFirstChecked++
    if (entry.state !== 'scheduled') problems.push(`machine ${entry.uuid} is ${entry.state}`)
    const expectedProfile = entry.role === 'control-plane' ? 'etcd-member-kubernetes-control-plane' : 'kubernetes-node'
    if (entry.profile !== expectedProfile) problems.push(`machine ${entry.uuid}: role ${entry.role} with profile ${entry.profile}`)
    const counts = perCluster.get(entry.cluster) ?? { 'control-plane': 0, node: 0 }
    if (entry.role === 'control-plane' || entry.role === 'node') counts[entry.role]++
    perCluster.set(entry.cluster, counts)
  }
  if (entries.length !== machineCount) problems.push(`GET /api/v1/scheduler lists ${entries.length} placements for ${machineCount} machines`)
  for (const cluster of plan.clusters) {
    const counts = perCluster.get(cluster.name) ?? { 'control-plane': 0, node: 0 }
    if (counts['control-plane'] !== cluster.flavor.control_plane_count || counts.node !== cluster.flavor.nodes_max) {
      problems.push(`cluster ${cluster.name}: ${counts['control-plane']}+${counts.node} machines, flavor ${cluster.flavor.control_plane_count}+${cluster.flavor.nodes_max}`)
    }
  }
  const stillAvailable = (await api('GET', '/api/v1/scheduler/available')).json as unknown[]
  if (stillAvailable.length !== 0) problems.push(`${stillAvailable.length} machine(s) still unplaced after the pass`)
  if (problems.length) throw new SetupError(`the scheduling pass is wrong (${problems.length} problem(s)):\n  ${problems.slice(0, 10).join('\n  ')}`)
  log(`  checked: ${fmt(entries.length)} placements, each machine once, every cluster full, boot IPs right (${fmt(bootNicNotFirstChecked)} with the boot NIC not first)`)

  const pass2 = await schedulingPass('scheduling pass 2')
  if (pass2.result.assignments.length !== 0) throw new SetupError(`the second (no-op) pass made ${pass2.result.assignments.length} assignments`)
  sampleMemory('after the second pass')
  const dbAfterScheduling = await databaseSize(dataDir)

  // --- report -------------------------------------------------------------------------------------
  const cpus = os.cpus()
  const [nginxV, wrkV] = await Promise.all([nginxVersion(), withWrk ? wrkVersion() : Promise.resolve(undefined)])
  const find = (round: RoundId, target: TargetId) => runs.find((run) => run.round === round && run.target === target)
  const ratios = Object.fromEntries(
    rounds.map((round) => [round.id, find(round.id, 'engine')!.load.requestsPerSecond / find(round.id, 'nginx')!.load.requestsPerSecond]),
  ) as Partial<Record<RoundId, number>>
  const ratiosWrk = Object.fromEntries(
    rounds.flatMap((round) => {
      const wrkRun = find(round.id, 'nginx-wrk')
      return wrkRun ? [[round.id, find(round.id, 'engine')!.load.requestsPerSecond / wrkRun.load.requestsPerSecond]] : []
    }),
  ) as Partial<Record<RoundId, number>>

  const lines: string[] = []
  lines.push('')
  lines.push(`Slipway discovery benchmark: ${fmt(machineCount)} machines, POST /discovery (${fmt(fixtures.averageBodyBytes)} B per report on average), then one scheduling pass`)
  lines.push(`node:http ${connections} keep-alive connections, one request in flight each, the same ${fmt(machineCount)} requests in the same order for every server; all on 127.0.0.1`)
  lines.push(`engine: ${revision.commit ?? 'unknown commit'}${revision.changedFiles.length ? ` + uncommitted changes in ${revision.changedFiles.join(', ')}` : ''}`)
  lines.push(`machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}; node ${process.version}; nginx ${nginxV}; load average at start: ${loadBefore.map((v) => v.toFixed(2)).join(' ')}`)
  lines.push(`nginx stores nothing: it is the transport ceiling (${nginxBody === 'read' ? 'echo_read_request_body: each body read into memory' : 'return 200: bodies read and discarded'}, fixed answer).`)
  lines.push('')
  const header = ['round', 'target', 'disc/s', 'p50 ms', 'p99 ms', 'max ms', 'failures', 'conns', 'server CPU', 'client CPU', 'other CPU']
  const percent = (cores: number | undefined) => (cores === undefined ? '-' : `${fmt(cores * 100)}%`)
  const noisy = (run: DiscoveryRun) => (run.cpu.otherCores ?? 0) > NOISY_CORES
  const saturated = (run: DiscoveryRun) => !run.informational && (run.cpu.loadGeneratorCores ?? 0) > SATURATED_CORES
  const rows = runs.map((run) => [
    rounds.find((round) => round.id === run.round)!.label,
    run.label + (run.informational ? ' *' : ''),
    fmt(run.load.requestsPerSecond),
    fmt(run.load.latencyMs.p50, 2),
    fmt(run.load.latencyMs.p99, 2),
    fmt(run.load.latencyMs.max, 1),
    String(run.load.failures),
    run.load.connectionsOpened === undefined ? '-' : String(run.load.connectionsOpened),
    percent(run.cpu.serverCores),
    percent(run.cpu.loadGeneratorCores) + (saturated(run) ? ' ^' : ''),
    percent(run.cpu.otherCores) + (noisy(run) ? ' !' : ''),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const right = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10])
  const render = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')
  lines.push(render(header))
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '))
  rows.forEach((row, i) => {
    if (i > 0 && runs[i]!.round !== runs[i - 1]!.round) lines.push('')
    lines.push(render(row))
  })
  lines.push('CPU columns: CPU time / wall time, 100% = one core; "client" is the load generator (this benchmark process with')
  lines.push('node:http, wrk for * rows), "other" every other process on the machine during the run (noise: it should be near 0%).')
  if (withWrk) lines.push(`* information only: wrk (C) cycling the same bodies for ${wrkSeconds} s, to show nginx's ceiling without the node:http client's cost.`)
  if (runs.some(saturated)) lines.push(`^ the node:http client used more than ${SATURATED_CORES * 100}% of a core: that row is bound by the client, not the server.`)
  if (runs.some(noisy)) lines.push(`! other processes used more than ${NOISY_CORES * 100}% of a core during this run: rerun on a quiet machine.`)
  lines.push('')
  lines.push('Ratio engine / nginx, discoveries per second (same node:http client, same requests):')
  for (const round of rounds) {
    lines.push(`  ${round.label.padEnd(15)} ${ratios[round.id]!.toFixed(3)}` + (ratiosWrk[round.id] !== undefined ? `    (vs nginx driven by wrk: ${ratiosWrk[round.id]!.toFixed(3)})` : ''))
  }
  lines.push('')
  lines.push(`Scheduling: ${plan.clusters.length} clusters (${flavorCounts.join(', ')}) for ${fmt(machineCount)} machines`)
  const passLine = (name: string, pass: typeof pass1) =>
    `  ${name.padEnd(22)} ${fmt(pass.wallSeconds, 2).padStart(8)} s wall, engine CPU ${pass.engineCpuSeconds === undefined ? '-' : `${fmt(pass.engineCpuSeconds, 2)} s`}, ` +
    `${fmt(pass.result.assignments.length)} assignments, answer ${mb(pass.responseBytes)}; /boot.ipxe answered in ${fmt(pass.responsiveness.maxMs)} ms at worst meanwhile`
  lines.push(passLine('first pass', pass1))
  if (pass1.result.assignments.length) lines.push(`  ${''.padEnd(22)} ${fmt((pass1.wallSeconds * 1000) / pass1.result.assignments.length, 2).padStart(8)} ms per assignment`)
  lines.push(passLine('second pass (no-op)', pass2))
  lines.push(`  ${'GET /scheduler'.padEnd(22)} ${fmt(schedulerReadMs / 1000, 2).padStart(8)} s for ${fmt(entries.length)} placements (every machine once, counts match the flavors)`)
  lines.push(`  ${'GET /scheduler/avail.'.padEnd(22)} ${fmt(availableMs / 1000, 2).padStart(8)} s for ${fmt(available.length)} machines (before the pass)`)
  lines.push(`  ${'create flavors+clusters'.padEnd(22)} ${fmt(createMs / 1000, 2).padStart(7)} s for ${plan.flavors.length} + ${plan.clusters.length} (one request each)`)
  lines.push('')
  lines.push('Engine memory (node process, /proc/<pid>/status):')
  for (const sample of memory) {
    lines.push(`  ${sample.when.padEnd(22)} VmRSS ${sample.memory ? mb(sample.memory.rssBytes).padStart(9) : '-'}   VmHWM (peak) ${sample.memory ? mb(sample.memory.hwmBytes).padStart(9) : '-'}`)
  }
  const dbLine = (when: string, db: typeof dbAfterDiscovery) =>
    `  ${when.padEnd(22)} slipway.db ${mb(db.dbBytes)} + WAL ${mb(db.walBytes)} + shm ${mb(db.shmBytes)} = ${mb(db.totalBytes)} (${fmt(db.totalBytes / machineCount / 1000, 1)} kB per machine)`
  lines.push('SQLite:')
  lines.push(dbLine('after discoveries', dbAfterDiscovery))
  lines.push(dbLine('after scheduling', dbAfterScheduling))
  process.stdout.write(lines.join('\n') + '\n')

  const results = {
    benchmark: 'discovery',
    date: new Date().toISOString(),
    machine: machineFacts(loadBefore),
    versions: { node: process.version, nginx: nginxV, ...(wrkV ? { wrk: wrkV } : {}) },
    engine: revision,
    settings: {
      machines: machineCount,
      connections,
      pipelining: 1,
      loadGenerator: 'node:http (in the benchmark process)',
      rediscover,
      nginxWorkers: 1,
      nginxBody,
      wrkSecondsForInformationalRows: withWrk ? wrkSeconds : 0,
      engineSchedulerIntervalSeconds: 0,
      quietBeforeRun: { maxOtherCores: quietCores, maxWaitSeconds: quietWait },
      engineNodeEnv: 'production',
      engineCpuProfile: cpuProf,
    },
    fixtures,
    discovery: runs.map((run) => ({
      round: run.round,
      target: run.target,
      label: run.label,
      informational: run.informational,
      loadGenerator: run.target === 'nginx-wrk' ? 'wrk' : 'node:http',
      requests: run.load.requests,
      durationSeconds: run.load.durationSeconds,
      discoveriesPerSecond: Math.round(run.load.requestsPerSecond),
      latencyMs: run.load.latencyMs,
      failures: run.load.failures,
      statusCounts: run.load.statusCounts,
      connectionsOpened: run.load.connectionsOpened,
      bytesSent: run.load.bytesSent,
      bytesReceived: run.load.bytesReceived,
      cpuCores: { server: run.cpu.serverCores, loadGenerator: run.cpu.loadGeneratorCores, otherProcesses: run.cpu.otherCores },
      noisy: noisy(run),
      loadGeneratorSaturated: saturated(run),
    })),
    ratios: { engineVsNginxDiscoveriesPerSecond: ratios, engineVsNginxDrivenByWrkInformational: ratiosWrk },
    scheduling: {
      flavors: plan.flavors,
      clusters: plan.clusters.length,
      clustersByFlavor: Object.fromEntries(plan.flavors.map((flavor) => [flavor.name, plan.clusters.filter((c) => c.flavor === flavor).length])),
      createFlavorsAndClustersMs: createMs,
      firstPass: {
        wallSeconds: pass1.wallSeconds,
        engineCpuSeconds: pass1.engineCpuSeconds,
        assignments: pass1.result.assignments.length,
        msPerAssignment: pass1.result.assignments.length ? (pass1.wallSeconds * 1000) / pass1.result.assignments.length : undefined,
        responseBytes: pass1.responseBytes,
        bootIpxeProbeDuringPass: pass1.responsiveness,
      },
      secondPass: {
        wallSeconds: pass2.wallSeconds,
        engineCpuSeconds: pass2.engineCpuSeconds,
        assignments: pass2.result.assignments.length,
        responseBytes: pass2.responseBytes,
        bootIpxeProbeDuringPass: pass2.responsiveness,
      },
      getSchedulerMs: schedulerReadMs,
      getAvailableBeforePassMs: availableMs,
      checks: { placements: entries.length, uniqueMachines: seen.size, bootNicNotFirstWithRightIp: bootNicNotFirstChecked },
    },
    memory: memory.map((sample) => ({ when: sample.when, rssBytes: sample.memory?.rssBytes, hwmBytes: sample.memory?.hwmBytes })),
    database: { afterDiscoveries: dbAfterDiscovery, afterScheduling: dbAfterScheduling },
  }
  await writeResults(RESULTS_DIR, 'discovery', results, log)

  if (cpuProf) {
    // The engine writes its profile when it exits: stop it gracefully first.
    await stopProcess(engine, 60_000)
    const target = await keepEngineProfile(profDir, RESULTS_DIR, 'discovery')
    const out = windowedProfileLines({
      file: target,
      startedUs: spawnedUs,
      sameClock: { from: -1, to: 120 },
      windows: Object.entries(windows).map(([name, window]) => [`Engine CPU profile, ${name}`, window]),
      whole: 'Engine CPU profile, whole run',
      skewNote: 'run',
      heading: (title, summary) => `${title}: ${fmt(summary.totalMs / 1000, 2)} s busy; self time by origin:`,
      top: { origins: 12, functions: 15, inclusive: 15 },
    })
    out.push(...profileFooter(target))
    process.stdout.write(out.join('\n') + '\n')
  }
}


runBenchmark(scope, 'discovery', main)
