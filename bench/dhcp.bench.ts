// DHCPv4 DORA rate: the engine's DHCP server (full mode) vs dnsmasq, measured with perfdhcp (Kea)
// inside throwaway network namespaces (test/helpers/netns.ts): server and client joined by veth
// pairs to a bridge, private addresses only. Must run as root.
// Run: npx tsx bench/dhcp.bench.ts   (BENCH_DHCP_SECONDS, BENCH_DHCP_RATES, ... see bench/README.md)
import { openSync, closeSync, promises as fs } from 'node:fs'
import { cpus } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLab, type Lab } from '../test/helpers/netns.ts'
import { dhcpSettings } from '../test/helpers/dhcp-lab.ts'
import { formatIpv4, parseIpv4 } from '../src/lib/ipv4.ts'
import { reapedChildrenCpuSeconds, treeCpuSeconds, waitForQuiet } from './lib/cpu-usage.ts'
import { summarizeCpuProfile } from './lib/cpuprofile.ts'
import { parsePerfdhcp, type PerfdhcpReport } from './lib/perfdhcp.ts'
import { BenchScope } from './lib/bench-scope.ts'
import { runTracked, spawnTracked, stopProcess, type Tracked } from './lib/processes.ts'
import { fmt, log, profileLines } from './lib/report.ts'
import { sleep } from '../test/helpers/wait.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const RESULTS_DIR = path.join(REPO, 'bench', 'results')
const env = process.env
const SECONDS = Number(env.BENCH_DHCP_SECONDS ?? 10)
const RATES = (env.BENCH_DHCP_RATES ?? '100,200,300,500,750,1000,1500,2000,3000,4000,6000,8000').split(',').map(Number).filter((rate) => rate > 0)
const MAX_LOSS_PERCENT = Number(env.BENCH_DHCP_MAX_LOSS ?? 1)
const POOL_SIZE = Number(env.BENCH_DHCP_POOL ?? 60_000)
const CLIENTS = Number(env.BENCH_DHCP_CLIENTS ?? POOL_SIZE)
const SERVERS = (env.BENCH_DHCP_SERVERS ?? 'engine,dnsmasq').split(',').map((name) => name.trim()) as ServerName[]
const QUIET = env.BENCH_DHCP_QUIET === '1'
const PERFDHCP_THREADS = env.BENCH_DHCP_PERFDHCP_THREADS ?? 'single'
const CPU_PROF = env.BENCH_CPU_PROF === '1'
const QUIET_CORES = Number(env.BENCH_QUIET_CORES ?? 0.25)
const QUIET_WAIT = Number(env.BENCH_QUIET_WAIT ?? 30)
const PERFDHCP = env.BENCH_PERFDHCP ?? '/usr/sbin/perfdhcp'
const DNSMASQ = env.BENCH_DNSMASQ ?? '/usr/sbin/dnsmasq'

// Inside the lab namespaces only: a /16 so that a 60,000-address pool fits.
const SUBNET = '10.78.0.0/16'
const SERVER_ADDRESS = '10.78.0.1'
const CLIENT_ADDRESS = '10.78.0.2'
const RANGE_START = '10.78.1.1'
const RANGE_END = formatIpv4(parseIpv4(RANGE_START)! + POOL_SIZE - 1)
const LEASE_SECONDS = 3600
/** perfdhcp keeps listening this long after its last DISCOVER, so that the exchanges still in flight count. */
const EXIT_WAIT_US = 1_000_000

type ServerName = 'engine' | 'dnsmasq'

interface Step {
  server: ServerName
  rate: number
  /** ACKs received / test period. (perfdhcp's own "Rate" divides by the period plus the -W wait.) */
  doraPerSecond: number
  report: PerfdhcpReport
  serverCpuCores?: number
  serverCpuUsPerDora?: number
  perfdhcpCpuCores?: number
  otherCoresBefore?: number
  engineStats?: Record<string, unknown>
  passed: boolean
}

let lab: Lab | undefined
const scope = new BenchScope("the benchmark's processes, deleting its namespaces and temp folder")
scope.onCleanup(() => {
  lab?.destroy()
  lab = undefined
})

function inNs(host: string, command: string, args: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', lab!.ns(host), command, ...args]]
}

/** Waits for a line on stdout (the engine child's READY / STATS). */
function waitForLine(entry: Tracked, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const check = () => {
      const match = pattern.exec(seen)
      if (match) {
        cleanupListeners()
        resolve(match[0])
      }
    }
    const onData = (data: Buffer) => {
      seen += data.toString('utf8')
      check()
    }
    const onExit = () => {
      cleanupListeners()
      reject(new Error(`${entry.name} exited before printing ${pattern}:\n${entry.output().slice(-3000)}`))
    }
    const timer = setTimeout(() => {
      cleanupListeners()
      reject(new Error(`${entry.name} did not print ${pattern} within ${timeoutMs} ms:\n${entry.output().slice(-3000)}`))
    }, timeoutMs)
    const cleanupListeners = () => {
      clearTimeout(timer)
      entry.child.stdout?.off('data', onData)
      entry.child.off('exit', onExit)
    }
    entry.child.stdout?.on('data', onData)
    entry.child.once('exit', onExit)
  })
}

interface RunningServer {
  entry: Tracked
  /** Stops it; returns the engine's final counters. */
  stop(): Promise<Record<string, unknown> | undefined>
}

async function startEngine(stepDir: string, profDir?: string): Promise<RunningServer> {
  const settings = dhcpSettings({
    mode: 'full',
    serverAddress: SERVER_ADDRESS,
    subnet: SUBNET,
    rangeStart: RANGE_START,
    rangeEnd: RANGE_END,
    leaseSeconds: LEASE_SECONDS,
  })
  const logFd = openSync(path.join(stepDir, 'engine.log'), 'w')
  const nodeArgs = [...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), '--import', 'tsx', path.join(REPO, 'test/helpers/dhcp-server-child.ts')]
  const [command, args] = inNs('server', process.execPath, nodeArgs)
  const entry = spawnTracked('engine DHCP server', command, args, {
    cwd: REPO,
    stdio: ['ignore', 'pipe', logFd],
    env: {
      ...env,
      NODE_ENV: 'production',
      // A database file like the engine's own (WAL, synchronous=NORMAL), on the temp folder's disk.
      SLW_DHCP_DB: path.join(stepDir, 'slipway.db'),
      SLW_DHCP_SETTINGS: JSON.stringify(settings),
      SLW_DHCP_HTTP_URL: `http://${SERVER_ADDRESS}:8080`,
      SLW_DHCP_LOG_LEVEL: QUIET ? 'warn' : 'info',
    },
  })
  closeSync(logFd)
  await waitForLine(entry, /READY\n/, 30_000)
  let stopped: Promise<Record<string, unknown> | undefined> | undefined
  return {
    entry,
    stop: () =>
      (stopped ??= (async () => {
        if (entry.child.exitCode !== null || entry.child.signalCode !== null) return undefined
        const stats = waitForLine(entry, /STATS (\{.*\})\n/, 30_000).catch(() => undefined)
        await stopProcess(entry, 30_000)
        const line = await stats
        return line ? (JSON.parse(line.slice(6)) as Record<string, unknown>) : undefined
      })()),
  }
}

async function startDnsmasq(stepDir: string): Promise<RunningServer> {
  const [command, args] = inNs('server', DNSMASQ, [
    '--no-daemon',
    '--conf-file=/dev/null',
    '--port=0', // no DNS
    '--bind-interfaces',
    '--interface=eth0',
    `--dhcp-range=${RANGE_START},${RANGE_END},255.255.0.0,${LEASE_SECONDS}`,
    `--dhcp-lease-max=${POOL_SIZE + 1000}`,
    `--dhcp-leasefile=${path.join(stepDir, 'dnsmasq.leases')}`,
    '--no-ping',
    '--dhcp-authoritative',
    `--pid-file=${path.join(stepDir, 'dnsmasq.pid')}`,
    `--log-facility=${path.join(stepDir, 'dnsmasq.log')}`,
    ...(QUIET ? ['--quiet-dhcp'] : []),
  ])
  const entry = spawnTracked('dnsmasq', command, args)
  // dnsmasq prints nothing on stdout when logging to a file; give it a moment to bind, then check it lives.
  for (let i = 0; i < 20; i++) {
    await sleep(50)
    if (entry.child.exitCode !== null) throw new Error(`dnsmasq exited (${entry.child.exitCode}):\n${entry.output()}`)
    const log = await fs.readFile(path.join(stepDir, 'dnsmasq.log'), 'utf8').catch(() => '')
    if (log.includes('sockets bound exclusively')) break
  }
  return { entry, stop: async () => (await stopProcess(entry), undefined) }
}

function perfdhcpArgs(rate: number, seconds: number): string[] {
  return ['-4', '-l', 'eth0', '-g', PERFDHCP_THREADS, '-r', String(rate), '-R', String(CLIENTS), '-p', String(seconds), '-W', String(EXIT_WAIT_US), '-x', 'e']
}

async function runPerfdhcp(rate: number, seconds: number): Promise<{ report: PerfdhcpReport; cpuCores?: number; text: string }> {
  const [command, args] = inNs('client', PERFDHCP, perfdhcpArgs(rate, seconds))
  const cpu0 = reapedChildrenCpuSeconds()
  const started = Date.now()
  const entry = spawnTracked('perfdhcp', command, args)
  const { code, signal } = await entry.exited
  const wall = (Date.now() - started) / 1000
  await sleep(50)
  const cpu1 = reapedChildrenCpuSeconds()
  const text = entry.output()
  // perfdhcp exits 3 when packets were dropped: that is a result, not a failure.
  if (code === null || ![0, 3].includes(code)) throw new Error(`perfdhcp exited with ${code ?? signal}:\n${text.slice(-3000)}`)
  return { report: parsePerfdhcp(text), text, ...(cpu0 !== undefined && cpu1 !== undefined ? { cpuCores: (cpu1 - cpu0) / wall } : {}) }
}

async function measure(server: ServerName, rate: number, profDir?: string): Promise<Step> {
  const stepDir = await fs.mkdtemp(path.join(scope.tmp!, `${server}-${rate}-`))
  // A fresh server (empty lease database) for every step: each step measures the same work.
  const running = server === 'engine' ? await startEngine(stepDir, profDir) : await startDnsmasq(stepDir)
  try {
    let otherCoresBefore: number | undefined
    if (QUIET_WAIT > 0) {
      otherCoresBefore = await waitForQuiet(QUIET_CORES, QUIET_WAIT, (cores) => log(`  (waiting for the machine to quiet down: ${cores.toFixed(2)} cores busy)`))
    }
    const pid = running.entry.child.pid!
    const cpu0 = treeCpuSeconds(pid)
    const started = Date.now()
    const { report, cpuCores } = await runPerfdhcp(rate, SECONDS)
    const wall = (Date.now() - started) / 1000
    const cpu1 = treeCpuSeconds(pid)
    const serverCpuSeconds = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined
    const completed = report.requestAck.received
    const engineStats = await running.stop()
    return {
      server,
      rate,
      doraPerSecond: completed / SECONDS,
      report,
      ...(serverCpuSeconds !== undefined ? { serverCpuCores: serverCpuSeconds / wall, serverCpuUsPerDora: completed > 0 ? (serverCpuSeconds * 1e6) / completed : undefined } : {}),
      ...(cpuCores !== undefined ? { perfdhcpCpuCores: cpuCores } : {}),
      ...(otherCoresBefore !== undefined ? { otherCoresBefore } : {}),
      ...(engineStats ? { engineStats } : {}),
      passed: report.lostPercent < MAX_LOSS_PERCENT && report.malformed === 0,
    }
  } finally {
    await running.stop()
  }
}

function printStep(step: Step): void {
  const r = step.report
  console.log(
    `${step.server.padEnd(8)} ${fmt(step.rate).padStart(7)} ${fmt(step.doraPerSecond, 0).padStart(8)} ${fmt(r.lostPercent, 2).padStart(7)}% ` +
      `${fmt(r.discoverOffer.dropsPercent, 2).padStart(7)}% ${fmt(r.requestAck.dropsPercent, 2).padStart(7)}% ` +
      `${fmt(r.discoverOffer.delayMs.avg, 2).padStart(8)} ${fmt(r.requestAck.delayMs.avg, 2).padStart(8)} ${fmt(Math.max(r.discoverOffer.delayMs.max, r.requestAck.delayMs.max), 1).padStart(8)} ` +
      `${fmt((step.serverCpuCores ?? NaN) * 100).padStart(6)}% ${fmt(step.serverCpuUsPerDora, 0).padStart(7)} ${fmt((step.perfdhcpCpuCores ?? NaN) * 100).padStart(6)}%  ${step.passed ? 'ok' : 'LOSS'}`,
  )
}

async function versionOf(command: string, args: string[]): Promise<string> {
  try {
    const entry = spawnTracked(command, command, args)
    await entry.exited
    return entry.output().split('\n').find((line) => line.trim())?.trim() ?? ''
  } catch {
    return ''
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/dhcp.bench.ts must run as root (network namespaces, ports 67/68)')
  if (POOL_SIZE < 1 || parseIpv4(RANGE_END)! >= parseIpv4('10.78.255.255')!) throw new Error(`BENCH_DHCP_POOL must be 1..${parseIpv4('10.78.255.254')! - parseIpv4(RANGE_START)! + 1}`)
  for (const name of SERVERS) if (name !== 'engine' && name !== 'dnsmasq') throw new Error(`unknown server ${name} in BENCH_DHCP_SERVERS`)
  const tmp = await scope.makeTemp('slipway-dhcp-bench-')
  lab = createLab([
    { name: 'server', address: `${SERVER_ADDRESS}/16` },
    { name: 'client', address: `${CLIENT_ADDRESS}/16` },
  ])
  log(`namespaces ${lab.ns('server')} (server ${SERVER_ADDRESS}) and ${lab.ns('client')} (perfdhcp ${CLIENT_ADDRESS}) on a bridge in ${lab.id}-lan`)
  log(`pool ${RANGE_START}-${RANGE_END} (${fmt(POOL_SIZE)} addresses), ${fmt(CLIENTS)} simulated clients, ${SECONDS} s per step, rates ${RATES.join(', ')}`)
  log(`perfdhcp ${perfdhcpArgs(0, SECONDS).join(' ').replace('-r 0', '-r <rate>')}\n`)

  // Smoke test: each server must complete DORAs at a low rate before anything is measured.
  for (const server of SERVERS) {
    const stepDir = await fs.mkdtemp(path.join(tmp, `${server}-smoke-`))
    const running = server === 'engine' ? await startEngine(stepDir) : await startDnsmasq(stepDir)
    try {
      const { report } = await runPerfdhcp(20, 1)
      if (report.requestAck.received === 0) throw new Error(`${server} completed no DORA exchange with perfdhcp (${JSON.stringify(report)})`)
    } finally {
      await running.stop()
    }
  }

  console.log('server      rate   DORA/s    lost  DO drop  RA drop  DO avg ms RA avg ms  max ms   CPU  us/DORA perfdhcp')
  const steps: Step[] = []
  const best: Partial<Record<ServerName, Step>> = {}
  for (const server of SERVERS) {
    for (const rate of RATES) {
      const step = await measure(server, rate)
      steps.push(step)
      printStep(step)
      if (!step.passed) break
      best[server] = step
    }
  }

  const summary: Record<string, unknown> = {}
  console.log(`\nHighest DORA rate with < ${MAX_LOSS_PERCENT}% of exchanges lost (of the rates tried):`)
  for (const server of SERVERS) {
    const step = best[server]
    const firstFail = steps.find((s) => s.server === server && !s.passed)
    const ceiling = firstFail ? `${fmt(firstFail.rate)}/s asked: ${fmt(firstFail.doraPerSecond)} DORA/s, ${fmt(firstFail.report.lostPercent, 1)}% lost` : 'no rate tried failed (raise BENCH_DHCP_RATES)'
    console.log(
      `  ${server.padEnd(8)} ${step ? `${fmt(step.doraPerSecond)} DORA/s (asked ${fmt(step.rate)}/s), avg OFFER ${fmt(step.report.discoverOffer.delayMs.avg, 2)} ms, ACK ${fmt(step.report.requestAck.delayMs.avg, 2)} ms, ${fmt(step.serverCpuUsPerDora)} us CPU/DORA` : 'none'}; next step ${ceiling}`,
    )
    summary[server] = { best: step ?? null, firstFailure: firstFail ?? null }
  }
  const engineBest = best.engine
  const dnsmasqBest = best.dnsmasq
  let ratios: { doraRate: number; cpuPerDora?: number } | undefined
  if (engineBest && dnsmasqBest) {
    ratios = { doraRate: engineBest.doraPerSecond / dnsmasqBest.doraPerSecond }
    if (engineBest.serverCpuUsPerDora && dnsmasqBest.serverCpuUsPerDora) ratios.cpuPerDora = engineBest.serverCpuUsPerDora / dnsmasqBest.serverCpuUsPerDora
    console.log(`\nRatio engine / dnsmasq, max DORA/s at < ${MAX_LOSS_PERCENT}% loss: ${ratios.doraRate.toFixed(3)}`)
    if (ratios.cpuPerDora) console.log(`Ratio engine / dnsmasq, server CPU per DORA (at each one's best rate): ${ratios.cpuPerDora.toFixed(1)}`)
  }

  let profile: unknown
  if (CPU_PROF && SERVERS.includes('engine')) {
    const rate = engineBest?.rate ?? RATES[0]!
    log(`\nprofiling the engine at ${rate}/s for ${SECONDS} s (--cpu-prof; slower, figures not kept)`)
    const profDir = path.join(tmp, 'prof')
    await fs.mkdir(profDir)
    const step = await measure('engine', rate, profDir)
    const files = (await fs.readdir(profDir)).filter((name) => name.endsWith('.cpuprofile'))
    if (files.length === 0) throw new Error(`the engine wrote no CPU profile to ${profDir}`)
    await fs.mkdir(RESULTS_DIR, { recursive: true })
    const target = path.join(RESULTS_DIR, 'dhcp-engine.cpuprofile')
    await fs.copyFile(path.join(profDir, files[0]!), target)
    const s = summarizeCpuProfile(target)
    const out = profileLines(`Engine CPU profile at ${rate}/s (${fmt(step.doraPerSecond)} DORA/s under the profiler; ${fmt(s.totalMs / 1000, 1)} s busy incl. start-up), self time by origin:`, s, { origins: 15 })
    out.push(`(profile saved to ${path.relative(process.cwd(), target)})`)
    console.log(out.join('\n'))
    profile = { rate, doraPerSecond: step.doraPerSecond, origins: s.origins.slice(0, 15), functions: s.functions }
  }

  let commit: string | undefined
  try {
    commit = (await runTracked('git rev-parse', 'git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO })).trim()
  } catch {
    // not a checkout
  }
  const results = {
    date: new Date().toISOString(),
    cpu: { model: cpus()[0]?.model, count: cpus().length },
    node: process.version,
    commit,
    perfdhcp: await versionOf(PERFDHCP, ['-v']),
    dnsmasq: await versionOf(DNSMASQ, ['--version']),
    settings: {
      secondsPerStep: SECONDS,
      rates: RATES,
      maxLossPercent: MAX_LOSS_PERCENT,
      pool: { start: RANGE_START, end: RANGE_END, size: POOL_SIZE, subnet: SUBNET },
      clients: CLIENTS,
      leaseSeconds: LEASE_SECONDS,
      perfdhcpArgs: perfdhcpArgs(0, SECONDS).join(' ').replace('-r 0', '-r <rate>'),
      perClientLogging: !QUIET,
      quietCores: QUIET_CORES,
      quietWaitSeconds: QUIET_WAIT,
    },
    steps,
    summary,
    ratios,
    profile,
  }
  await fs.mkdir(RESULTS_DIR, { recursive: true })
  const file = path.join(RESULTS_DIR, 'dhcp.json')
  await fs.writeFile(file, JSON.stringify(results, null, 2) + '\n')
  log(`\nresults written to ${path.relative(process.cwd(), file) || file}`)
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exitCode = 1
  })
  .finally(() => scope.cleanup())
