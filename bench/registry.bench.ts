/**
 * Cluster registry benchmark: 500 simulated Kubernetes clusters registered by hand, then full health
 * sweeps, against the ideal schedule. See bench/README.md.
 *
 * The clusters are Kubernetes API server TEST DOUBLES (test/fakes/kube-apiserver.ts), not Kubernetes:
 * each listens on 127.0.0.1 (random port) over TLS with a certificate from one CA made by the engine's
 * own PKI issuer, accepts its own bearer token, holds a few Ready nodes and running pods, and delays every
 * answer by 50 ms (a distant cluster). All 500 run in a separate child process (bench/lib/kube-fleet-child.ts)
 * so that their CPU and memory are not counted as the engine's; it is stopped by PID however the run ends.
 *
 * The engine runs IN this process, started as the tests start it (test/helpers/engine.ts: real SQLite
 * file in a temp folder, the real health sweep job, the real @kubernetes/client-node, silent logger),
 * with the health interval at 0 (sweeps only on demand) and admin calls through `app.inject`. Why in
 * process rather than as a child: the sweep is the engine's own client-side work (TLS, HTTP, JSON,
 * SQLite), which `process.cpuUsage()` and `process.memoryUsage()` measure directly, heap included,
 * after a forced GC (`gc` is exposed at run time with `v8.setFlagsFromString('--expose-gc')`, so plain
 * `npx tsx` works); what else lives in this process (the benchmark's few objects, the fleet description)
 * is small next to the figures and the same before and after. A second concurrency restarts the engine
 * on the same data folder with another SLIPWAY_REGISTRY_HEALTH_CONCURRENCY (memory figures come from the
 * first engine only).
 *
 * What one sweep costs at best: each cluster is asked its four questions at once (one round trip of
 * 50 ms), `concurrency` clusters at a time, so ideal = ceil(clusters / concurrency) x 50 ms.
 *
 *   npx tsx bench/registry.bench.ts          (or: npm run bench:registry)
 *   BENCH_CONCURRENCIES=32 BENCH_SWEEPS=1 BENCH_IDLE_SECONDS=0 npx tsx bench/registry.bench.ts   (quick run)
 *   BENCH_CPU_PROF=1 npx tsx bench/registry.bench.ts   (plus a CPU profile of the sweeps, per kind of sweep)
 *   BENCH_SERVER_KEEPALIVE_SECONDS=60 npx tsx bench/registry.bench.ts   (what if connections outlived a sweep)
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import vm from 'node:vm'
import type { FastifyInstance } from 'fastify'
import { auth, copySampleContent, startTestEngine, type TestEngine } from '../test/helpers/engine.ts'
import { BenchScope, SetupError, engineRevision, envNumber, machineFacts, runBenchmark, writeResults } from './lib/bench-scope.ts'
import type { ProfileWindow } from './lib/cpuprofile.ts'
import { machineCpuSeconds, treeCpuSeconds, waitForQuiet } from './lib/cpu-usage.ts'
import { prng } from './lib/fixtures.ts'
import { processMemory } from './lib/proc-memory.ts'
import { startKubeFleet, type KubeFleet } from './lib/kube-fleet.ts'
import { fmt, kb, log, mb, nowUs, percentile, profileFooter, windowedProfileLines } from './lib/report.ts'
import { forEachLimited } from '../src/lib/concurrency-limiter.ts'
import { sleep } from '../test/helpers/wait.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = path.join(REPO, 'bench', 'results')
/** Other processes' CPU during a sweep above which its row is flagged as noisy (cores). */
const NOISY_CORES = 0.2

const scope = new BenchScope("the API server doubles' process, the engine and the temp folders")

/** A forced, full GC: `--expose-gc` if node was started with it, else exposed now (V8 allows it at run time). */
function exposeGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc
  if (typeof existing === 'function') return existing
  try {
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as unknown
    return typeof gc === 'function' ? (gc as () => void) : undefined
  } catch {
    return undefined
  }
}
const gc = exposeGc()

interface MemorySample {
  when: string
  rssBytes: number
  heapUsedBytes: number
  heapTotalBytes: number
  externalBytes: number
  arrayBuffersBytes: number
  /** Peak RSS of this process so far (VmHWM), Linux only. */
  hwmBytes?: number
  afterForcedGc: boolean
}

async function sampleMemory(when: string): Promise<MemorySample> {
  if (gc) {
    // Twice, with a turn of the event loop between: weak references and finalizers get their chance.
    gc()
    await sleep(50)
    gc()
  }
  const usage = process.memoryUsage()
  const hwm = processMemory(process.pid)?.hwmBytes
  return {
    when,
    rssBytes: usage.rss,
    heapUsedBytes: usage.heapUsed,
    heapTotalBytes: usage.heapTotal,
    externalBytes: usage.external,
    arrayBuffersBytes: usage.arrayBuffers,
    ...(hwm !== undefined ? { hwmBytes: hwm } : {}),
    afterForcedGc: gc !== undefined,
  }
}

// --- the API server doubles, in their own process ----------------------------------------------------

type Fleet = KubeFleet

/** 500 API server doubles (kube-apiserver.ts) with `latencyMs` per answer, in their own process. */
const startFleet = (settings: { clusters: number; latencyMs: number; nodes: number; pods: number; keepAliveSeconds: number }) =>
  startKubeFleet('kube API server doubles', {
    FLEET_CLUSTERS: settings.clusters,
    FLEET_LATENCY_MS: settings.latencyMs,
    FLEET_NODES: settings.nodes,
    FLEET_PODS: settings.pods,
    FLEET_KEEPALIVE_SECONDS: settings.keepAliveSeconds,
  })

// --- the engine, in this process ---------------------------------------------------------------------

async function startEngine(concurrency: number, folders: { dataDir: string; contentDir: string }): Promise<TestEngine> {
  const started = await startTestEngine({
    ...folders,
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_PROXY_ENABLED: 'false',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
      SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
      SLIPWAY_REGISTRY_HEALTH_CONCURRENCY: String(concurrency),
    },
  })
  await started.engine.start()
  if (started.config.registry.healthConcurrency !== concurrency) throw new SetupError(`the engine took health concurrency ${started.config.registry.healthConcurrency}, not ${concurrency}`)
  return started
}

async function call(app: FastifyInstance, method: 'GET' | 'POST', url: string, expect: number, payload?: object) {
  const answer = await app.inject({ method, url, headers: auth, ...(payload !== undefined ? { payload } : {}) })
  if (answer.statusCode !== expect) throw new Error(`${method} ${url} answered ${answer.statusCode} (expected ${expect}): ${answer.body.slice(0, 600)}`)
  return answer
}

interface SweepResult {
  concurrency: number
  kind: 'warm-up' | 'measured' | 'after idle'
  label: string
  wallMs: number
  /** duration_ms of the sweep report (the job's own timing, without the HTTP call around it). */
  reportedMs: number
  idealMs: number
  ratio: number
  /** Each cluster's probe as the engine recorded it (health.duration_ms): the four questions, answers parsed. */
  probeMs: { p50: number; p90: number; p99: number; max: number; mean: number }
  /** Sum of probe times / concurrency: the sweep if lanes never waited between probes. */
  lanesBusyMs: number
  /** CPU of this process (the engine) during the sweep; V8's GC helper and libuv threads count too. */
  engineCpuMs: number
  fleetCpuMs: number
  /** CPU of every other process on the machine during the sweep, in cores. */
  otherCores?: number
  /** New TLS connections the doubles accepted during the sweep (full handshakes: the client resumes none). */
  tlsHandshakes: number
  apiRequests: number
  eventLoopDelayMs: { p50: number; p99: number; max: number }
  /** This process's RSS right after the sweep (no forced GC). */
  rssAfterBytes: number
  window: ProfileWindow
}

async function runSweep(app: FastifyInstance, fleet: Fleet, concurrency: number, latencyMs: number, kind: SweepResult['kind'], label: string): Promise<SweepResult> {
  const clusters = fleet.clusters.length
  const stats0 = await fleet.stats()
  const delay = monitorEventLoopDelay({ resolution: 5 })
  const fromUs = nowUs()
  const machine0 = machineCpuSeconds()
  const cpu0 = process.cpuUsage()
  delay.enable()
  const started = performance.now()
  const answer = await app.inject({ method: 'POST', url: '/api/v1/clusters/health-sweep', headers: auth })
  const wallMs = performance.now() - started
  delay.disable()
  const cpu = process.cpuUsage(cpu0)
  const machine1 = machineCpuSeconds()
  const toUs = nowUs()
  const rssAfterBytes = process.memoryUsage.rss()
  const stats1 = await fleet.stats()
  const engineCpuMs = (cpu.user + cpu.system) / 1000
  const fleetCpuMs = (stats1.cpuMicros - stats0.cpuMicros) / 1000
  // Everything else on the machine meanwhile (another test suite takes CPU from the engine).
  const otherCores = machine0 && machine1 ? Math.max(0, (machine1.busy - machine0.busy) * 1000 - engineCpuMs - fleetCpuMs) / wallMs : undefined
  if (answer.statusCode !== 200) throw new Error(`health sweep answered ${answer.statusCode}: ${answer.body.slice(0, 600)}`)
  const report = answer.json() as { checked: number; joined: string[]; duration_ms: number; statuses: Record<string, string> }
  const notHealthy = fleet.clusters.filter((cluster) => report.statuses[cluster.name] !== 'Healthy')
  if (report.checked !== clusters || notHealthy.length > 0) {
    const details = await Promise.all(
      notHealthy.slice(0, 5).map(async (cluster) => {
        const health = (await call(app, 'GET', `/api/v1/clusters/${cluster.name}`, 200)).json().health as { status: string; reason: string; message: string } | null
        return `  ${cluster.name}: ${report.statuses[cluster.name] ?? 'not in the report'}${health ? ` (${health.reason}: ${health.message})` : ''}`
      }),
    )
    throw new Error(`sweep ${label}: checked ${report.checked} of ${clusters}, ${notHealthy.length} not Healthy:\n${details.join('\n')}`)
  }
  const items = (await call(app, 'GET', '/api/v1/clusters', 200)).json() as { name: string; health: { duration_ms: number; status: string } | null }[]
  const durations = items.map((item) => item.health?.duration_ms ?? Number.NaN).filter((ms) => Number.isFinite(ms))
  if (durations.length !== clusters) throw new Error(`GET /api/v1/clusters listed ${durations.length} health records, expected ${clusters}`)
  const sorted = [...durations].sort((a, b) => a - b)
  const sum = sorted.reduce((total, ms) => total + ms, 0)
  const idealMs = Math.ceil(clusters / concurrency) * latencyMs
  return {
    concurrency,
    kind,
    label,
    wallMs,
    reportedMs: report.duration_ms,
    idealMs,
    ratio: wallMs / idealMs,
    probeMs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0, mean: sum / sorted.length },
    lanesBusyMs: sum / Math.min(concurrency, clusters),
    engineCpuMs,
    fleetCpuMs,
    ...(otherCores !== undefined ? { otherCores } : {}),
    tlsHandshakes: stats1.tlsConnections - stats0.tlsConnections,
    apiRequests: stats1.requests - stats0.requests,
    eventLoopDelayMs: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 },
    rssAfterBytes,
    window: { fromUs, toUs },
  }
}

// --- the benchmark ----------------------------------------------------------------------------------

const REGIONS = ['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south']
const TIERS = ['prod', 'prod', 'staging', 'edge']

async function main(): Promise<void> {
  const clusterCount = envNumber('BENCH_CLUSTERS', 500, { min: 1, max: 5000, integer: true })
  const latencyMs = envNumber('BENCH_LATENCY_MS', 50, { min: 0, integer: true })
  const nodes = envNumber('BENCH_NODES', 3, { min: 1, max: 500, integer: true })
  const pods = envNumber('BENCH_PODS', 10, { min: 0, max: 5000, integer: true })
  const sweeps = envNumber('BENCH_SWEEPS', 3, { min: 1, max: 50, integer: true })
  const idleSeconds = envNumber('BENCH_IDLE_SECONDS', 6, { min: 0, max: 600 })
  const registerParallel = envNumber('BENCH_REGISTER_PARALLEL', 1, { min: 1, max: 1000, integer: true })
  const concurrencies = (process.env.BENCH_CONCURRENCIES ?? '32,128').split(',').map((text) => {
    const value = Number(text.trim())
    if (!Number.isInteger(value) || value < 1 || value > 1000) throw new SetupError(`BENCH_CONCURRENCIES: ${text} is not an integer in [1, 1000]`)
    return value
  })
  const keepAliveSeconds = envNumber('BENCH_SERVER_KEEPALIVE_SECONDS', 5, { min: 1, max: 3600, integer: true })
  const quietCores = envNumber('BENCH_QUIET_CORES', 0.25, { min: 0 })
  const quietWait = envNumber('BENCH_QUIET_WAIT', 30, { min: 0 })
  const cpuProf = process.env.BENCH_CPU_PROF === '1'
  const waitQuiet = async (before: string) => {
    if (quietWait <= 0) return
    await waitForQuiet(quietCores, quietWait, (cores) => log(`  waiting (up to ${quietWait} s) for a quiet machine before ${before}: other processes use ${fmt(cores, 2)} cores`))
  }
  const loadBefore = os.loadavg()
  const revision = await engineRevision(REPO, ['src', 'migrations', 'package.json', 'package-lock.json'])
  if (!gc) log('note: could not expose a forced GC: memory figures are taken as they are')

  // --- the doubles ------------------------------------------------------------------------------
  let started = performance.now()
  log(`starting ${clusterCount} Kubernetes API server doubles (TLS, bearer token, ${latencyMs} ms per answer, ${nodes} nodes and ${pods} pods each) in a child process`)
  const fleet = await startFleet({ clusters: clusterCount, latencyMs, nodes, pods, keepAliveSeconds })
  const fleetStartSeconds = (performance.now() - started) / 1000
  log(`doubles ready in ${fmt(fleetStartSeconds, 1)} s (pid ${fleet.entry.child.pid}, ${mb(processMemory(fleet.entry.child.pid!)?.rssBytes ?? 0)} RSS)`)
  if (fleet.clusters.length !== clusterCount) throw new Error(`the doubles' process described ${fleet.clusters.length} clusters, expected ${clusterCount}`)

  // --- the engine -------------------------------------------------------------------------------
  started = performance.now()
  let running: TestEngine | undefined
  const closeEngine = async () => {
    const engine = running
    running = undefined
    await engine?.engine.close()
  }
  // Runs before the temp folder goes (BenchScope removes it last).
  scope.onCleanup(() => {}, closeEngine)
  // The engine's folders are the benchmark's own (so that they go even if the engine fails to start):
  // the repo's sample content copied, and a data folder; a restart reuses both.
  const tmp = await scope.makeTemp('slipway-bench-registry-')
  const folders = { dataDir: path.join(tmp, 'var'), contentDir: path.join(tmp, 'content') }
  copySampleContent(folders.contentDir)
  running = await startEngine(concurrencies[0]!, folders)
  const requestTimeoutSeconds = running.config.registry.requestTimeoutSeconds
  log(`engine started in process in ${fmt((performance.now() - started) / 1000, 1)} s (data in ${folders.dataDir})`)
  const memory: MemorySample[] = [await sampleMemory('engine started, before registration')]

  // --- registration -----------------------------------------------------------------------------
  const random = prng(500)
  const documents = fleet.clusters.map((cluster, index) => ({
    name: cluster.name,
    labels: { region: REGIONS[index % REGIONS.length]!, tier: TIERS[Math.floor(index / REGIONS.length) % TIERS.length]! },
    location: { latitude: Math.round((random() * 120 - 60) * 1e4) / 1e4, longitude: Math.round((random() * 360 - 180) * 1e4) / 1e4 },
    server: cluster.url,
    ca_bundle: fleet.caPem,
    credentials: { token: cluster.token },
  }))
  const app = running.engine.app
  await waitQuiet('registering')
  const registerCpu0 = process.cpuUsage()
  started = performance.now()
  await forEachLimited(documents, registerParallel, async (document) => {
    await call(app, 'POST', '/api/v1/clusters', 201, document)
  })
  const registrationSeconds = (performance.now() - started) / 1000
  const registrationCpu = process.cpuUsage(registerCpu0)
  const registration = {
    clusters: clusterCount,
    parallel: registerParallel,
    seconds: registrationSeconds,
    perSecond: clusterCount / registrationSeconds,
    engineCpuMsPerRegistration: (registrationCpu.user + registrationCpu.system) / 1000 / clusterCount,
  }
  log(`registered ${clusterCount} clusters in ${fmt(registrationSeconds, 2)} s: ${fmt(registration.perSecond)} registrations/s`)
  const listedCount = ((await call(app, 'GET', '/api/v1/clusters', 200)).json() as unknown[]).length
  if (listedCount !== clusterCount) throw new Error(`GET /api/v1/clusters lists ${listedCount} clusters after registering ${clusterCount}`)
  memory.push(await sampleMemory(`after registering ${clusterCount} clusters`))

  // --- sweeps -----------------------------------------------------------------------------------
  const results: SweepResult[] = []
  let profiler: Session | undefined
  let profiledSpawnUs = 0
  let engineApp = app
  for (const [index, concurrency] of concurrencies.entries()) {
    if (index > 0) {
      log(`restarting the engine on the same data with SLIPWAY_REGISTRY_HEALTH_CONCURRENCY=${concurrency}`)
      await closeEngine()
      running = await startEngine(concurrency, folders)
      engineApp = running.engine.app
    }
    if (cpuProf && index === 0) {
      profiler = new Session()
      profiler.connect()
      await profiler.post('Profiler.enable')
      await profiler.post('Profiler.start')
      profiledSpawnUs = nowUs()
    }
    const sweep = async (kind: SweepResult['kind'], label: string) => {
      const result = await runSweep(engineApp, fleet, concurrency, latencyMs, kind, label)
      results.push(result)
      log(
        `  concurrency ${concurrency}, ${label.padEnd(18)} ${fmt(result.wallMs).padStart(6)} ms (ideal ${fmt(result.idealMs)} ms, ratio ${fmt(result.ratio, 2)}), ` +
          `probe p50 ${fmt(result.probeMs.p50)} ms, engine CPU ${fmt(result.engineCpuMs)} ms, TLS handshakes ${fmt(result.tlsHandshakes)}`,
      )
    }
    await waitQuiet(`the sweeps at concurrency ${concurrency}`)
    await sweep('warm-up', 'warm-up (new conns)')
    for (let run = 1; run <= sweeps; run++) await sweep('measured', `measured #${run}`)
    if (index === 0) memory.push(await sampleMemory(`after ${sweeps + 1} sweeps (concurrency ${concurrency})`))
    if (idleSeconds > 0) {
      log(`  waiting ${idleSeconds} s (longer than the keep-alive timeouts: idle connections close, as between sweeps 30 s apart)`)
      await sleep(idleSeconds * 1000)
      if (index === 0) memory.push(await sampleMemory(`after ${idleSeconds} s idle`))
      await sweep('after idle', `after ${idleSeconds} s idle`)
    }
    if (profiler && index === 0) {
      const { profile } = await profiler.post('Profiler.stop')
      profiler.disconnect()
      profiler = undefined
      mkdirSync(RESULTS_DIR, { recursive: true })
      writeFileSync(path.join(RESULTS_DIR, 'registry-engine.cpuprofile'), JSON.stringify(profile))
    }
  }
  await closeEngine()
  const fleetMemory = processMemory(fleet.entry.child.pid!)
  const fleetCpuSeconds = treeCpuSeconds(fleet.entry.child.pid!)

  // --- report -----------------------------------------------------------------------------------
  const [before, afterRegistration, afterSweeps, afterIdle] = memory as [MemorySample, MemorySample, MemorySample | undefined, MemorySample | undefined]
  const perCluster = (from: MemorySample, to: MemorySample | undefined) =>
    to ? { rssBytes: (to.rssBytes - from.rssBytes) / clusterCount, heapUsedBytes: (to.heapUsedBytes - from.heapUsedBytes) / clusterCount, externalBytes: (to.externalBytes - from.externalBytes) / clusterCount } : undefined
  const memoryPerCluster = {
    registration: perCluster(before, afterRegistration),
    sweeps: afterSweeps ? perCluster(afterRegistration, afterSweeps) : undefined,
    total: perCluster(before, afterSweeps),
    totalAfterIdle: perCluster(before, afterIdle),
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b)
    return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2
  }
  const summary = concurrencies.map((concurrency) => {
    const measured = results.filter((result) => result.concurrency === concurrency && result.kind === 'measured')
    const idle = results.find((result) => result.concurrency === concurrency && result.kind === 'after idle')
    const warmUp = results.find((result) => result.concurrency === concurrency && result.kind === 'warm-up')!
    const idealMs = Math.ceil(clusterCount / concurrency) * latencyMs
    const medianMs = median(measured.map((result) => result.wallMs))
    return {
      concurrency,
      idealMs,
      warmUpMs: warmUp.wallMs,
      measuredMs: measured.map((result) => result.wallMs),
      medianMeasuredMs: medianMs,
      ratioMedianToIdeal: medianMs / idealMs,
      afterIdleMs: idle?.wallMs,
      ratioAfterIdleToIdeal: idle ? idle.wallMs / idealMs : undefined,
    }
  })

  const lines: string[] = []
  lines.push('')
  lines.push(`Cluster registry: ${fmt(clusterCount)} API server doubles (TLS, bearer token, ${latencyMs} ms per answer, ${nodes} nodes + ${pods} pods each), engine in this process`)
  lines.push('')
  lines.push(
    `Registration (POST /api/v1/clusters, ${registerParallel} at a time): ${fmt(clusterCount)} in ${fmt(registrationSeconds, 2)} s = ${fmt(registration.perSecond)} registrations/s, ` +
      `${fmt(registration.engineCpuMsPerRegistration, 2)} ms engine CPU each`,
  )
  lines.push('')
  const header = ['conc.', 'sweep', 'wall ms', 'ideal ms', 'ratio', 'probe p50/p90/max ms', 'lanes busy ms', 'engine CPU ms', 'engine busy', 'doubles CPU ms', 'other CPU', 'TLS hs', 'requests', 'loop delay p99/max ms', 'RSS after']
  const rows = results.map((result) => [
    String(result.concurrency),
    result.label,
    fmt(result.wallMs),
    fmt(result.idealMs),
    fmt(result.ratio, 2),
    `${fmt(result.probeMs.p50)}/${fmt(result.probeMs.p90)}/${fmt(result.probeMs.max)}`,
    fmt(result.lanesBusyMs),
    fmt(result.engineCpuMs),
    `${fmt((100 * result.engineCpuMs) / result.wallMs)}%`,
    fmt(result.fleetCpuMs),
    result.otherCores === undefined ? '-' : `${fmt(result.otherCores * 100)}%${result.otherCores > NOISY_CORES ? ' !' : ''}`,
    fmt(result.tlsHandshakes),
    fmt(result.apiRequests),
    `${fmt(result.eventLoopDelayMs.p99, 1)}/${fmt(result.eventLoopDelayMs.max, 1)}`,
    mb(result.rssAfterBytes),
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  const row = (cells: string[]) => cells.map((cell, column) => (column === 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')
  lines.push(row(header))
  for (const cells of rows) lines.push(row(cells))
  lines.push('')
  lines.push(`Ideal = ceil(${clusterCount} / concurrency) x ${latencyMs} ms (one round trip per cluster); ratio = wall / ideal.`)
  lines.push('"lanes busy" = sum of the recorded probe times / concurrency: the sweep if no lane ever waited between two clusters.')
  lines.push('"engine busy" = engine CPU / wall (~100%: the event loop was never idle, the sweep is CPU-bound, not latency-bound; GC and libuv threads can push it past 100%).')
  lines.push(`"other CPU" = every other process on the machine during the sweep (100% = one core; "!" above ${NOISY_CORES * 100}%: noisy row).`)
  lines.push('"TLS hs" = TLS connections the doubles accepted during the sweep (each a full handshake on the engine side too).')
  for (const item of summary) {
    lines.push(
      `  concurrency ${String(item.concurrency).padStart(4)}: ideal ${fmt(item.idealMs)} ms, measured median ${fmt(item.medianMeasuredMs)} ms -> ratio ${fmt(item.ratioMedianToIdeal, 2)}; ` +
        `warm-up ${fmt(item.warmUpMs)} ms${item.afterIdleMs !== undefined ? `; after idle ${fmt(item.afterIdleMs)} ms (ratio ${fmt(item.ratioAfterIdleToIdeal!, 2)})` : ''}`,
    )
  }
  for (const kind of ['measured', 'after idle', 'warm-up'] as const) {
    const of = results.filter((result) => result.kind === kind)
    if (of.length === 0) continue
    const cpuPerCluster = of.reduce((sum, result) => sum + result.engineCpuMs, 0) / of.length / clusterCount
    const handshakesPerCluster = of.reduce((sum, result) => sum + result.tlsHandshakes, 0) / of.length / clusterCount
    lines.push(
      `Engine CPU per cluster checked, ${kind.padEnd(10)}: ${fmt(cpuPerCluster, 2)} ms (${fmt(handshakesPerCluster, 1)} TLS handshakes per cluster): ` +
        `on one core a sweep of ${fmt(clusterCount)} takes at least ${fmt(cpuPerCluster * clusterCount)} ms at any concurrency`,
    )
  }
  lines.push('')
  lines.push(`Engine memory (this process, ${gc ? 'after a forced GC' : 'no forced GC available: as they are'}):`)
  for (const sample of memory) {
    lines.push(`  ${sample.when.padEnd(42)} RSS ${mb(sample.rssBytes).padStart(9)}  heap used ${mb(sample.heapUsedBytes).padStart(9)}  external ${mb(sample.externalBytes).padStart(8)}${sample.hwmBytes ? `  peak RSS ${mb(sample.hwmBytes)}` : ''}`)
  }
  const perLine = (what: string, value: ReturnType<typeof perCluster>) =>
    value && lines.push(`  per cluster, ${what.padEnd(29)} RSS ${kb(value.rssBytes).padStart(9)}  heap used ${kb(value.heapUsedBytes).padStart(9)}  external ${kb(value.externalBytes).padStart(8)}`)
  perLine('registration', memoryPerCluster.registration)
  perLine('sweeps (clients, connections)', memoryPerCluster.sweeps)
  perLine('total ((after - before) / N)', memoryPerCluster.total)
  perLine('after idle, total', memoryPerCluster.totalAfterIdle)
  lines.push(`Doubles' process: ${fleetMemory ? `${mb(fleetMemory.rssBytes)} RSS` : 'gone'}, ${fleetCpuSeconds !== undefined ? `${fmt(fleetCpuSeconds, 1)} s CPU in all` : ''}`)
  process.stdout.write(lines.join('\n') + '\n')

  const resultsDocument = {
    benchmark: 'registry',
    date: new Date().toISOString(),
    machine: machineFacts(loadBefore),
    versions: { node: process.version },
    engine: revision,
    settings: {
      clusters: clusterCount,
      latencyMs,
      nodesPerCluster: nodes,
      podsPerCluster: pods,
      measuredSweepsPerConcurrency: sweeps,
      idleSecondsBeforeLastSweep: idleSeconds,
      registerParallel,
      concurrencies,
      serverKeepAliveSeconds: keepAliveSeconds,
      quietBeforeRun: { maxOtherCores: quietCores, maxWaitSeconds: quietWait },
      engine: 'in the benchmark process (test/helpers/engine.ts startTestEngine), admin calls through app.inject',
      doubles: 'test/fakes/kube-apiserver.ts in a child process (bench/lib/kube-fleet-child.ts), TLS with one shared serving certificate, bearer token per cluster',
      requestTimeoutSeconds,
      forcedGc: gc !== undefined,
      engineCpuProfile: cpuProf,
    },
    fleetStartSeconds,
    registration,
    sweeps: results.map(({ window: _window, ...result }) => result),
    summary,
    memory,
    memoryPerCluster,
    doublesProcess: { rssBytes: fleetMemory?.rssBytes, hwmBytes: fleetMemory?.hwmBytes, cpuSeconds: fleetCpuSeconds },
  }
  await writeResults(RESULTS_DIR, 'registry', resultsDocument, log)

  if (cpuProf) {
    const file = path.join(RESULTS_DIR, 'registry-engine.cpuprofile')
    const first = results.filter((result) => result.concurrency === concurrencies[0])
    // One window per kind of sweep, spanning its sweeps at the first concurrency.
    const windows = (['warm-up', 'measured', 'after idle'] as const).flatMap((kind): [string, ProfileWindow][] => {
      const spans = first.filter((result) => result.kind === kind).map((result) => result.window)
      if (spans.length === 0) return []
      const window = { fromUs: Math.min(...spans.map((w) => w.fromUs)), toUs: Math.max(...spans.map((w) => w.toUs)) }
      return [[`Engine CPU profile, concurrency ${concurrencies[0]}, ${kind} sweep${spans.length > 1 ? 's' : ''}`, window]]
    })
    const out = windowedProfileLines({
      file,
      startedUs: profiledSpawnUs,
      sameClock: { from: -5, to: 5 },
      windows,
      whole: 'Engine CPU profile, all sweeps',
      skewNote: 'profile',
      heading: (title, summary) => `${title}: ${fmt(summary.totalMs, 0)} ms busy; self time by origin:`,
      top: { origins: 12, functions: 15, inclusive: 10 },
    })
    out.push(...profileFooter(file))
    process.stdout.write(out.join('\n') + '\n')
  }
}


runBenchmark(scope, 'registry', main)
