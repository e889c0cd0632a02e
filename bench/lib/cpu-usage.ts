import { readFileSync, readdirSync } from 'node:fs'
import { sleep } from '../../test/helpers/wait.ts'

/**
 * CPU time from /proc (Linux), to show during a run how busy the server was (a saturated single
 * process sits at ~100% of one core) and how much of the machine was left to the load generator.
 * Elsewhere every reading is undefined and the figures are left out.
 */
const TICKS_PER_SECOND = 100

function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12]) // utime + stime
  } catch {
    return undefined
  }
}

function childrenOf(pid: number): number[] {
  const children: number[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return children
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === pid) children.push(Number(entry))
    } catch {
      // exited meanwhile
    }
  }
  return children
}

/** CPU seconds used so far by `pid` and its direct children (nginx's workers). */
export function treeCpuSeconds(pid: number): number | undefined {
  const own = processTicks(pid)
  if (own === undefined) return undefined
  let ticks = own
  for (const child of childrenOf(pid)) ticks += processTicks(child) ?? 0
  return ticks / TICKS_PER_SECOND
}

/**
 * CPU seconds of this process's children that have exited and been reaped (cutime + cstime of
 * /proc/self): across one wrk run, that is wrk's own CPU time.
 */
export function reapedChildrenCpuSeconds(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND
  } catch {
    return undefined
  }
}

/** Machine-wide busy and total CPU seconds (all cores) from /proc/stat. */
export function machineCpuSeconds(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
    const values = line.trim().split(/\s+/).slice(1).map(Number)
    const total = values.reduce((sum, value) => sum + value, 0)
    const idle = (values[3] ?? 0) + (values[4] ?? 0) // idle + iowait
    return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND }
  } catch {
    return undefined
  }
}

export interface CpuUsage {
  /** Server process(es) CPU, in cores (1 = one core busy all the time). */
  serverCores?: number
  /** The load generator's CPU (children reaped during the run), in cores. */
  loadGeneratorCores?: number
  /** Every other process on the machine (other users, this script), in cores. */
  otherCores?: number
  /** Machine-wide busy share, 0..1. */
  machineBusy?: number
}

/** Measures what `run` costs: the server's, the load generator's and everybody else's CPU. */
export async function withCpuUsage<T>(serverPid: number, run: () => Promise<T>): Promise<{ result: T } & CpuUsage> {
  const start = Date.now()
  const server0 = treeCpuSeconds(serverPid)
  const children0 = reapedChildrenCpuSeconds()
  const machine0 = machineCpuSeconds()
  const result = await run()
  const seconds = (Date.now() - start) / 1000
  const server1 = treeCpuSeconds(serverPid)
  const machine1 = machineCpuSeconds()
  // wrk is reaped just after it exits; give libuv a moment so that its time is accounted.
  await sleep(50)
  const children1 = reapedChildrenCpuSeconds()
  const out: { result: T } & CpuUsage = { result }
  if (seconds <= 0) return out
  if (server0 !== undefined && server1 !== undefined) out.serverCores = (server1 - server0) / seconds
  if (children0 !== undefined && children1 !== undefined) out.loadGeneratorCores = (children1 - children0) / seconds
  if (machine0 && machine1 && machine1.total > machine0.total) {
    out.machineBusy = (machine1.busy - machine0.busy) / (machine1.total - machine0.total)
    const cores = (machine1.total - machine0.total) / seconds
    if (out.serverCores !== undefined && out.loadGeneratorCores !== undefined) {
      out.otherCores = Math.max(0, out.machineBusy * cores - out.serverCores - out.loadGeneratorCores)
    }
  }
  return out
}

/**
 * Waits (up to `maxWaitSeconds`) until the rest of the machine uses less than `maxCores` while the
 * servers sit idle: on a shared 2-core machine a test suite running meanwhile halves what the server
 * gets. Returns the last reading in cores, or undefined where /proc is missing.
 */
export async function waitForQuiet(maxCores: number, maxWaitSeconds: number, onWait: (cores: number) => void): Promise<number | undefined> {
  const deadline = Date.now() + maxWaitSeconds * 1000
  let warned = false
  for (;;) {
    const before = machineCpuSeconds()
    const start = Date.now()
    await sleep(1000)
    const after = machineCpuSeconds()
    if (!before || !after) return undefined
    const cores = (after.busy - before.busy) / ((Date.now() - start) / 1000)
    if (cores <= maxCores || Date.now() >= deadline) return cores
    if (!warned) onWait(cores)
    warned = true
  }
}

/**
 * As `withCpuUsage`, when the load generator is this process (plain node:http, autocannon): its CPU
 * is this process's own (process.cpuUsage), not that of reaped children.
 */
export async function withCpuUsageInProcess<T>(serverPid: number, run: () => Promise<T>): Promise<{ result: T } & CpuUsage> {
  const start = Date.now()
  const server0 = treeCpuSeconds(serverPid)
  const self0 = process.cpuUsage()
  const machine0 = machineCpuSeconds()
  const result = await run()
  const seconds = (Date.now() - start) / 1000
  const server1 = treeCpuSeconds(serverPid)
  const self = process.cpuUsage(self0)
  const machine1 = machineCpuSeconds()
  const out: { result: T } & CpuUsage = { result }
  if (seconds <= 0) return out
  if (server0 !== undefined && server1 !== undefined) out.serverCores = (server1 - server0) / seconds
  out.loadGeneratorCores = (self.user + self.system) / 1e6 / seconds
  if (machine0 && machine1 && machine1.total > machine0.total) {
    out.machineBusy = (machine1.busy - machine0.busy) / (machine1.total - machine0.total)
    const cores = (machine1.total - machine0.total) / seconds
    if (out.serverCores !== undefined) out.otherCores = Math.max(0, out.machineBusy * cores - out.serverCores - out.loadGeneratorCores)
  }
  return out
}
