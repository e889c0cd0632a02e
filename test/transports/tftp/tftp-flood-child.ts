// The TFTP server alone in a child process, so a flood test can limit its file descriptors (ulimit -n)
// and see whether it dies. Protocol: one JSON line `{"ready":true,"port":N}` on stdout, then one JSON
// line of stats per `stats` line read on stdin; `close` closes the server and exits 0.
// Environment: TFTP_FLOOD_DIR (served folder), TFTP_FLOOD_SERVER (JSON of extra server options),
// TFTP_FLOOD_LEAVE_FDS (when set: open /dev/null until EMFILE, then free that many descriptors).
import { closeSync, openSync, readdirSync } from 'node:fs'
import { createInterface } from 'node:readline'
import pino from 'pino'
import { EngineMetrics } from '../../../src/transports/metrics.ts'
import { startTftpServer, type TftpServerOptions } from '../../../src/transports/tftp/tftp-server.ts'
import { udpSocketsOfThisProcess } from './udp-socket-table.ts'

const folder = process.env.TFTP_FLOOD_DIR
if (folder === undefined) throw new Error('TFTP_FLOOD_DIR is required')
const extraOptions = JSON.parse(process.env.TFTP_FLOOD_SERVER ?? '{}') as Partial<TftpServerOptions>

const logs = { lines: 0, byMessage: new Map<string, number>(), warnings: [] as string[] }
const logger = pino({ level: 'info' }, {
  write(line: string) {
    logs.lines += 1
    const record = JSON.parse(line) as { msg?: string; level?: number }
    const key = String(record.msg ?? '').replace(/\d+/g, 'N')
    logs.byMessage.set(key, (logs.byMessage.get(key) ?? 0) + 1)
    if ((record.level ?? 0) >= 40 && logs.warnings.length < 20) logs.warnings.push(line.trim())
  },
})
const metrics = new EngineMetrics()
const host = extraOptions.host ?? '127.0.0.1'
const server = await startTftpServer({ port: 0, ipxeDir: folder, logger, metrics, ...extraOptions, host })

const fillers: number[] = []
if (process.env.TFTP_FLOOD_LEAVE_FDS !== undefined) {
  for (;;) {
    try {
      fillers.push(openSync('/dev/null', 'r'))
    } catch {
      break
    }
  }
  for (let free = Number(process.env.TFTP_FLOOD_LEAVE_FDS); free > 0 && fillers.length > 0; free--) closeSync(fillers.pop()!)
}

// High-water marks sampled while the flood runs: the test asserts on them afterwards.
let maxOpenFds = 0
let maxUdpSockets = 0
const nonHostBindings = new Set<string>()
const sampler = setInterval(() => {
  try {
    maxOpenFds = Math.max(maxOpenFds, readdirSync('/proc/self/fd').length)
    const sockets = udpSocketsOfThisProcess()
    maxUdpSockets = Math.max(maxUdpSockets, sockets.length)
    for (const socket of sockets) if (socket.address !== host) nonHostBindings.add(`${socket.address}:${socket.port}`)
  } catch {
    // EMFILE while the descriptors are exhausted: sample next time
  }
}, 25)

async function stats(): Promise<Record<string, unknown>> {
  // Only the TFTP series: the default process collectors read /proc, which fails while descriptors are used up.
  const names = ['slipway_tftp_transfers_total', 'slipway_tftp_sent_bytes_total', 'slipway_tftp_active_transfers', 'slipway_tftp_refusals_total']
  const text = (await Promise.all(names.map((name) => metrics.registry.getSingleMetricAsString(name)))).join('\n')
  const series: Record<string, number> = {}
  for (const line of text.split('\n')) {
    if (!line.startsWith('slipway_tftp_')) continue
    const space = line.lastIndexOf(' ')
    series[line.slice(0, space)] = Number(line.slice(space + 1))
  }
  return {
    alive: true,
    series,
    maxOpenFds,
    maxUdpSockets,
    nonHostBindings: [...nonHostBindings].slice(0, 10),
    fillers: fillers.length,
    logLines: logs.lines,
    logMessages: Object.fromEntries(logs.byMessage),
    warnings: logs.warnings,
    rssMiB: residentMiB(),
  }
}

/** Resident memory, or undefined while descriptors are used up (Node reads it from /proc). */
function residentMiB(): number | undefined {
  try {
    return Math.round(process.memoryUsage.rss() / 1024 / 1024)
  } catch {
    return undefined
  }
}

/** Stats, or what went wrong collecting them (reading /proc needs descriptors the test may have used up). */
async function statsLine(): Promise<string> {
  try {
    return JSON.stringify(await stats())
  } catch (error) {
    return JSON.stringify({ alive: true, statsError: String(error) })
  }
}

process.stdout.write(`${JSON.stringify({ ready: true, port: server.port })}\n`)
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'stats') process.stdout.write(`${await statsLine()}\n`)
  if (line === 'release-fds') {
    for (const fd of fillers.splice(0)) closeSync(fd)
    process.stdout.write(`${JSON.stringify({ released: true })}\n`)
  }
  if (line === 'close') break
}
clearInterval(sampler)
await server.close()
process.exit(0)
