import { readFileSync, readdirSync } from 'node:fs'

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

/** Measures what `run` costs: server CPU (in cores) and machine-wide busy share (0..1). */
export async function withCpuUsage<T>(serverPid: number, run: () => Promise<T>): Promise<{ result: T; serverCores?: number; machineBusy?: number }> {
  const start = Date.now()
  const server0 = treeCpuSeconds(serverPid)
  const machine0 = machineCpuSeconds()
  const result = await run()
  const seconds = (Date.now() - start) / 1000
  const server1 = treeCpuSeconds(serverPid)
  const machine1 = machineCpuSeconds()
  const out: { result: T; serverCores?: number; machineBusy?: number } = { result }
  if (server0 !== undefined && server1 !== undefined && seconds > 0) out.serverCores = (server1 - server0) / seconds
  if (machine0 && machine1 && machine1.total > machine0.total) out.machineBusy = (machine1.busy - machine0.busy) / (machine1.total - machine0.total)
  return out
}
