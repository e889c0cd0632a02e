/**
 * Reverse proxy benchmark: the same fast origin (nginx, 1 worker, answering from memory) measured
 * directly, through Slipway's proxy (a real engine process, `src/main.ts`), and through nginx as a
 * reverse proxy (1 worker, upstream keep-alive, the same forwarding headers): requests per second
 * at 50 connections, added latency (p50/p99) at 1 connection and at 50, and bulk throughput (a
 * 256 MiB download) with the engine's peak memory. See bench/README.md.
 *
 *   npx tsx bench/proxy.bench.ts             (or: npm run bench:proxy)
 *   BENCH_DURATION=3 BENCH_WARMUP=1 npm run bench:proxy   (quick run)
 *   BENCH_RUNS=3 npm run bench:proxy                       (median of 3 runs per row, for a shared machine)
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { treeCpuSeconds, waitForQuiet, withCpuUsage, type CpuUsage } from './lib/cpu-usage.ts'
import { BenchScope, SetupError, envNumber, machineFacts, runBenchmark, writeResults } from './lib/bench-scope.ts'
import { NGINX, nginxVersion, startNginxWithConfig } from './lib/nginx.ts'
import { processMemory } from './lib/proc-memory.ts'
import { freePort, runTracked, spawnTracked, waitForHttp, type Tracked } from './lib/processes.ts'
import { fmt, log } from './lib/report.ts'
import { WRK, runWrk, writeWrkScript, wrkVersion, type LoadResult } from './lib/wrk.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = path.join(REPO, 'bench', 'results')
const MiB = 1024 * 1024
const BULK_BYTES = 256 * MiB

const scope = new BenchScope()

type TargetId = 'direct' | 'slipway' | 'nginx-proxy'
const SCENARIOS = [
  { id: 'small', path: '/small', what: 'GET, 64-byte body' },
  { id: '16k', path: '/16k.bin', what: 'GET, 16 KiB body' },
] as const
type ScenarioId = (typeof SCENARIOS)[number]['id']

interface Measurement {
  scenario: ScenarioId
  connections: number
  target: TargetId
  load: LoadResult
  cpu: CpuUsage & { originCores?: number }
  /** Requests per second of every run (BENCH_RUNS); `load` is the median one. */
  runs: number[]
}

async function main(): Promise<void> {
  const duration = envNumber('BENCH_DURATION', 10, { min: 1 })
  const warmup = envNumber('BENCH_WARMUP', 2, { min: 0 })
  const connections = envNumber('BENCH_CONNECTIONS', 50, { min: 2, integer: true })
  const runs = envNumber('BENCH_RUNS', 1, { min: 1, integer: true })
  const quietCores = envNumber('BENCH_QUIET_CORES', 0.25, { min: 0 })
  const quietWait = envNumber('BENCH_QUIET_WAIT', 30, { min: 0 })
  const loadBefore = os.loadavg()
  for (const [what, file] of [['nginx', NGINX], ['wrk', WRK], ['curl', '/usr/bin/curl']] as const) {
    try {
      await fs.access(file, constants.X_OK)
    } catch {
      throw new SetupError(`${what} not found at ${file}`)
    }
  }
  const tmp = await scope.makeTemp('slipway-bench-proxy-')
  log(`temp folder ${tmp}`)

  // --- the origin: nginx, 1 worker, answering from memory and a small static file -------------------
  const www = path.join(tmp, 'www')
  await fs.mkdir(www, { recursive: true })
  await fs.writeFile(path.join(www, '16k.bin'), randomBytes(16 * 1024))
  await fs.writeFile(path.join(www, 'bulk.bin'), Buffer.alloc(BULK_BYTES, 7))
  if (process.getuid?.() === 0) {
    // nginx's workers run as nobody: let them read the document root (only).
    await fs.chmod(tmp, 0o711)
    await fs.chmod(www, 0o755)
    for (const file of ['16k.bin', 'bulk.bin']) await fs.chmod(path.join(www, file), 0o644)
  }
  const originPort = await freePort()
  const origin = await startNginxWithConfig('origin', path.join(tmp, 'origin'), originConfig(path.join(tmp, 'origin'), www, originPort), `http://127.0.0.1:${originPort}/small`)

  // --- Slipway: the engine as `npm start` runs it, one route to the origin --------------------------
  const [httpPort, proxyPort] = [await freePort(), await freePort()]
  const token = randomBytes(24).toString('base64url')
  const configFile = path.join(tmp, 'slipway.yaml')
  await fs.writeFile(configFile, '{}\n')
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SLIPWAY_')))
  Object.assign(env, {
    NODE_ENV: 'production',
    SLIPWAY_CONFIG: configFile,
    SLIPWAY_DATA_DIR: path.join(tmp, 'var'),
    SLIPWAY_HTTP_HOST: '127.0.0.1',
    SLIPWAY_HTTP_PORT: String(httpPort),
    SLIPWAY_PROXY_HOST: '127.0.0.1',
    SLIPWAY_PROXY_PORT: String(proxyPort),
    SLIPWAY_DNS_ENABLED: 'false',
    SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
    SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
    SLIPWAY_LOG_LEVEL: 'warn',
    SLIPWAY_AUTH_ADMIN_TOKEN: token,
  })
  const engine = spawnTracked('engine', process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: REPO, env })
  await waitForHttp(`http://127.0.0.1:${httpPort}/healthz`, engine, 120_000)
  const created = await fetch(`http://127.0.0.1:${httpPort}/api/v1/proxy/routes`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'origin', match: '/', origin: `http://127.0.0.1:${originPort}` }),
  })
  if (created.status !== 201) throw new SetupError(`creating the route failed: ${created.status} ${await created.text()}`)
  await waitForHttp(`http://127.0.0.1:${proxyPort}/small`, engine, 10_000)

  // --- the peer: nginx as a reverse proxy, 1 worker ---------------------------------------------------
  const peerPort = await freePort()
  const peer = await startNginxWithConfig('nginx-proxy', path.join(tmp, 'nginx-proxy'), peerConfig(path.join(tmp, 'nginx-proxy'), peerPort, originPort), `http://127.0.0.1:${peerPort}/small`)

  const targets: { id: TargetId; label: string; port: number; entry: Tracked }[] = [
    { id: 'direct', label: 'origin directly', port: originPort, entry: origin },
    { id: 'slipway', label: 'Slipway proxy', port: proxyPort, entry: engine },
    { id: 'nginx-proxy', label: 'nginx proxy (1 worker)', port: peerPort, entry: peer },
  ]
  // Every target answers the same bytes.
  for (const scenario of SCENARIOS) {
    const bodies = await Promise.all(targets.map(async (target) => Buffer.from(await (await fetch(`http://127.0.0.1:${target.port}${scenario.path}`)).arrayBuffer())))
    if (!bodies.every((body) => body.equals(bodies[0]!))) throw new SetupError(`${scenario.path}: the targets do not answer the same bytes`)
  }
  log('origin, Slipway proxy and nginx proxy answer byte-identically')

  // --- load ------------------------------------------------------------------------------------------
  const measurements: Measurement[] = []
  const levels = [1, connections]
  log(`load: wrk 1 thread, ${levels.join(' and ')} connection(s), ${warmup} s warm-up + ${duration} s per run, ${runs} run(s) per target`)
  for (const scenario of SCENARIOS) {
    const script = path.join(tmp, `wrk-${scenario.id}.lua`)
    await writeWrkScript(script, [scenario.path])
    for (const level of levels) {
      const perTarget = new Map<TargetId, Omit<Measurement, 'runs'>[]>()
      // Runs alternate between targets, so that a burst of outside load does not hit one target only.
      for (let run = 0; run < runs; run++) {
        for (const target of targets) {
          const options = { baseUrl: `http://127.0.0.1:${target.port}`, script, threads: 1, connections: level }
          if (quietWait > 0) {
            const idle = await waitForQuiet(quietCores, quietWait, (cores) => log(`  other processes use ${fmt(cores * 100)}% of a core; waiting up to ${quietWait} s`))
            if (idle !== undefined && idle > quietCores) log(`  still ${fmt(idle * 100)}% of a core busy elsewhere; measuring anyway`)
          }
          if (warmup > 0) await runWrk({ ...options, durationSeconds: warmup })
          const originBefore = treeCpuSeconds(origin.child.pid!)
          const started = Date.now()
          const { result: load, ...usage } = await withCpuUsage(target.entry.child.pid!, () => runWrk({ ...options, durationSeconds: duration }))
          const cpu: Measurement['cpu'] = usage
          const originAfter = treeCpuSeconds(origin.child.pid!)
          // Behind a proxy the origin works too: its share is not outside noise.
          if (target.id !== 'direct' && originBefore !== undefined && originAfter !== undefined) {
            cpu.originCores = (originAfter - originBefore) / ((Date.now() - started) / 1000)
            if (cpu.otherCores !== undefined) cpu.otherCores = Math.max(0, cpu.otherCores - cpu.originCores)
          }
          if (load.errorCount > 0 || load.requests === 0) throw new SetupError(`${target.label}, ${scenario.id}, ${level} connection(s): ${load.requests} requests, errors ${JSON.stringify(load.errors)}`)
          perTarget.set(target.id, [...(perTarget.get(target.id) ?? []), { scenario: scenario.id, connections: level, target: target.id, load, cpu }])
          log(
            `  ${scenario.id.padEnd(6)} c=${String(level).padEnd(3)} ${target.label.padEnd(23)} ${fmt(load.requestsPerSecond).padStart(8)} req/s  p50 ${fmt(load.latencyMs.p50, 3)} ms  p99 ${fmt(load.latencyMs.p99, 3)} ms` +
              (cpu.otherCores !== undefined ? `  (other processes: ${fmt(cpu.otherCores * 100)}% of a core)` : ''),
          )
        }
      }
      for (const target of targets) {
        const all = perTarget.get(target.id)!
        const median = [...all].sort((a, b) => a.load.requestsPerSecond - b.load.requestsPerSecond)[Math.floor((all.length - 1) / 2)]!
        measurements.push({ ...median, runs: all.map((m) => Math.round(m.load.requestsPerSecond)) })
      }
    }
  }

  // --- bulk: one 256 MiB download per target, and the engine's peak memory meanwhile ----------------
  const bulk: Record<TargetId, { mibPerSecond: number }> = {} as Record<TargetId, { mibPerSecond: number }>
  let engineRssBefore = 0
  let engineRssPeak = 0
  for (const target of targets) {
    const speeds: number[] = []
    for (let run = 0; run < 3; run++) {
      const sampler = target.id === 'slipway' ? setInterval(() => (engineRssPeak = Math.max(engineRssPeak, processMemory(engine.child.pid!)?.rssBytes ?? 0)), 5) : undefined
      if (target.id === 'slipway' && run === 0) engineRssBefore = engineRssPeak = processMemory(engine.child.pid!)?.rssBytes ?? 0
      const out = await runTracked('curl', '/usr/bin/curl', ['--silent', '--show-error', '--fail', '-o', '/dev/null', '-w', '%{size_download} %{speed_download}', `http://127.0.0.1:${target.port}/bulk.bin`])
      clearInterval(sampler)
      const [size, speed] = out.trim().split(' ').map(Number)
      if (size !== BULK_BYTES) throw new SetupError(`${target.label}: bulk download was ${size} bytes, not ${BULK_BYTES}`)
      speeds.push(speed! / MiB)
    }
    speeds.sort((a, b) => a - b)
    bulk[target.id] = { mibPerSecond: speeds[1]! }
    log(`  bulk   ${target.label.padEnd(23)} ${fmt(speeds[1]!)} MiB/s (median of 3)`)
  }

  // --- report ------------------------------------------------------------------------------------------
  const [nginxV, wrkV] = await Promise.all([nginxVersion(), wrkVersion()])
  const cpus = os.cpus()
  const find = (scenario: ScenarioId, level: number, target: TargetId) => measurements.find((m) => m.scenario === scenario && m.connections === level && m.target === target)!
  const lines: string[] = ['', `Slipway reverse proxy benchmark: one fast origin (nginx, 1 worker), directly and through two proxies`]
  lines.push(`wrk 1 thread, pipelining 1, ${duration} s per run after ${warmup} s warm-up, ${runs} run(s) per row; all on 127.0.0.1`)
  lines.push(`machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}; node ${process.version}; nginx ${nginxV}; ${wrkV}; load average at start: ${loadBefore.map((v) => v.toFixed(2)).join(' ')}`)
  lines.push('')
  const header = ['scenario', 'conns', 'target', 'req/s', 'p50 ms', 'p99 ms', '+p50 ms', '+p99 ms', 'proxy CPU', 'origin CPU', 'other CPU']
  const rows = measurements.map((m) => {
    const direct = find(m.scenario, m.connections, 'direct').load.latencyMs
    const added = (value: number, base: number) => (m.target === 'direct' ? '-' : fmt(value - base, 3))
    return [
      m.scenario,
      String(m.connections),
      targets.find((target) => target.id === m.target)!.label,
      fmt(m.load.requestsPerSecond),
      fmt(m.load.latencyMs.p50, 3),
      fmt(m.load.latencyMs.p99, 3),
      added(m.load.latencyMs.p50, direct.p50),
      added(m.load.latencyMs.p99, direct.p99),
      m.cpu.serverCores === undefined ? '-' : `${fmt(m.cpu.serverCores * 100)}%`,
      m.target === 'direct' ? '-' : m.cpu.originCores === undefined ? '-' : `${fmt(m.cpu.originCores * 100)}%`,
      m.cpu.otherCores === undefined ? '-' : `${fmt(m.cpu.otherCores * 100)}%`,
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const render = (cells: string[]) => cells.map((c, i) => (i >= 3 || i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')
  lines.push(render(header))
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '))
  rows.forEach((row, i) => {
    if (i > 0 && i % targets.length === 0) lines.push('')
    lines.push(render(row))
  })
  lines.push('+p50/+p99: added latency against the origin directly at the same concurrency. Proxy CPU: the proxy')
  lines.push('process (for "origin directly": the origin); origin CPU: the origin behind a proxy; other CPU: every other')
  lines.push('process but wrk (noise: it should be near 0%); 100% = one core. wrk, the origin and the proxy share the machine.')
  if (runs > 1) lines.push(`Each row is the median of ${runs} runs.`)
  lines.push('')
  lines.push('Ratios, requests per second:')
  const ratios: Record<string, { slipwayVsDirect: number; nginxProxyVsDirect: number; slipwayVsNginxProxy: number }> = {}
  for (const scenario of SCENARIOS) {
    for (const level of levels) {
      const direct = find(scenario.id, level, 'direct').load.requestsPerSecond
      const slipway = find(scenario.id, level, 'slipway').load.requestsPerSecond
      const nginx = find(scenario.id, level, 'nginx-proxy').load.requestsPerSecond
      ratios[`${scenario.id}@${level}`] = { slipwayVsDirect: slipway / direct, nginxProxyVsDirect: nginx / direct, slipwayVsNginxProxy: slipway / nginx }
      lines.push(`  ${scenario.id.padEnd(6)} c=${String(level).padEnd(3)} Slipway/direct ${(slipway / direct).toFixed(3)}   nginx proxy/direct ${(nginx / direct).toFixed(3)}   Slipway/nginx proxy ${(slipway / nginx).toFixed(3)}`)
    }
  }
  lines.push(`Bulk ${BULK_BYTES / MiB} MiB download (curl, median of 3): ${targets.map((target) => `${target.label} ${fmt(bulk[target.id].mibPerSecond)} MiB/s`).join(', ')}; Slipway/direct ${(bulk.slipway.mibPerSecond / bulk.direct.mibPerSecond).toFixed(3)}, Slipway/nginx proxy ${(bulk.slipway.mibPerSecond / bulk['nginx-proxy'].mibPerSecond).toFixed(3)}`)
  lines.push(`Engine RSS ${fmt(engineRssBefore / MiB, 1)} MiB before the bulk downloads, peak ${fmt(engineRssPeak / MiB, 1)} MiB during (+${fmt((engineRssPeak - engineRssBefore) / MiB, 1)} MiB for 768 MiB proxied)`)
  process.stdout.write(lines.join('\n') + '\n')

  await writeResults(
    RESULTS_DIR,
    'proxy',
    {
      benchmark: 'proxy',
      date: new Date().toISOString(),
      machine: machineFacts(loadBefore),
      versions: { node: process.version, nginx: nginxV, wrk: wrkV },
      settings: { durationSeconds: duration, warmupSeconds: warmup, runsPerRow: runs, connections: levels, wrkThreads: 1, bulkBytes: BULK_BYTES },
      measurements: measurements.map((m) => ({
        scenario: m.scenario,
        connections: m.connections,
        target: m.target,
        requestsPerSecond: Math.round(m.load.requestsPerSecond),
        latencyMs: m.load.latencyMs,
        errors: m.load.errors,
        allRunsRequestsPerSecond: m.runs,
        cpuCores: { server: m.cpu.serverCores, origin: m.cpu.originCores, loadGenerator: m.cpu.loadGeneratorCores, otherProcesses: m.cpu.otherCores },
      })),
      ratios,
      bulk,
      engineRss: { beforeBytes: engineRssBefore, peakBytes: engineRssPeak },
    },
    log,
  )
}

const tempPaths = (dir: string) => ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `    ${name}_temp_path ${path.join(dir, name)};`).join('\n')
const preamble = (dir: string) => `${process.getuid?.() === 0 ? 'user nobody nogroup;\n' : ''}daemon off;
master_process on;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events {
    worker_connections 4096;
}
`

/** The origin: `/small` from memory, files from `www`, keep-alive without a request cap. */
function originConfig(dir: string, www: string, port: number): string {
  return `${preamble(dir)}
http {
    access_log off;
    server_tokens off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${tempPaths(dir)}
    server {
        listen 127.0.0.1:${port};
        root ${www};
        location = /small {
            default_type text/plain;
            return 200 '${'x'.repeat(63)}\n';
        }
    }
}
`
}

/** nginx as the peer proxy: what an operator would write (upstream keep-alive, the forwarding headers Slipway sets). */
function peerConfig(dir: string, port: number, originPort: number): string {
  return `${preamble(dir)}
http {
    access_log off;
    server_tokens off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${tempPaths(dir)}
    upstream origin {
        server 127.0.0.1:${originPort};
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${port};
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $proxy_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header Forwarded "for=$remote_addr;host=$http_host;proto=$scheme";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
`
}

runBenchmark(scope, 'proxy', main)
