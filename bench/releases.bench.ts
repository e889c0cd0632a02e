/**
 * Helm release fan-out benchmark: one chart installed on 200 simulated Kubernetes clusters by label
 * selector, at several `max_parallel`, against the ideal schedule. See bench/README.md.
 *
 * The clusters are TEST DOUBLES (test/fakes/kube-cluster.ts: a Kubernetes API object store with
 * discovery and server-side apply), not Kubernetes: each listens on 127.0.0.1 (random port) over TLS with
 * a certificate from one CA made by the engine's own PKI issuer, accepts its own bearer token, delays
 * every answer by 50 ms (a distant cluster), and turns a Deployment ready `readyDelayMs` after each
 * change. All 200 run in a separate child process (bench/lib/kube-fleet-child.ts, FLEET_KIND=cluster) so
 * that their CPU is not counted as the engine's; it is stopped by PID however the run ends.
 *
 * The engine runs IN this process, started as the tests start it (test/helpers/engine.ts: real SQLite
 * file in a temp folder, the real release reconciler, the real helm binary rendering, the real
 * @kubernetes/client-node applying, silent logger); admin calls go through `app.inject`. In process, so
 * that `process.cpuUsage()` is the engine's (plus this script's polling, which is small); helm runs as
 * the engine's child processes, whose CPU is read from /proc/self/stat once they are reaped.
 *
 * Per run, on closed connections (the doubles drop their idle ones first, as a release minutes after the
 * last one meets them): POST /api/v1/releases (the chart `web`: a ConfigMap, a Service and a Deployment;
 * selector `fleet=edge`; max_parallel P), then GET /api/v1/releases/shop/web until every cluster is `ready`
 * at revision 1. Wall time = from the POST to the latest `ready_at`. Then the release is deleted and the
 * benchmark waits until it is gone, so that every run installs from scratch (the namespace stays, as
 * helm's --create-namespace leaves it, and the engine keeps its per-cluster clients and their discovery:
 * the first run is the engine's first contact with each cluster).
 *
 * What one cluster costs at best: R sequential round trips of `latency` each, counted from the request
 * log of the doubles (discovery, namespace, one server-side apply per object, Helm's release record,
 * readiness reads), plus any wait for readiness; P clusters at a time, so
 * ideal = ceil(clusters / P) x (R x latency + readiness wait).
 *
 *   npx tsx bench/releases.bench.ts          (or: npm run bench:releases)
 *   BENCH_PARALLEL=10 BENCH_CLUSTER_VALUES_PARALLEL=0 npx tsx bench/releases.bench.ts   (quick run)
 *   BENCH_CPU_PROF=1 npx tsx bench/releases.bench.ts   (plus a CPU profile of the engine, per run)
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { multipartBody, packageChart, webChart } from '../test/helpers/charts.ts'
import { auth, copySampleContent, startTestEngine, type TestEngine } from '../test/helpers/engine.ts'
import { helmPath } from '../test/helpers/tools.ts'
import { BenchScope, SetupError, engineRevision, envNumber, machineFacts, runBenchmark, writeResults } from './lib/bench-scope.ts'
import type { ProfileWindow } from './lib/cpuprofile.ts'
import { machineCpuSeconds, reapedChildrenCpuSeconds, treeCpuSeconds, waitForQuiet } from './lib/cpu-usage.ts'
import { processMemory } from './lib/proc-memory.ts'
import { runTracked } from './lib/processes.ts'
import { startKubeFleet, type KubeFleet } from './lib/kube-fleet.ts'
import { fmt, log, mb, mean, nowUs, percentile, profileFooter, windowedProfileLines } from './lib/report.ts'
import { forEachLimited } from '../src/lib/concurrency-limiter.ts'
import { sleep } from '../test/helpers/wait.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = path.join(REPO, 'bench', 'results')
const NAMESPACE = 'shop'
const RELEASE = 'web'
/** Other processes' CPU during a run above which its row is flagged as noisy (cores). */
const NOISY_CORES = 0.2

function envList(name: string, fallback: string, { min = 1, max = 1000 } = {}): number[] {
  const raw = process.env[name] ?? fallback
  if (raw.trim() === '') return []
  return raw.split(',').map((text) => {
    const value = Number(text.trim())
    if (!Number.isInteger(value) || value < min || value > max) throw new SetupError(`${name}: ${text} is not an integer in [${min}, ${max}]`)
    return value
  })
}

const scope = new BenchScope("the cluster doubles' process, the engine and the temp folders")

// --- the cluster doubles, in their own process -------------------------------------------------------

/** A request as a double recorded it (`at`: when it arrived, before the double's latency). */
interface LoggedRequest {
  method: string
  path: string
  query: Record<string, string>
  contentType: string | undefined
  status: number
  at: number
}
interface Fleet extends KubeFleet {
  requests: (name: string, sinceMs: number) => Promise<LoggedRequest[]>
  objects: (namespace: string) => Promise<Record<string, { kind: string; name: string; data?: Record<string, string> }[]>>
  closeIdle: () => Promise<void>
}

/** The object-store doubles (kube-cluster.ts) with `latencyMs` per answer, in their own process. */
async function startFleet(settings: { clusters: number; latencyMs: number; readyDelayMs: number; keepAliveSeconds: number }): Promise<Fleet> {
  const fleet = await startKubeFleet('kube cluster doubles', {
    FLEET_KIND: 'cluster',
    FLEET_CLUSTERS: settings.clusters,
    FLEET_LATENCY_MS: settings.latencyMs,
    FLEET_READY_DELAY_MS: settings.readyDelayMs,
    FLEET_NODES: 1,
    FLEET_KEEPALIVE_SECONDS: settings.keepAliveSeconds,
  })
  return {
    ...fleet,
    requests: async (name, sinceMs) => (await fleet.ask<{ requests: LoggedRequest[] }>({ type: 'requests', name, sinceMs })).requests,
    objects: async (namespace) => (await fleet.ask<{ clusters: Record<string, { kind: string; name: string; data?: Record<string, string> }[]> }>({ type: 'objects', namespace })).clusters,
    closeIdle: async () => {
      await fleet.ask({ type: 'close-idle' })
    },
  }
}

// --- what a cluster's apply is made of -----------------------------------------------------------------

/** What a request to a double was for, as the engine's applier makes them (src/adapters/helm/release-applier.ts). */
function purposeOf(request: LoggedRequest): string {
  const { method, path: url, contentType } = request
  const apply = (contentType ?? '').startsWith('application/apply-patch')
  if (method === 'GET' && /^\/(api|apis)(\/[^/]+){0,2}$/.test(url) && !url.includes('/namespaces')) return 'discovery'
  if (/^\/api\/v1\/namespaces\/[^/]+$/.test(url)) return method === 'GET' ? 'namespace read' : apply ? 'namespace create (apply)' : `namespace ${method}`
  if (/\/secrets\/sh\.helm\.release\.v1\./.test(url)) return method === 'PATCH' ? 'release record write (apply)' : method === 'DELETE' ? 'release record delete' : `release record ${method}`
  if (method === 'GET' && /\/secrets$/.test(url) && request.query.labelSelector) return 'release record list'
  if (method === 'PATCH' && apply) return 'object apply (SSA PATCH)'
  if (method === 'GET' && /\/(deployments|statefulsets|daemonsets|jobs)\/[^/]+$/.test(url)) return 'readiness read'
  if (method === 'DELETE') return 'object delete'
  return `${method} ${url}`
}

interface Round {
  /** ms after the cluster's first request arrived. */
  atMs: number
  requests: { method: string; path: string; status: number; purpose: string }[]
}

/**
 * The sequential round trips of one cluster's log: a request that arrived less than `latency` after the
 * first of the current round could not have waited for its answer, so it belongs to the same round.
 */
function roundsOf(requests: LoggedRequest[], latencyMs: number): Round[] {
  const sorted = [...requests].sort((a, b) => a.at - b.at)
  const rounds: Round[] = []
  let roundStart = Number.NEGATIVE_INFINITY
  const first = sorted[0]?.at ?? 0
  for (const request of sorted) {
    if (request.at >= roundStart + latencyMs * 0.8) {
      roundStart = request.at
      rounds.push({ atMs: request.at - first, requests: [] })
    }
    rounds.at(-1)!.requests.push({ method: request.method, path: request.path, status: request.status, purpose: purposeOf(request) })
  }
  return rounds
}

// --- the engine, in this process ---------------------------------------------------------------------

async function call(app: FastifyInstance, method: 'GET' | 'POST' | 'DELETE', url: string, expect: number | number[], payload?: object) {
  const answer = await app.inject({ method, url, headers: auth, ...(payload !== undefined ? { payload } : {}) })
  const expected = Array.isArray(expect) ? expect : [expect]
  if (!expected.includes(answer.statusCode)) throw new Error(`${method} ${url} answered ${answer.statusCode} (expected ${expected.join(' or ')}): ${answer.body.slice(0, 600)}`)
  return answer
}

/** slipway_helm_renders_total from /metrics. */
async function helmRenders(app: FastifyInstance): Promise<number> {
  const text = (await call(app, 'GET', '/metrics', 200)).body
  const match = /^slipway_helm_renders_total (\d+(?:\.\d+)?)$/m.exec(text)
  if (!match) throw new Error('/metrics has no slipway_helm_renders_total')
  return Number(match[1])
}

interface ReleaseAnswer {
  state: string
  summary: { clusters: number; ready: number; applying: number; failed: number; pending: number }
  clusters: { cluster: string; revision: number; phase: string; error: string | null; updated_at: string; ready_at: string | null }[]
  events: { at: string; cluster: string | null; message: string }[]
}

interface RunSettings {
  label: string
  parallel: number
  clusterValues: boolean
}

interface RunResult extends RunSettings {
  clusters: number
  wallMs: number
  /** From the POST to the first request any double received (the install's check render, the reconciler's trigger and its own render). */
  firstRequestMs: number
  idealMs: number
  ratio: number
  /** R: sequential round trips of one cluster (the sample), and their breakdown. */
  roundTrips: number
  sampleCluster: string
  rounds: Round[]
  breakdown: Record<string, number>
  readinessWaitMs: number
  /** R over every cluster (they should agree). */
  roundTripsAll: { min: number; median: number; max: number }
  requestsPerCluster: { min: number; median: number; max: number }
  /** Per cluster: from its first request to its ready_at. */
  clusterSpanMs: { p50: number; p90: number; max: number; mean: number }
  /** Sum of the cluster spans / P: the run if no slot ever waited between two clusters. */
  lanesBusyMs: number
  /** When a slot was freed (a ready_at) to the next cluster's first request, mean and p90. */
  handOverMs: { mean: number; p90: number; max: number }
  helmRenders: number
  expectedRenders: number
  helmProcessCpuMs: number
  engineCpuMs: number
  fleetCpuMs: number
  otherCores?: number
  tlsHandshakes: number
  apiRequests: number
  eventLoopDelayMs: { p50: number; p99: number; max: number }
  rssAfterBytes: number
  /** DELETE to 404, and what the clusters were asked for it. */
  uninstallMs: number
  /** GET /api/v1/releases/shop/web calls of this script during the run, and their time in all (engine CPU counted above). */
  polls: number
  pollingMs: number
  /** With many renders: helm CPU / min(cores, helm processes at once), the least time those renders take. */
  helmFloorMs: number
  window: ProfileWindow
}

async function runInstall(
  app: FastifyInstance,
  fleet: Fleet,
  settings: RunSettings,
  options: { latencyMs: number; readyDelayMs: number; readyTimeoutSeconds: number; pollMs: number; runTimeoutMs: number; helmConcurrency: number },
): Promise<RunResult> {
  const clusters = fleet.clusters.length
  const { latencyMs } = options
  const renders0 = await helmRenders(app)
  const stats0 = await fleet.stats()
  const delay = monitorEventLoopDelay({ resolution: 5 })
  const helmCpu0 = reapedChildrenCpuSeconds()
  const machine0 = machineCpuSeconds()
  const fromUs = nowUs()
  const cpu0 = process.cpuUsage()
  delay.enable()
  const postedAt = Date.now()
  const started = performance.now()
  await call(app, 'POST', '/api/v1/releases', 201, {
    name: RELEASE,
    namespace: NAMESPACE,
    chart: { name: 'web' },
    selector: 'fleet=edge',
    // A greeting of its own per run: the executor's render cache (keyed by values) must not serve a
    // render from the run before.
    values: { replicas: 2, greeting: `hello from run ${settings.label}` },
    cluster_values: settings.clusterValues,
    rollout: { max_parallel: settings.parallel, max_failures: 1000, ready_timeout_seconds: options.readyTimeoutSeconds },
  })
  let answer: ReleaseAnswer | undefined
  let polls = 0
  let pollingMs = 0
  const deadline = started + options.runTimeoutMs
  for (;;) {
    const pollStarted = performance.now()
    answer = (await call(app, 'GET', `/api/v1/releases/${NAMESPACE}/${RELEASE}`, 200)).json() as ReleaseAnswer
    pollingMs += performance.now() - pollStarted
    polls++
    const failed = answer.clusters.filter((status) => status.phase === 'failed')
    if (failed.length > 0) {
      throw new Error(`run ${settings.label}: ${failed.length} cluster(s) failed, e.g. ${failed.slice(0, 3).map((status) => `${status.cluster}: ${status.error}`).join('; ')}`)
    }
    if (answer.clusters.length === clusters && answer.clusters.every((status) => status.phase === 'ready' && status.revision === 1)) break
    if (performance.now() > deadline) {
      throw new Error(`run ${settings.label}: not every cluster ready after ${options.runTimeoutMs / 1000} s: ${JSON.stringify(answer.summary)}; last events: ${JSON.stringify(answer.events.slice(-4))}`)
    }
    await sleep(options.pollMs)
  }
  delay.disable()
  const cpu = process.cpuUsage(cpu0)
  const machine1 = machineCpuSeconds()
  const toUs = nowUs()
  const rssAfterBytes = process.memoryUsage.rss()
  // helm processes are reaped a moment after they exit; the last one ran well before every cluster was ready.
  await sleep(50)
  const helmCpu1 = reapedChildrenCpuSeconds()
  const stats1 = await fleet.stats()
  const renders = (await helmRenders(app)) - renders0
  const readyAt = new Map(answer.clusters.map((status) => [status.cluster, Date.parse(status.ready_at!)]))
  const lastReady = Math.max(...readyAt.values())
  const wallMs = lastReady - postedAt
  const observedMs = performance.now() - started
  const engineCpuMs = (cpu.user + cpu.system) / 1000
  const fleetCpuMs = (stats1.cpuMicros - stats0.cpuMicros) / 1000
  const helmProcessCpuMs = helmCpu0 !== undefined && helmCpu1 !== undefined ? (helmCpu1 - helmCpu0) * 1000 : 0
  const otherCores = machine0 && machine1 ? Math.max(0, (machine1.busy - machine0.busy) * 1000 - engineCpuMs - fleetCpuMs - helmProcessCpuMs) / observedMs : undefined

  // What each double was asked, and when.
  const logs = new Map<string, LoggedRequest[]>()
  await forEachLimited(fleet.clusters, 16, async (cluster) => {
    logs.set(cluster.name, await fleet.requests(cluster.name, postedAt))
  })
  const perCluster = fleet.clusters.map((cluster) => {
    const requests = logs.get(cluster.name)!
    if (requests.length === 0) throw new Error(`run ${settings.label}: ${cluster.name} is ready but its double received no request`)
    const firstAt = Math.min(...requests.map((request) => request.at))
    return { name: cluster.name, requests, firstAt, readyAt: readyAt.get(cluster.name)!, rounds: roundsOf(requests, latencyMs) }
  })
  // R is what most clusters needed (a busy moment can split two concurrent requests into two rounds);
  // the sample is the cluster with the median span among those.
  const roundCounts = new Map<number, number>()
  for (const entry of perCluster) roundCounts.set(entry.rounds.length, (roundCounts.get(entry.rounds.length) ?? 0) + 1)
  const usual = [...roundCounts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0]
  const bySpan = perCluster.filter((entry) => entry.rounds.length === usual).sort((a, b) => a.readyAt - a.firstAt - (b.readyAt - b.firstAt))
  const sample = bySpan[Math.floor(bySpan.length / 2)]!
  const breakdown: Record<string, number> = {}
  for (const round of sample.rounds) for (const request of round.requests) breakdown[request.purpose] = (breakdown[request.purpose] ?? 0) + 1
  // Readiness: the Deployment turns ready readyDelayMs after the double answered its PATCH; the first
  // readiness read is answered (rounds between) x latency later. Only what is left over is a wait.
  const deploymentRound = sample.rounds.findIndex((round) => round.requests.some((request) => request.purpose === 'object apply (SSA PATCH)' && request.path.includes('/deployments/')))
  const firstReadRound = sample.rounds.findIndex((round) => round.requests.some((request) => request.purpose === 'readiness read'))
  const readinessReads = sample.rounds.filter((round) => round.requests.some((request) => request.purpose === 'readiness read')).length
  const readinessWaitMs = deploymentRound >= 0 && firstReadRound > deploymentRound ? Math.max(0, options.readyDelayMs - (firstReadRound - deploymentRound) * latencyMs) : 0
  // Extra readiness reads (the first found the Deployment not ready) are the engine waiting, not the protocol.
  const roundTrips = sample.rounds.length - Math.max(0, readinessReads - 1)
  const idealMs = Math.ceil(clusters / settings.parallel) * (roundTrips * latencyMs + readinessWaitMs)
  const sortedOf = (values: number[]) => [...values].sort((a, b) => a - b)
  const spread = (values: number[]) => {
    const sorted = sortedOf(values)
    return { min: sorted[0] ?? 0, median: percentile(sorted, 50), max: sorted.at(-1) ?? 0 }
  }
  const spans = sortedOf(perCluster.map((entry) => entry.readyAt - entry.firstAt))
  // Hand-over: the k-th cluster to start (k >= P) took the slot the (k - P)-th ready cluster freed.
  const starts = sortedOf(perCluster.map((entry) => entry.firstAt))
  const readies = sortedOf(perCluster.map((entry) => entry.readyAt))
  const handOvers = sortedOf(starts.slice(settings.parallel).map((start, index) => start - readies[index]!))

  const firstRequestMs = starts[0]! - postedAt
  const result: RunResult = {
    ...settings,
    clusters,
    wallMs,
    firstRequestMs,
    idealMs,
    ratio: wallMs / idealMs,
    roundTrips,
    sampleCluster: sample.name,
    rounds: sample.rounds,
    breakdown,
    readinessWaitMs,
    roundTripsAll: spread(perCluster.map((entry) => entry.rounds.length)),
    requestsPerCluster: spread(perCluster.map((entry) => entry.requests.length)),
    clusterSpanMs: { p50: percentile(spans, 50), p90: percentile(spans, 90), max: spans.at(-1) ?? 0, mean: mean(spans) },
    lanesBusyMs: spans.reduce((sum, span) => sum + span, 0) / Math.min(settings.parallel, clusters),
    handOverMs: { mean: mean(handOvers), p90: percentile(handOvers, 90), max: handOvers.at(-1) ?? 0 },
    helmRenders: renders,
    expectedRenders: settings.clusterValues ? clusters : 1,
    helmProcessCpuMs,
    engineCpuMs,
    fleetCpuMs,
    ...(otherCores !== undefined ? { otherCores } : {}),
    tlsHandshakes: stats1.tlsConnections - stats0.tlsConnections,
    apiRequests: stats1.requests - stats0.requests,
    eventLoopDelayMs: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 },
    rssAfterBytes,
    uninstallMs: 0,
    polls,
    pollingMs,
    helmFloorMs: helmProcessCpuMs / Math.min(os.availableParallelism(), options.helmConcurrency),
    window: { fromUs, toUs },
  }

  // What the engine put on the clusters: the chart's three objects and Helm's release record, values included.
  const held = await fleet.objects(NAMESPACE)
  const wrong: string[] = []
  for (const cluster of fleet.clusters) {
    const objects = held[cluster.name] ?? []
    const names = objects.map((object) => `${object.kind}/${object.name}`).sort()
    const expected = ['ConfigMap/web-settings', 'Deployment/web', `Secret/sh.helm.release.v1.${RELEASE}.v1`, 'Service/web']
    const settingsMap = objects.find((object) => object.kind === 'ConfigMap')?.data
    const expectedCluster = settings.clusterValues ? cluster.name : 'unknown'
    // The double's Deployment controller makes a ReplicaSet and Pods of its own: not the engine's.
    const engines = names.filter((name) => !name.startsWith('ReplicaSet/') && !name.startsWith('Pod/'))
    if (JSON.stringify(engines) !== JSON.stringify(expected) || settingsMap?.cluster !== expectedCluster || settingsMap?.greeting !== `hello from run ${settings.label}`) {
      wrong.push(`${cluster.name}: ${engines.join(', ')} (ConfigMap data ${JSON.stringify(settingsMap)})`)
    }
  }
  if (wrong.length > 0) throw new Error(`run ${settings.label}: ${wrong.length} cluster(s) do not hold what the release should have put there, e.g.\n  ${wrong.slice(0, 3).join('\n  ')}`)

  // Uninstall, and wait until the release is gone (every cluster cleaned).
  const deleteStarted = performance.now()
  await call(app, 'DELETE', `/api/v1/releases/${NAMESPACE}/${RELEASE}`, 202)
  for (;;) {
    const gone = await app.inject({ method: 'GET', url: `/api/v1/releases/${NAMESPACE}/${RELEASE}`, headers: auth })
    if (gone.statusCode === 404) break
    if (performance.now() - deleteStarted > options.runTimeoutMs) throw new Error(`run ${settings.label}: the release was not gone ${options.runTimeoutMs / 1000} s after DELETE: ${gone.body.slice(0, 400)}`)
    await sleep(options.pollMs)
  }
  result.uninstallMs = performance.now() - deleteStarted
  const left = Object.entries(await fleet.objects(NAMESPACE)).filter(([, objects]) => objects.some((object) => !['ReplicaSet', 'Pod'].includes(object.kind)))
  if (left.length > 0) throw new Error(`run ${settings.label}: after the uninstall ${left.length} cluster(s) still hold objects in ${NAMESPACE}, e.g. ${left[0]![0]}: ${left[0]![1].map((object) => `${object.kind}/${object.name}`).join(', ')}`)
  return result
}

// --- the benchmark ----------------------------------------------------------------------------------

const REGIONS = ['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south']

async function main(): Promise<void> {
  const clusterCount = envNumber('BENCH_CLUSTERS', 200, { min: 1, max: 2000, integer: true })
  const latencyMs = envNumber('BENCH_LATENCY_MS', 50, { min: 1, integer: true })
  const readyDelayMs = envNumber('BENCH_READY_DELAY_MS', 20, { min: 0, integer: true })
  const parallels = envList('BENCH_PARALLEL', '10,50')
  const [clusterValuesParallel] = envList('BENCH_CLUSTER_VALUES_PARALLEL', '50', { min: 0 })
  const keepAliveSeconds = envNumber('BENCH_SERVER_KEEPALIVE_SECONDS', 5, { min: 1, max: 3600, integer: true })
  const reconcileIntervalSeconds = envNumber('BENCH_RECONCILE_INTERVAL_SECONDS', 0.2, { min: 0 })
  const requestTimeoutSeconds = envNumber('BENCH_REQUEST_TIMEOUT_SECONDS', 10, { min: 1, integer: true })
  const readyTimeoutSeconds = envNumber('BENCH_READY_TIMEOUT_SECONDS', 120, { min: 1, integer: true })
  const pollMs = envNumber('BENCH_POLL_MS', 250, { min: 10, integer: true })
  const runTimeoutSeconds = envNumber('BENCH_RUN_TIMEOUT_SECONDS', 180, { min: 10, integer: true })
  const quietCores = envNumber('BENCH_QUIET_CORES', 0.25, { min: 0 })
  const quietWait = envNumber('BENCH_QUIET_WAIT', 30, { min: 0 })
  const cpuProf = process.env.BENCH_CPU_PROF === '1'
  const waitQuiet = async (before: string) => {
    if (quietWait <= 0) return
    await waitForQuiet(quietCores, quietWait, (cores) => log(`  waiting (up to ${quietWait} s) for a quiet machine before ${before}: other processes use ${fmt(cores, 2)} cores`))
  }
  const runs: RunSettings[] = [
    ...parallels.map((parallel) => ({ label: `P${parallel}`, parallel, clusterValues: false })),
    ...(clusterValuesParallel ? [{ label: `P${clusterValuesParallel}-cluster-values`, parallel: clusterValuesParallel, clusterValues: true }] : []),
  ]
  if (runs.length === 0) throw new SetupError('nothing to run: BENCH_PARALLEL and BENCH_CLUSTER_VALUES_PARALLEL are both empty')
  const loadBefore = os.loadavg()
  const revision = await engineRevision(REPO, ['src', 'migrations', 'package.json', 'package-lock.json'])
  const helmBinary = await helmPath()
  const helmVersion = (await runTracked('helm version', helmBinary, ['version', '--short'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir() } })).trim()

  // --- the doubles ------------------------------------------------------------------------------
  let started = performance.now()
  log(`starting ${clusterCount} Kubernetes cluster doubles (object store with server-side apply, TLS, bearer token, ${latencyMs} ms per answer, ready ${readyDelayMs} ms after a change) in a child process`)
  const fleet = await startFleet({ clusters: clusterCount, latencyMs, readyDelayMs, keepAliveSeconds })
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
  const tmp = await scope.makeTemp('slipway-bench-releases-')
  const folders = { dataDir: path.join(tmp, 'var'), contentDir: path.join(tmp, 'content') }
  copySampleContent(folders.contentDir)
  running = await startTestEngine({
    ...folders,
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_HELM_BINARY: helmBinary,
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
      SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
      SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: String(reconcileIntervalSeconds),
      SLIPWAY_RELEASES_REQUEST_TIMEOUT_SECONDS: String(requestTimeoutSeconds),
    },
  })
  await running.engine.start()
  const app = running.engine.app
  const helmConcurrency = running.config.releases.helmConcurrency
  log(`engine started in process in ${fmt((performance.now() - started) / 1000, 1)} s (data in ${folders.dataDir}; ${helmVersion}, ${helmConcurrency} helm processes at once)`)

  // --- registration and the chart ---------------------------------------------------------------
  started = performance.now()
  for (const [index, cluster] of fleet.clusters.entries()) {
    await call(app, 'POST', '/api/v1/clusters', 201, {
      name: cluster.name,
      labels: { fleet: 'edge', region: REGIONS[index % REGIONS.length]! },
      server: cluster.url,
      ca_bundle: fleet.caPem,
      credentials: { token: cluster.token },
    })
  }
  const registrationSeconds = (performance.now() - started) / 1000
  log(`registered ${clusterCount} clusters in ${fmt(registrationSeconds, 2)} s`)
  const { payload, headers } = await multipartBody({}, { chart: { name: 'web-1.0.0.tgz', bytes: await packageChart(webChart('1.0.0')) } })
  const uploaded = await app.inject({ method: 'POST', url: '/api/v1/charts', headers: { ...auth, ...headers }, payload })
  if (uploaded.statusCode !== 201) throw new Error(`chart upload answered ${uploaded.statusCode}: ${uploaded.body.slice(0, 600)}`)

  // --- the runs ---------------------------------------------------------------------------------
  let profiler: Session | undefined
  let profiledSpawnUs = 0
  if (cpuProf) {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.start')
    profiledSpawnUs = nowUs()
  }
  const results: RunResult[] = []
  for (const settings of runs) {
    await waitQuiet(`run ${settings.label}`)
    // Every run starts on closed connections, as a release does minutes after the last one (undici keeps an
    // idle connection a few seconds), whatever the quiet wait took.
    await fleet.closeIdle()
    await sleep(200)
    log(`run ${settings.label}: install on ${clusterCount} clusters, max_parallel ${settings.parallel}, cluster_values ${settings.clusterValues}`)
    const result = await runInstall(app, fleet, settings, { latencyMs, readyDelayMs, readyTimeoutSeconds, pollMs, runTimeoutMs: runTimeoutSeconds * 1000, helmConcurrency })
    results.push(result)
    log(
      `  ${fmt(result.wallMs)} ms (ideal ${fmt(result.idealMs)} ms, R = ${result.roundTrips}, ratio ${fmt(result.ratio, 2)}), ${result.helmRenders} helm render(s), ` +
        `engine CPU ${fmt(result.engineCpuMs)} ms, doubles ${fmt(result.fleetCpuMs)} ms, helm ${fmt(result.helmProcessCpuMs)} ms; uninstalled in ${fmt(result.uninstallMs)} ms`,
    )
  }
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop')
    profiler.disconnect()
    mkdirSync(RESULTS_DIR, { recursive: true })
    writeFileSync(path.join(RESULTS_DIR, 'releases-engine.cpuprofile'), JSON.stringify(profile))
  }
  await closeEngine()
  const fleetMemory = processMemory(fleet.entry.child.pid!)
  const fleetCpuSeconds = treeCpuSeconds(fleet.entry.child.pid!)

  // --- report -----------------------------------------------------------------------------------
  const lines: string[] = []
  lines.push('')
  lines.push(
    `Helm release fan-out: ${fmt(clusterCount)} cluster doubles (TLS, bearer token, ${latencyMs} ms per answer, workloads ready ${readyDelayMs} ms after a change), ` +
      `chart web (ConfigMap, Service, Deployment), engine in this process, ${helmVersion}`,
  )
  lines.push(`Registration: ${fmt(clusterCount)} clusters in ${fmt(registrationSeconds, 2)} s`)
  lines.push('')
  const header = ['run', 'P', 'wall ms', 'R', 'ideal ms', 'ratio', 'first req ms', 'span p50/p90/max ms', 'lanes busy ms', 'hand-over mean/p90 ms', 'renders', 'engine CPU ms', 'engine busy', 'helm CPU ms', 'doubles CPU ms', 'other CPU', 'TLS hs/cluster', 'requests', 'loop p99/max ms', 'uninstall ms']
  const rows = results.map((result) => [
    result.label,
    String(result.parallel),
    fmt(result.wallMs),
    String(result.roundTrips),
    fmt(result.idealMs),
    fmt(result.ratio, 2),
    fmt(result.firstRequestMs),
    `${fmt(result.clusterSpanMs.p50)}/${fmt(result.clusterSpanMs.p90)}/${fmt(result.clusterSpanMs.max)}`,
    fmt(result.lanesBusyMs),
    `${fmt(result.handOverMs.mean)}/${fmt(result.handOverMs.p90)}`,
    `${result.helmRenders}${result.helmRenders !== result.expectedRenders ? ` (!= ${result.expectedRenders})` : ''}`,
    fmt(result.engineCpuMs),
    `${fmt((100 * result.engineCpuMs) / result.wallMs)}%`,
    fmt(result.helmProcessCpuMs),
    fmt(result.fleetCpuMs),
    result.otherCores === undefined ? '-' : `${fmt(result.otherCores * 100)}%${result.otherCores > NOISY_CORES ? ' !' : ''}`,
    fmt(result.tlsHandshakes / result.clusters, 2),
    fmt(result.apiRequests),
    `${fmt(result.eventLoopDelayMs.p99, 1)}/${fmt(result.eventLoopDelayMs.max, 1)}`,
    fmt(result.uninstallMs),
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  const row = (cells: string[]) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')
  lines.push(row(header))
  for (const cells of rows) lines.push(row(cells))
  lines.push('')
  lines.push(`Ideal = ceil(${clusterCount} / P) x (R x ${latencyMs} ms + readiness wait); ratio = wall / ideal. Wall = POST /api/v1/releases to the latest ready_at.`)
  lines.push('"first req" = POST to the first request a double received (the install\'s check render, the reconciler\'s trigger, its own render).')
  lines.push('"span" = one cluster, from its first request to its ready_at; "lanes busy" = sum of spans / P (the run if no slot ever waited between clusters).')
  lines.push('"hand-over" = a slot freed (ready_at) to the next cluster\'s first request.')
  lines.push('"engine CPU" = this process (the engine, plus this script\'s polling); "helm CPU" = the helm processes the engine ran (reaped children).')
  lines.push(`"other CPU" = every other process on the machine during the run (100% = one core; "!" above ${NOISY_CORES * 100}%: noisy row).`)
  lines.push('"TLS hs/cluster" = TLS connections the doubles accepted during the run, per cluster (each a full handshake on both sides).')
  for (const result of results.filter((candidate) => candidate.helmRenders > 1)) {
    lines.push(
      `${result.label}: ${result.helmRenders} helm renders, ${fmt(result.helmProcessCpuMs / result.helmRenders)} ms of helm CPU each; with ${fmt(Math.min(os.availableParallelism(), helmConcurrency))} at once ` +
        `(min(cores, helm processes)) they take at least ${fmt(result.helmFloorMs)} ms: ratio to max(ideal, that) ${fmt(result.wallMs / Math.max(result.idealMs, result.helmFloorMs), 2)}`,
    )
  }
  for (const result of results) {
    lines.push(`${result.label}: ${result.polls} polls of GET /api/v1/releases/${NAMESPACE}/${RELEASE} took ${fmt(result.pollingMs)} ms of the run (part of "engine CPU")`)
  }
  for (const result of results) {
    lines.push('')
    lines.push(
      `${result.label}: R = ${result.roundTrips} sequential round trips for ${result.sampleCluster} (every cluster: ${result.roundTripsAll.min}-${result.roundTripsAll.max} rounds, ` +
        `${result.requestsPerCluster.min}-${result.requestsPerCluster.max} requests); readiness wait ${fmt(result.readinessWaitMs)} ms; per round:`,
    )
    for (const [index, round] of result.rounds.entries()) {
      lines.push(`  ${String(index + 1).padStart(2)}. +${fmt(round.atMs).padStart(5)} ms  ${round.requests.map((request) => `${request.method} ${request.path} ${request.status} (${request.purpose})`).join('  |  ')}`)
    }
    lines.push(`  by purpose: ${Object.entries(result.breakdown).map(([purpose, count]) => `${purpose} ${count}`).join(', ')}`)
  }
  lines.push('')
  lines.push(`Doubles' process: ${fleetMemory ? `${mb(fleetMemory.rssBytes)} RSS` : 'gone'}, ${fleetCpuSeconds !== undefined ? `${fmt(fleetCpuSeconds, 1)} s CPU in all` : ''}`)
  process.stdout.write(lines.join('\n') + '\n')

  const resultsDocument = {
    benchmark: 'releases',
    date: new Date().toISOString(),
    machine: machineFacts(loadBefore),
    versions: { node: process.version, helm: helmVersion },
    engine: revision,
    settings: {
      clusters: clusterCount,
      latencyMs,
      readyDelayMs,
      runs,
      serverKeepAliveSeconds: keepAliveSeconds,
      reconcileIntervalSeconds,
      requestTimeoutSeconds,
      readyTimeoutSeconds,
      helmConcurrency,
      pollMs,
      quietBeforeRun: { maxOtherCores: quietCores, maxWaitSeconds: quietWait },
      engine: 'in the benchmark process (test/helpers/engine.ts startTestEngine), admin calls through app.inject',
      doubles: 'test/fakes/kube-cluster.ts in a child process (bench/lib/kube-fleet-child.ts, FLEET_KIND=cluster), TLS with one shared serving certificate, bearer token per cluster',
      chart: 'test/helpers/charts.ts webChart 1.0.0 (ConfigMap, Service, Deployment)',
      engineCpuProfile: cpuProf,
    },
    fleetStartSeconds,
    registrationSeconds,
    runs: results.map(({ window: _window, ...result }) => result),
    doublesProcess: { rssBytes: fleetMemory?.rssBytes, hwmBytes: fleetMemory?.hwmBytes, cpuSeconds: fleetCpuSeconds },
  }
  await writeResults(RESULTS_DIR, 'releases', resultsDocument, log)

  if (cpuProf) {
    const file = path.join(RESULTS_DIR, 'releases-engine.cpuprofile')
    const out = windowedProfileLines({
      file,
      startedUs: profiledSpawnUs,
      sameClock: { from: -5, to: 5 },
      windows: results.map((result) => [`Engine CPU profile, run ${result.label}`, result.window]),
      whole: 'Engine CPU profile, all runs',
      skewNote: 'profile',
      heading: (title, summary) => `${title}: ${fmt(summary.totalMs, 0)} ms busy; self time by origin:`,
      top: { origins: 12, functions: 15, inclusive: 10 },
    })
    out.push(...profileFooter(file))
    process.stdout.write(out.join('\n') + '\n')
  }
}


runBenchmark(scope, 'releases', main)
