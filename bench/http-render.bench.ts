/**
 * Slipway HTTP render benchmark: the machine-facing `/ipxe` and `/ignition` endpoints of a real
 * engine process with 1,000 groups, side by side with nginx serving byte-identical responses as
 * static files. See bench/README.md for what the numbers mean.
 *
 *   npx tsx bench/http-render.bench.ts          (or: npm run bench)
 *   BENCH_DURATION=3 BENCH_WARMUP=1 npm run bench   (quick run)
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { summarizeCpuProfile } from './lib/cpuprofile.ts'
import { waitForQuiet, withCpuUsage, type CpuUsage } from './lib/cpu-usage.ts'
import { requestSets, writeContent, type BenchRequest } from './lib/fixtures.ts'
import { NGINX, nginxVersion, startNginx } from './lib/nginx.ts'
import { BenchScope, SetupError, engineRevision, envNumber, keepEngineProfile, machineFacts, runBenchmark, writeResults } from './lib/bench-scope.ts'
import { freePort, spawnTracked, stopProcess, waitForHttp, type Tracked } from './lib/processes.ts'
import { fmt, log, profileFooter, profileLines } from './lib/report.ts'
import { WRK, runWrk, writeWrkScript, wrkVersion, type LoadResult } from './lib/wrk.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = path.join(REPO, 'bench', 'results')

const SCENARIOS = ['ipxe', 'ignition', 'mixed'] as const
/** Outside CPU use during a run above which its row is flagged as noisy. */
const NOISY_CORES = 0.2
type Scenario = (typeof SCENARIOS)[number]
type TargetId = 'engine' | 'nginx-1' | 'nginx-auto'

interface Measurement {
  scenario: Scenario
  target: TargetId
  label: string
  informational: boolean
  load: LoadResult
  /** Every run of this scenario and target, when BENCH_RUNS > 1; `load` is the median one. */
  runs: number[]
  cpu: CpuUsage
}

const scope = new BenchScope()

async function main(): Promise<void> {
  const duration = envNumber('BENCH_DURATION', 10, { min: 1 })
  const warmup = envNumber('BENCH_WARMUP', 2, { min: 0 })
  const connections = envNumber('BENCH_CONNECTIONS', 50, { min: 1, integer: true })
  const threads = envNumber('BENCH_WRK_THREADS', 1, { min: 1, integer: true })
  const groupCount = envNumber('BENCH_GROUPS', 1000, { min: 2, integer: true })
  const urlCount = envNumber('BENCH_URLS', 200, { min: 2, integer: true })
  const nginxAuto = process.env.BENCH_NGINX_AUTO !== '0'
  const runs = envNumber('BENCH_RUNS', 1, { min: 1, integer: true })
  const cpuProf = process.env.BENCH_CPU_PROF === '1'
  const quietCores = envNumber('BENCH_QUIET_CORES', 0.25, { min: 0 })
  const quietWait = envNumber('BENCH_QUIET_WAIT', 30, { min: 0 })
  const loadBefore = os.loadavg()
  if (threads > connections) throw new SetupError('BENCH_WRK_THREADS must not exceed BENCH_CONNECTIONS')

  for (const [what, file] of [['nginx', NGINX], ['wrk', WRK]] as const) {
    try {
      await fs.access(file, constants.X_OK)
    } catch {
      throw new SetupError(`${what} not found at ${file} (install it, or set BENCH_${what.toUpperCase()})`)
    }
  }

  // Which engine code is measured: other work may land in the tree between runs.
  const revision = await engineRevision(REPO, ['src', 'package.json', 'package-lock.json'])

  const tmp = await scope.makeTemp('slipway-bench-')
  log(`temp folder ${tmp}`)

  // --- content and engine -------------------------------------------------------------------------
  const { dirs, fleet } = await writeContent(REPO, tmp, groupCount)
  const sets = requestSets(fleet, urlCount)
  const enginePort = await freePort()
  const engineBase = `http://127.0.0.1:${enginePort}`
  const configFile = path.join(tmp, 'slipway.yaml')
  // An explicit, empty config file: a slipway.yaml in the repo must not change what is measured.
  await fs.writeFile(configFile, '{}\n')
  const profDir = path.join(tmp, 'cpu-prof')
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SLIPWAY_')))
  Object.assign(env, {
    NODE_ENV: 'production',
    SLIPWAY_CONFIG: configFile,
    SLIPWAY_HTTP_HOST: '127.0.0.1',
    SLIPWAY_HTTP_PORT: String(enginePort),
    SLIPWAY_PROXY_ENABLED: 'false',
    SLIPWAY_DNS_ENABLED: 'false',
    SLIPWAY_DATA_DIR: path.join(tmp, 'var'),
    SLIPWAY_CONTENT_PROFILES_DIR: dirs.profilesDir,
    SLIPWAY_CONTENT_IGNITION_DIR: dirs.ignitionDir,
    SLIPWAY_CONTENT_IPXE_DIR: dirs.ipxeDir,
    SLIPWAY_CONTENT_GENERIC_DIR: dirs.genericDir,
    SLIPWAY_CONTENT_ASSETS_DIR: dirs.assetsDir,
    SLIPWAY_LOG_LEVEL: 'warn',
    SLIPWAY_AUTH_ADMIN_TOKEN: randomBytes(24).toString('base64url'), // 32 characters
  })
  const nodeArgs = [...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), '--import', 'tsx', 'src/main.ts']
  log(`starting the engine on ${engineBase} (${groupCount} groups)`)
  const started = Date.now()
  const engine = spawnTracked('engine', process.execPath, nodeArgs, { cwd: REPO, env })
  await waitForHttp(`${engineBase}/healthz`, engine, 120_000)
  log(`engine ready in ${fmt((Date.now() - started) / 1000, 1)} s`)

  // --- fetch every response once; nginx serves the same bytes --------------------------------------
  const www = path.join(tmp, 'www')
  const staticPath = new Map<string, string>()
  const bodies = new Map<string, Buffer>()
  const contentTypes: Record<string, string> = {}
  const sizes: Record<string, number[]> = { ipxe: [], ignition: [] }
  for (const endpoint of ['ipxe', 'ignition'] as const) await fs.mkdir(path.join(www, 'r', endpoint), { recursive: true })
  const unique = new Map<string, BenchRequest>()
  for (const scenario of SCENARIOS) for (const request of sets[scenario]) unique.set(request.url, request)
  const counters = { ipxe: 0, ignition: 0 }
  for (const request of unique.values()) {
    const response = await fetch(`${engineBase}${request.url}`)
    const body = Buffer.from(await response.arrayBuffer())
    if (response.status !== 200) throw new SetupError(`engine answered ${response.status} to ${request.url}: ${body.toString('utf8').slice(0, 500)}`)
    if (request.endpoint === 'ipxe' && !body.toString('utf8').startsWith('#!ipxe')) throw new SetupError(`${request.url} is not an iPXE script`)
    if (request.endpoint === 'ignition') JSON.parse(body.toString('utf8'))
    contentTypes[request.endpoint] = response.headers.get('content-type') ?? ''
    const file = `/r/${request.endpoint}/${counters[request.endpoint]++}`
    await fs.writeFile(path.join(www, file), body)
    staticPath.set(request.url, file)
    bodies.set(file, body)
    sizes[request.endpoint]!.push(body.length)
  }
  log(`fetched ${unique.size} distinct responses from the engine`)

  // nginx's workers run as nobody when this runs as root: let them read the document root (only).
  if (process.getuid?.() === 0) {
    // Traverse-only on the temp folder; the engine's data stays private.
    await fs.chmod(path.join(tmp, 'var'), 0o700).catch(() => undefined)
    await fs.chmod(tmp, 0o711)
    for (const dir of [www, path.join(www, 'r'), path.join(www, 'r', 'ipxe'), path.join(www, 'r', 'ignition')]) await fs.chmod(dir, 0o755)
  }

  // --- nginx --------------------------------------------------------------------------------------
  const nginxTargets: { id: TargetId; label: string; entry: Tracked; port: number }[] = []
  const port1 = await freePort()
  nginxTargets.push({ id: 'nginx-1', label: 'nginx (1 worker)', port: port1, entry: await startNginx('nginx-1', { dir: path.join(tmp, 'nginx-1'), root: www, port: port1, workers: 1 }) })
  if (nginxAuto) {
    const portAuto = await freePort()
    nginxTargets.push({
      id: 'nginx-auto',
      label: `nginx (auto: ${os.availableParallelism()} workers)`,
      port: portAuto,
      entry: await startNginx('nginx-auto', { dir: path.join(tmp, 'nginx-auto'), root: www, port: portAuto, workers: 'auto' }),
    })
  }
  const nginxContentTypes: Record<string, string> = {}
  for (const [file, body] of bodies) {
    const response = await fetch(`http://127.0.0.1:${port1}${file}`)
    const served = Buffer.from(await response.arrayBuffer())
    if (response.status !== 200 || !served.equals(body)) throw new SetupError(`nginx does not serve ${file} byte-identically (HTTP ${response.status})`)
    nginxContentTypes[file.split('/')[2]!] = response.headers.get('content-type') ?? ''
  }
  log(`nginx serves all ${bodies.size} responses byte-identically`)

  // --- load ---------------------------------------------------------------------------------------
  const targets = [
    { id: 'engine' as TargetId, label: 'engine (1 node process)', entry: engine, port: enginePort, informational: false, paths: (s: Scenario) => sets[s].map((r) => r.url) },
    ...nginxTargets.map((t) => ({ ...t, informational: t.id !== 'nginx-1', paths: (s: Scenario) => sets[s].map((r) => staticPath.get(r.url)!) })),
  ]
  const measurements: Measurement[] = []
  log(`load: wrk ${threads} thread(s), ${connections} connections, pipelining 1, ${warmup} s warm-up + ${duration} s per run, ${runs} run(s)`)
  for (const scenario of SCENARIOS) {
    const perTarget = new Map<TargetId, { load: LoadResult; cpu: CpuUsage }[]>()
    for (const target of targets) {
      const script = path.join(tmp, `wrk-${scenario}-${target.id}.lua`)
      await writeWrkScript(script, target.paths(scenario))
    }
    // Runs alternate between targets so that a burst of outside load does not hit one target only.
    for (let run = 0; run < runs; run++) {
      for (const target of targets) {
        const options = { baseUrl: `http://127.0.0.1:${target.port}`, script: path.join(tmp, `wrk-${scenario}-${target.id}.lua`), threads, connections }
        if (quietWait > 0) {
          const idle = await waitForQuiet(quietCores, quietWait, (cores) =>
            log(`  other processes use ${fmt(cores * 100)}% of a core; waiting up to ${quietWait} s for a quieter machine`),
          )
          if (idle !== undefined && idle > quietCores) log(`  still ${fmt(idle * 100)}% of a core busy elsewhere; measuring anyway`)
        }
        if (warmup > 0) await runWrk({ ...options, durationSeconds: warmup })
        const { result: load, ...cpu } = await withCpuUsage(target.entry.child.pid!, () => runWrk({ ...options, durationSeconds: duration }))
        if (load.errorCount > 0 || load.requests === 0) {
          throw new SetupError(
            `${target.label}, ${scenario}: ${load.requests} requests with errors ${JSON.stringify(load.errors)} (status = non-2xx/3xx responses)`,
          )
        }
        perTarget.set(target.id, [...(perTarget.get(target.id) ?? []), { load, cpu }])
        log(
          `  ${scenario.padEnd(8)} ${target.label.padEnd(26)} ${fmt(load.requestsPerSecond).padStart(8)} req/s` +
            (cpu.otherCores !== undefined ? `  (other processes: ${fmt(cpu.otherCores * 100)}% of a core)` : ''),
        )
      }
    }
    for (const target of targets) {
      const all = perTarget.get(target.id)!
      const sorted = [...all].sort((a, b) => a.load.requestsPerSecond - b.load.requestsPerSecond)
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!
      measurements.push({
        scenario,
        target: target.id,
        label: target.label,
        informational: target.informational,
        load: median.load,
        cpu: median.cpu,
        runs: all.map((r) => Math.round(r.load.requestsPerSecond)),
      })
    }
  }

  // --- report -------------------------------------------------------------------------------------
  const cpus = os.cpus()
  const [nginxV, wrkV] = await Promise.all([nginxVersion(), wrkVersion()])
  const average = (list: number[]) => (list.length ? Math.round(list.reduce((a, b) => a + b, 0) / list.length) : 0)
  const find = (scenario: Scenario, target: TargetId) => measurements.find((m) => m.scenario === scenario && m.target === target)
  const ratios = Object.fromEntries(
    SCENARIOS.map((scenario) => {
      const engineRps = find(scenario, 'engine')!.load.requestsPerSecond
      const one = find(scenario, 'nginx-1')!.load.requestsPerSecond
      const auto = find(scenario, 'nginx-auto')?.load.requestsPerSecond
      return [scenario, { engineVsNginx1Worker: engineRps / one, ...(auto ? { engineVsNginxAuto: engineRps / auto } : {}) }]
    }),
  ) as Record<Scenario, { engineVsNginx1Worker: number; engineVsNginxAuto?: number }>

  const lines: string[] = []
  lines.push('')
  lines.push(`Slipway HTTP render benchmark: ${groupCount} groups (+ discovery), ${urlCount} URLs per request set`)
  lines.push(`wrk ${threads} thread(s) x ${connections} connections, pipelining 1, ${duration} s per run after ${warmup} s warm-up; all on 127.0.0.1`)
  lines.push(`engine: ${revision.commit ?? 'unknown commit'}${revision.changedFiles.length ? ` + uncommitted changes in ${revision.changedFiles.join(', ')}` : ''}`)
  lines.push(`machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}; node ${process.version}; nginx ${nginxV}; load average at start: ${loadBefore.map((v) => v.toFixed(2)).join(' ')}`)
  lines.push('The engine is ONE Node.js process (one core for JavaScript), so the like-for-like peer is nginx with')
  lines.push('worker_processes 1; the nginx "auto" rows are information only (all cores, as nginx is usually deployed).')
  lines.push(`response sizes: /ipxe ~${average(sizes.ipxe!)} B, /ignition ~${average(sizes.ignition!)} B`)
  lines.push('')
  const header = ['scenario', 'target', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'server CPU', 'wrk CPU', 'other CPU']
  const percent = (cores: number | undefined) => (cores === undefined ? '-' : `${fmt(cores * 100)}%`)
  const noisy = (m: Measurement) => (m.cpu.otherCores ?? 0) > NOISY_CORES
  const rows = measurements.map((m) => [
    m.scenario,
    m.label + (m.informational ? ' *' : ''),
    fmt(m.load.requestsPerSecond),
    fmt(m.load.latencyMs.p50, 2),
    fmt(m.load.latencyMs.p99, 2),
    fmt(m.load.latencyMs.max, 1),
    String(m.load.errorCount),
    percent(m.cpu.serverCores),
    percent(m.cpu.loadGeneratorCores),
    percent(m.cpu.otherCores) + (noisy(m) ? ' !' : ''),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const right = new Set([2, 3, 4, 5, 6, 7, 8, 9])
  const render = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')
  lines.push(render(header))
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '))
  rows.forEach((row, i) => {
    if (i > 0 && measurements[i]!.scenario !== measurements[i - 1]!.scenario) lines.push('')
    lines.push(render(row))
  })
  lines.push('* information only. CPU columns: CPU time / wall time, 100% = one core busy; "other" is every other')
  lines.push('  process on the machine during the run (noise: it should be near 0%).' + (runs > 1 ? ` Each row is the median of ${runs} runs.` : ''))
  if (measurements.some(noisy)) {
    lines.push(`! other processes used more than ${NOISY_CORES * 100}% of a core during this run: its figures are low and less`)
    lines.push('  comparable; rerun on a quiet machine (or with BENCH_RUNS=3 for medians).')
  }
  lines.push('')
  lines.push('Ratio engine / nginx, requests per second:')
  for (const scenario of SCENARIOS) {
    const r = ratios[scenario]
    lines.push(
      `  ${scenario.padEnd(9)} vs nginx 1 worker: ${r.engineVsNginx1Worker.toFixed(3)}` +
        (r.engineVsNginxAuto !== undefined ? `    (vs nginx auto: ${r.engineVsNginxAuto.toFixed(3)})` : ''),
    )
  }
  process.stdout.write(lines.join('\n') + '\n')

  const results = {
    benchmark: 'http-render',
    date: new Date().toISOString(),
    machine: machineFacts(loadBefore),
    versions: { node: process.version, nginx: nginxV, wrk: wrkV },
    engine: revision,
    settings: {
      groups: groupCount,
      urlsPerSet: urlCount,
      distinctResponses: unique.size,
      loadGenerator: 'wrk',
      wrkThreads: threads,
      connections,
      pipelining: 1,
      durationSeconds: duration,
      warmupSeconds: warmup,
      runsPerTarget: runs,
      quietBeforeRun: { maxOtherCores: quietCores, maxWaitSeconds: quietWait },
      engineNodeEnv: 'production',
      engineCpuProfile: cpuProf,
    },
    responses: {
      ipxe: { count: sizes.ipxe!.length, averageBytes: average(sizes.ipxe!), engineContentType: contentTypes.ipxe, nginxContentType: nginxContentTypes.ipxe },
      ignition: {
        count: sizes.ignition!.length,
        averageBytes: average(sizes.ignition!),
        engineContentType: contentTypes.ignition,
        nginxContentType: nginxContentTypes.ignition,
      },
    },
    measurements: measurements.map((m) => ({
      scenario: m.scenario,
      target: m.target,
      label: m.label,
      informational: m.informational,
      requestsPerSecond: Math.round(m.load.requestsPerSecond),
      requests: m.load.requests,
      durationSeconds: m.load.durationSeconds,
      bytesPerSecond: Math.round(m.load.bytesPerSecond),
      latencyMs: m.load.latencyMs,
      errors: m.load.errors,
      allRunsRequestsPerSecond: m.runs,
      cpuCores: { server: m.cpu.serverCores, loadGenerator: m.cpu.loadGeneratorCores, otherProcesses: m.cpu.otherCores },
      machineBusyShare: m.cpu.machineBusy,
      noisy: noisy(m),
    })),
    ratios,
  }
  await writeResults(RESULTS_DIR, 'http-render', results, log)

  if (cpuProf) {
    // The engine writes its profile when it exits: stop it gracefully first.
    await stopProcess(engine, 30_000)
    const target = await keepEngineProfile(profDir, RESULTS_DIR, 'http-render')
    const summary = summarizeCpuProfile(target)
    const out = profileLines(`Engine CPU profile (whole run incl. start-up; ${fmt(summary.totalMs / 1000, 1)} s busy), self time by origin:`, summary, { origins: 15 })
    out.push(...profileFooter(target))
    process.stdout.write(out.join('\n') + '\n')
  }
}


runBenchmark(scope, 'http-render', main)
