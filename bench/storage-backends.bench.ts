/**
 * The store's two backends side by side: the same engine (a real `src/main.ts` process) on its
 * embedded SQLite file, then on a PostgreSQL database, takes the first discovery report of N
 * simulated machines on `POST /discovery` (C connections), then one scheduling pass places every
 * machine into clusters (`POST /api/v1/scheduler/run`). Prints reports/s and machines/s for both
 * and the ratio.
 *
 *   npx tsx bench/storage-backends.bench.ts          (or: npm run bench:storage)
 *   BENCH_MACHINES=500 npx tsx bench/storage-backends.bench.ts   (quick run)
 *
 * PostgreSQL: a private server (test/helpers/postgres.ts: the newest installed version, initdb, loopback,
 * a free port, stopped by PID at the end) with fsync on and synchronous_commit=off, the durability SQLite's WAL with
 * synchronous=NORMAL gives (a committed write survives a process crash, the last ones may be lost on
 * power loss); or BENCH_POSTGRES_URL, a database to use as is (it must be empty).
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { discoveryFleet } from './lib/discovery-fixtures.ts'
import { requestJson, runPostLoad, type PostLoadResult } from './lib/http-load.ts'
import { BenchScope, SetupError, engineRevision, envNumber, machineFacts, runBenchmark, writeResults } from './lib/bench-scope.ts'
import { freePort, spawnTracked, stopProcess, waitForHttp } from './lib/processes.ts'
import { fmt, log } from './lib/report.ts'
import { startPrivatePostgres, withAdminClient } from '../test/helpers/postgres.ts'
import os from 'node:os'
import { sleep } from '../test/helpers/wait.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = path.join(REPO, 'bench', 'results')

const scope = new BenchScope()

type Backend = 'sqlite' | 'postgres'

interface BackendResult {
  backend: Backend
  discovery: PostLoadResult
  scheduling: { machines: number; wallSeconds: number; machinesPerSecond: number; assignments: number; clusters: number }
}

/** Clusters of 3 control-plane members and up to 97 nodes, plus one for the rest: exactly `machines` places. */
function clusterPlan(machines: number) {
  const flavors = [
    { name: 'bench-hundred', control_plane_count: 3, nodes_min: 0, nodes_max: 97 },
    { name: 'bench-rest', control_plane_count: 1, nodes_min: 0, nodes_max: Math.max(0, (machines % 100) - 1) },
  ]
  const clusters = Array.from({ length: Math.floor(machines / 100) }, (_, index) => ({ name: `c${String(index + 1).padStart(4, '0')}`, flavor: 'bench-hundred' }))
  if (machines % 100 > 0) clusters.push({ name: 'c-rest', flavor: 'bench-rest' })
  return { flavors: machines % 100 > 0 ? flavors : flavors.slice(0, 1), clusters }
}

async function measure(backend: Backend, tmp: string, databaseUrl: string, bodies: Buffer[], uuids: string[], connections: number): Promise<BackendResult> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const configFile = path.join(tmp, `slipway-${backend}.yaml`)
  // An explicit, empty config file: a slipway.yaml in the repo must not change what is measured.
  await fs.writeFile(configFile, '{}\n')
  const assetsDir = path.join(tmp, 'assets')
  await fs.mkdir(assetsDir, { recursive: true })
  const token = randomBytes(24).toString('base64url')
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SLIPWAY_')))
  Object.assign(env, {
    NODE_ENV: 'production',
    SLIPWAY_CONFIG: configFile,
    SLIPWAY_HTTP_HOST: '127.0.0.1',
    SLIPWAY_HTTP_PORT: String(port),
    SLIPWAY_PROXY_ENABLED: 'false',
    SLIPWAY_DNS_ENABLED: 'false',
    SLIPWAY_DATA_DIR: path.join(tmp, `var-${backend}`),
    SLIPWAY_CONTENT_PROFILES_DIR: path.join(REPO, 'profiles'),
    SLIPWAY_CONTENT_IGNITION_DIR: path.join(REPO, 'ignition'),
    SLIPWAY_CONTENT_IPXE_DIR: path.join(REPO, 'ipxe'),
    SLIPWAY_CONTENT_GENERIC_DIR: path.join(REPO, 'generic'),
    SLIPWAY_CONTENT_ASSETS_DIR: assetsDir,
    SLIPWAY_LOG_LEVEL: 'warn',
    SLIPWAY_AUTH_ADMIN_TOKEN: token,
    // The load comes from one address, as from machines behind one NAT: more reports a minute than one machine sends.
    SLIPWAY_MACHINES_DISCOVERY_REPORTS_PER_MINUTE: '1000000',
    // Only the measured pass places machines.
    SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
    ...(backend === 'postgres' ? { SLIPWAY_DATABASE_DRIVER: 'postgres', SLIPWAY_DATABASE_URL: databaseUrl } : {}),
  })
  log(`\n${backend}: starting the engine on ${base}`)
  const engine = spawnTracked(`engine (${backend})`, process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: REPO, env })
  try {
    await waitForHttp(`${base}/healthz`, engine, 120_000)
    const api = async (method: string, route: string, body?: unknown, expect = 200) => {
      const answer = await requestJson(base, method, route, { token, ...(body !== undefined ? { body } : {}) })
      if (answer.status !== expect) throw new SetupError(`${backend}: ${method} ${route} answered ${answer.status} (expected ${expect}): ${answer.text.slice(0, 600)}`)
      return answer
    }

    log(`${backend}: ${fmt(bodies.length)} first discovery reports over ${connections} connections ...`)
    const discovery = await runPostLoad({
      baseUrl: base,
      path: '/discovery',
      bodies,
      connections,
      check: (index, status, body) => {
        if (status !== 200) return `status ${status}: ${body.slice(0, 200)}`
        const answer = JSON.parse(body) as { 'new-discovery'?: boolean; uuid?: string }
        return answer['new-discovery'] === true && answer.uuid === uuids[index] ? undefined : `not a new machine ${uuids[index]}: ${body.slice(0, 200)}`
      },
    })
    if (discovery.failures > 0) throw new SetupError(`${backend}: ${discovery.failures} of ${discovery.requests} discovery answers were wrong:\n  ${discovery.failureExamples.join('\n  ')}`)
    log(`  ${fmt(discovery.requestsPerSecond)} reports/s, p50 ${fmt(discovery.latencyMs.p50, 2)} ms, p99 ${fmt(discovery.latencyMs.p99, 2)} ms`)

    // The reports trigger a debounced background pass: let it run (it finds no cluster) before any exists.
    await sleep(2000)
    const plan = clusterPlan(bodies.length)
    for (const flavor of plan.flavors) await api('POST', '/api/v1/flavors', flavor, 201)
    for (const cluster of plan.clusters) await api('POST', '/api/v1/clusters', cluster, 201)
    const waiting = ((await api('GET', '/api/v1/machines?state=discovered')).json as unknown[]).length
    if (waiting !== bodies.length) throw new SetupError(`${backend}: ${waiting} of ${bodies.length} machines are unplaced before the measured pass (a background pass ran)`)
    log(`${backend}: one scheduling pass over ${fmt(bodies.length)} machines into ${plan.clusters.length} clusters ...`)
    const started = process.hrtime.bigint()
    const answer = await api('POST', '/api/v1/scheduler/run')
    const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9
    const assignments = (answer.json as { assignments: unknown[] }).assignments.length
    if (assignments !== bodies.length) throw new SetupError(`${backend}: the pass placed ${assignments} of ${bodies.length} machines`)
    log(`  ${fmt(wallSeconds, 2)} s: ${fmt(assignments / wallSeconds)} machines/s`)
    return { backend, discovery, scheduling: { machines: bodies.length, wallSeconds, machinesPerSecond: assignments / wallSeconds, assignments, clusters: plan.clusters.length } }
  } finally {
    await stopProcess(engine)
  }
}

async function main(): Promise<void> {
  const machines = envNumber('BENCH_MACHINES', 2000, { min: 100, max: 100_000, integer: true })
  const connections = envNumber('BENCH_CONNECTIONS', 16, { min: 1, max: 512, integer: true })
  const loadAverageAtStart = os.loadavg()
  const tmp = await scope.makeTemp('slipway-bench-storage-')
  const fleet = discoveryFleet(machines)
  const bodies = fleet.map((machine) => Buffer.from(JSON.stringify(machine.document)))
  const uuids = fleet.map((machine) => machine.uuid)

  let postgresUrl = process.env.BENCH_POSTGRES_URL ?? ''
  let postgresVersion = 'external'
  if (!postgresUrl) {
    const server = await startPrivatePostgres({ durability: 'durable' }).catch((error: Error) => {
      throw new SetupError(`${error.message}; or set BENCH_POSTGRES_URL`)
    })
    scope.onCleanup(() => {}, () => server.stop())
    await withAdminClient(server, (client) => client.query('create database slipway_bench'))
    const url = new URL(server.adminUrl)
    url.pathname = '/slipway_bench'
    postgresUrl = url.toString()
    postgresVersion = server.version
  }

  const results: BackendResult[] = []
  for (const backend of ['sqlite', 'postgres'] as const) results.push(await measure(backend, tmp, postgresUrl, bodies, uuids, connections))
  const [sqlite, postgres] = results as [BackendResult, BackendResult]

  const ratio = (a: number, b: number) => `${fmt(a / b, 2)}x`
  const lines = [
    '',
    `Storage backends: ${fmt(machines)} machines, ${connections} connections, PostgreSQL ${postgresVersion} (synchronous_commit=off unless external)`,
    `  ${''.padEnd(34)} ${'SQLite'.padStart(10)} ${'PostgreSQL'.padStart(12)} ${'PG / SQLite'.padStart(12)}`,
    `  ${'discovery, first report (/s)'.padEnd(34)} ${fmt(sqlite.discovery.requestsPerSecond).padStart(10)} ${fmt(postgres.discovery.requestsPerSecond).padStart(12)} ${ratio(postgres.discovery.requestsPerSecond, sqlite.discovery.requestsPerSecond).padStart(12)}`,
    `  ${'discovery p99 latency (ms)'.padEnd(34)} ${fmt(sqlite.discovery.latencyMs.p99, 1).padStart(10)} ${fmt(postgres.discovery.latencyMs.p99, 1).padStart(12)} ${ratio(postgres.discovery.latencyMs.p99, sqlite.discovery.latencyMs.p99).padStart(12)}`,
    `  ${'scheduling pass (machines/s)'.padEnd(34)} ${fmt(sqlite.scheduling.machinesPerSecond).padStart(10)} ${fmt(postgres.scheduling.machinesPerSecond).padStart(12)} ${ratio(postgres.scheduling.machinesPerSecond, sqlite.scheduling.machinesPerSecond).padStart(12)}`,
    `  ${'scheduling pass (s)'.padEnd(34)} ${fmt(sqlite.scheduling.wallSeconds, 2).padStart(10)} ${fmt(postgres.scheduling.wallSeconds, 2).padStart(12)} ${ratio(postgres.scheduling.wallSeconds, sqlite.scheduling.wallSeconds).padStart(12)}`,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  await writeResults(
    RESULTS_DIR,
    'storage-backends',
    { at: new Date().toISOString(), machine: machineFacts(loadAverageAtStart), revision: await engineRevision(REPO), machines, connections, postgresVersion, results },
    log,
  )
}

runBenchmark(scope, 'storage backends', main)
