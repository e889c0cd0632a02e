// Attacks on the TFTP server's resources: transfer sockets bound to the configured host; a flood of
// unacknowledged read requests plus malformed datagrams against a server limited to 1,024 file
// descriptors (ulimit -n, in a child process); and descriptors exhausted by the rest of the process.
// After each attack a real client must still download correctly from a server that is still alive.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import t, { type Test } from 'tap'
import { startTftpServer } from '../../../src/transports/tftp/tftp-server.ts'
import { RawTftpClient, captureLogs, errorPacket, requestPacket, runCommand, sha256OfFile } from './tftp-test-kit.ts'
import { sleep } from '../../helpers/wait.ts'
import { udpSocketsOfThisProcess } from './udp-socket-table.ts'

const READ_REQUESTS = Number(process.env.TFTP_FLOOD_RRQS ?? 20_000)
const MALFORMED = Number(process.env.TFTP_FLOOD_MALFORMED ?? 50_000)
const FLOOD_BUDGET_MS = 60_000
const CHILD_SCRIPT = path.join(import.meta.dirname, 'tftp-flood-child.ts')

const base = await mkdtemp(path.join(tmpdir(), 'slipway-tftp-flood-'))
const served = path.join(base, 'served')
await mkdir(served)
await copyFile('/usr/lib/ipxe/undionly.kpxe', path.join(served, 'undionly.kpxe'))
await writeFile(path.join(served, 'ten-bytes.bin'), '0123456789')
t.teardown(() => rm(base, { recursive: true, force: true }))

t.test('transfer sockets are bound to the configured host, not to every address', async (t) => {
  const logs = captureLogs()
  const server = await startTftpServer({ host: '127.0.0.2', port: 0, ipxeDir: served, logger: logs.logger })
  const raw = await RawTftpClient.open()
  t.teardown(async () => {
    await raw.close()
    await server.close()
  })
  raw.socket.send(requestPacket(1, 'undionly.kpxe', 'octet', { blksize: '1468' }), server.port, '127.0.0.2')
  const oack = await raw.receive()
  t.ok(oack, 'the server answers the request')
  const transferSocket = udpSocketsOfThisProcess().find((socket) => socket.port === oack!.from.port)
  t.equal(transferSocket?.address, '127.0.0.2', `the transfer socket is bound to 127.0.0.2 (found ${transferSocket?.address}:${transferSocket?.port})`)
  t.equal(oack!.from.address, '127.0.0.2', 'the client hears from the address it asked')
  raw.send(errorPacket(8, 'done'), oack!.from.port)
})

interface FloodChild {
  child: ChildProcess
  port: number
  stderr: () => string
  alive: () => boolean
  command: (line: string) => Promise<Record<string, any>>
  stop: () => Promise<void>
}

/** Starts the server in `sh -c 'ulimit -n 1024; exec node ...'` and waits for its port. */
async function startFloodChild(env: Record<string, string>): Promise<FloodChild> {
  const child = spawn('sh', ['-c', 'ulimit -n 1024 && exec node --import tsx "$0"', CHILD_SCRIPT], {
    env: { ...process.env, TFTP_FLOOD_DIR: served, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (chunk) => (stderr += chunk))
  const lines = createInterface({ input: child.stdout! })
  const waiting: ((line: string | undefined) => void)[] = []
  lines.on('line', (line) => waiting.shift()?.(line))
  child.once('exit', () => {
    for (const waiter of waiting.splice(0)) waiter(undefined)
  })
  const nextLine = (timeoutMs: number): Promise<string | undefined> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs)
      waiting.push((line) => {
        clearTimeout(timer)
        resolve(line)
      })
    })
  const ready = await nextLine(30_000)
  if (ready === undefined) throw new Error(`the TFTP child did not start: ${stderr}`)
  const port = (JSON.parse(ready) as { port: number }).port
  const alive = (): boolean => child.exitCode === null && child.signalCode === null
  return {
    child,
    port,
    stderr: () => stderr,
    alive,
    async command(line) {
      if (!alive()) return { alive: false }
      child.stdin!.write(`${line}\n`)
      const answer = await nextLine(30_000)
      return answer === undefined ? { alive: false } : (JSON.parse(answer) as Record<string, any>)
    },
    async stop() {
      if (!alive()) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.stdin!.write('close\n')
      const timer = setTimeout(() => child.pid !== undefined && alive() && process.kill(child.pid, 'SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    },
  }
}

async function openSocket(address: string): Promise<Socket> {
  const socket = createSocket('udp4')
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.bind(0, address, resolve))
  return socket
}

const closeAll = (sockets: Socket[]): Promise<unknown> => Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))))

interface FloodResult {
  sent: number
  /** Requests the server answered from a transfer port (each one held a transfer socket). */
  answered: number
  diedAfter?: number
  ms: number
  transferPorts: Set<number>
}

/**
 * Read requests that are never acknowledged, each from a fresh source port: three in four from a
 * different loopback address each (a spoofed flood), one in four from one address (one greedy client).
 */
async function floodReadRequests(target: FloodChild, count: number, file: string): Promise<FloodResult> {
  const started = Date.now()
  const transferPorts = new Set<number>()
  const BATCH = 200
  let sent = 0
  let answered = 0
  const openBatches: Socket[][] = []
  for (let batchStart = 0; sent < count && Date.now() - started < FLOOD_BUDGET_MS; batchStart += BATCH) {
    const size = Math.min(BATCH, count - sent)
    const sockets = await Promise.all(
      Array.from({ length: size }, (_, index) => {
        const n = batchStart + index
        return openSocket(n % 4 === 3 ? '127.2.0.1' : `127.1.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`)
      }),
    )
    for (const [index, socket] of sockets.entries()) {
      let heard = false
      socket.on('message', (_data, from) => {
        if (from.port === target.port) return
        if (!heard) answered += 1
        heard = true
        if (transferPorts.size < 256) transferPorts.add(from.port)
      })
      const options: Record<string, string> = index % 2 === 0 ? { blksize: '1468', tsize: '0' } : {}
      socket.send(requestPacket(1, file, 'octet', options), target.port, '127.0.0.1')
      sent += 1
    }
    await sleep(10)
    // Sockets stay open for a few batches, so answers that come late are still counted.
    openBatches.push(sockets)
    if (openBatches.length > 8) await closeAll(openBatches.shift()!)
    if (!target.alive()) break
  }
  await sleep(100)
  for (const batch of openBatches.splice(0)) await closeAll(batch)
  return { sent, answered, ...(target.alive() ? {} : { diedAfter: sent }), ms: Date.now() - started, transferPorts }
}

function malformedDatagram(): Buffer {
  const text = (value: string): Buffer => Buffer.from(value, 'latin1')
  switch (randomInt(14)) {
    case 0:
      return randomBytes(randomInt(0, 4)) // shorter than any TFTP packet
    case 1:
      return Buffer.concat([Buffer.from([0, 1]), text('undionly.kpxe')]) // RRQ without NULs
    case 2:
      return Buffer.concat([Buffer.from([0, 1]), text('undionly.kpxe\0')]) // RRQ without a mode
    case 3:
      return requestPacket(1, 'undionly.kpxe', 'mail')
    case 4:
      return requestPacket(1, 'undionly.kpxe', 'octet', { blksize: 'abc', tsize: '-1', windowsize: '0', timeout: '999' })
    case 5:
      return requestPacket(2, 'uploaded.bin', 'octet', { tsize: '100' }) // write request
    case 6:
      return Buffer.concat([Buffer.from([randomInt(256), randomInt(7, 256)]), randomBytes(randomInt(40))]) // unknown opcode
    case 7:
      return Buffer.concat([Buffer.from([0, 3 + randomInt(4), randomInt(256), randomInt(256)]), randomBytes(randomInt(600))]) // DATA/ACK/ERROR/OACK out of place
    case 8:
      return Buffer.concat([Buffer.from([0, 1]), text(`${'a'.repeat(700)}\0octet\0`)]) // over 512 bytes
    case 9:
      return Buffer.concat([Buffer.from([0, 1]), text('\0octet\0')]) // empty name
    case 10:
      return requestPacket(1, 'undionly.kpxe', 'octet', Object.fromEntries(Array.from({ length: 40 }, (_, index) => [`x${index}`, 'y'])))
    case 11:
      return requestPacket(1, '../../etc/passwd') // well-formed, forbidden: must not cost a log line each
    case 12:
      return requestPacket(1, `missing-${randomInt(1000)}.bin`) // well-formed, missing: same
    default:
      return randomBytes(randomInt(1, 1500))
  }
}

/** Malformed or hostile datagrams at the listening port and, one in three, at live transfer ports. */
async function floodMalformed(target: FloodChild, count: number, transferPorts: Set<number>): Promise<{ sent: number; diedAfter?: number; ms: number }> {
  const started = Date.now()
  const sockets = await Promise.all(Array.from({ length: 4 }, () => openSocket('127.3.0.1')))
  for (const socket of sockets) {
    socket.on('message', (_data, from) => {
      if (from.port !== target.port && transferPorts.size < 256) transferPorts.add(from.port)
    })
  }
  let sent = 0
  try {
    for (; sent < count && Date.now() - started < FLOOD_BUDGET_MS; sent++) {
      const ports = [...transferPorts]
      const port = ports.length > 0 && randomInt(3) === 0 ? ports[randomInt(ports.length)]! : target.port
      sockets[sent % sockets.length]!.send(malformedDatagram(), port, '127.0.0.1')
      if (sent % 100 === 99) {
        await sleep(2)
        if (!target.alive()) return { sent, diedAfter: sent, ms: Date.now() - started }
      }
    }
  } finally {
    await closeAll(sockets)
  }
  return { sent, ms: Date.now() - started }
}

/** Waits until the server has worked through the datagrams still queued for it (its counters stop moving). */
async function waitUntilQuiet(target: FloodChild): Promise<void> {
  let previous = ''
  for (const started = Date.now(); Date.now() - started < 15_000; ) {
    const stats = await target.command('stats')
    if (stats.alive === false) return
    const series = JSON.stringify(stats.series ?? Date.now())
    if (series === previous) return
    previous = series
    await sleep(150)
  }
}

const sum = (series: Record<string, number>, prefix: string): number =>
  Object.entries(series).filter(([name]) => name.startsWith(prefix)).reduce((total, [, value]) => total + value, 0)

/** A real client after the attack: curl at blksize 1468 and tftp-hpa without options, both verified. */
async function realClientsDownload(t: Test, port: number): Promise<void> {
  const downloads = await mkdtemp(path.join(base, 'downloads-'))
  const curlFile = path.join(downloads, 'undionly.kpxe')
  const curl = await runCommand('curl', ['-sS', '--max-time', '20', '--tftp-blksize', '1468', '-o', curlFile, `tftp://127.0.0.1:${port}/undionly.kpxe`])
  t.equal(curl.code, 0, `curl exits 0 ${curl.stderr}`)
  if (curl.code === 0) t.equal(await sha256OfFile(curlFile), await sha256OfFile(path.join(served, 'undionly.kpxe')), 'curl: undionly.kpxe intact')
  const hpaFile = path.join(downloads, 'ten-bytes.bin')
  const hpa = await runCommand('tftp', ['127.0.0.1', String(port), '-m', 'binary', '-c', 'get', 'ten-bytes.bin', hpaFile], 30_000)
  t.equal(hpa.code, 0, `tftp-hpa exits 0 ${hpa.stdout}${hpa.stderr}`)
  if (hpa.code === 0) t.equal(await sha256OfFile(hpaFile), await sha256OfFile(path.join(served, 'ten-bytes.bin')), 'tftp-hpa: ten-bytes.bin intact')
}

t.test(`ulimit -n 1024: ${READ_REQUESTS} unacknowledged RRQs and ${MALFORMED} malformed datagrams do not take the server down`, async (t) => {
  const target = await startFloodChild({})
  t.teardown(() => target.stop())

  const rrqs = await floodReadRequests(target, READ_REQUESTS, 'ten-bytes.bin')
  t.comment(`RRQ flood: ${rrqs.sent} sent in ${rrqs.ms} ms, ${rrqs.answered} answered from a transfer port${rrqs.diedAfter !== undefined ? `; process DIED after ${rrqs.diedAfter} RRQs` : ''}`)
  t.equal(rrqs.diedAfter, undefined, `alive after the RRQ flood ${target.stderr().split('\n').slice(0, 6).join(' | ')}`)
  if (!target.alive()) return
  const afterRequests = await target.command('stats')

  const junk = await floodMalformed(target, MALFORMED, rrqs.transferPorts)
  t.comment(`malformed flood: ${junk.sent} sent in ${junk.ms} ms${junk.diedAfter !== undefined ? `; process DIED after ${junk.diedAfter}` : ''}`)
  t.equal(junk.diedAfter, undefined, `alive after the malformed flood ${target.stderr().split('\n').slice(0, 6).join(' | ')}`)
  t.ok(rrqs.sent + junk.sent >= READ_REQUESTS + MALFORMED || rrqs.ms + junk.ms >= FLOOD_BUDGET_MS, 'the whole flood was sent (or its time budget used)')
  if (!target.alive()) return

  await waitUntilQuiet(target)
  await realClientsDownload(t, target.port)
  // The refusal burst is written after a quiet second: the flood's last transfers end on their next
  // resend, when it meets their client's closed port.
  const burstWritten = (stats: Record<string, unknown>): boolean => Object.keys((stats.logMessages ?? {}) as object).some((message) => message.startsWith('tftp burst of'))
  let stats = await target.command('stats')
  for (const started = Date.now(); !burstWritten(stats) && stats.alive !== false && Date.now() - started < 15_000; ) {
    await sleep(200)
    stats = await target.command('stats')
  }
  t.equal(stats.alive, true, 'the process is alive and answers')
  const refusedByFlood = sum(afterRequests.series ?? {}, 'slipway_tftp_refusals_total')
  const evicted = sum(afterRequests.series ?? {}, 'slipway_tftp_transfers_total{outcome="evicted"}')
  t.comment(`server figures: ${JSON.stringify({ series: stats.series, maxOpenFds: stats.maxOpenFds, maxUdpSockets: stats.maxUdpSockets, logLines: stats.logLines, rssMiB: stats.rssMiB })}`)
  t.ok(refusedByFlood + evicted > 0, `the RRQ flood met the limits: ${refusedByFlood} refused, ${evicted} evicted`)
  t.ok(sum(stats.series ?? {}, 'slipway_tftp_refusals_total{reason="malformed"}') > 0, 'malformed requests are refused and counted')
  t.ok(stats.maxOpenFds < 1000, `descriptors stayed below the limit (high-water ${stats.maxOpenFds})`)
  t.same(stats.nonHostBindings, [], 'no socket bound outside 127.0.0.1 during the flood')
  t.ok(stats.logLines < 300, `log lines stay few (${stats.logLines}): ${JSON.stringify(stats.logMessages)}`)
  const burstLines = Object.entries(stats.logMessages as Record<string, number>).filter(([message]) => message.startsWith('tftp burst of'))
  t.ok(burstLines.length > 0 && burstLines.reduce((total, [, count]) => total + count, 0) <= 10, `the flood is reported in a few burst lines: ${JSON.stringify(burstLines)}`)
  t.equal(sum(stats.series ?? {}, 'slipway_tftp_active_transfers') <= 256, true, 'active transfers gauge is bounded')
})

t.test('descriptors exhausted by the rest of the process: requests refused or served, never a crash', async (t) => {
  const target = await startFloodChild({ TFTP_FLOOD_LEAVE_FDS: '12' })
  t.teardown(() => target.stop())
  const filled = await target.command('stats')
  t.ok(filled.fillers > 900, `the child holds ${filled.fillers} descriptors, leaving about 12`)

  const rrqs = await floodReadRequests(target, 2_000, 'undionly.kpxe')
  t.comment(`RRQ flood with no descriptors left: ${rrqs.sent} sent in ${rrqs.ms} ms, ${rrqs.answered} answered from a transfer port${rrqs.diedAfter !== undefined ? `; process DIED after ${rrqs.diedAfter} RRQs` : ''}`)
  t.equal(rrqs.diedAfter, undefined, `alive after the flood ${target.stderr().split('\n').slice(0, 6).join(' | ')}`)
  if (!target.alive()) return
  await waitUntilQuiet(target)
  t.ok(target.alive(), `still alive after the flood settled ${target.stderr().split('\n').slice(0, 8).join(' | ')}`)
  if (!target.alive()) return

  await realClientsDownload(t, target.port)
  await sleep(1200) // the refusal burst ends after a quiet second
  const stats = await target.command('stats')
  t.equal(stats.alive, true)
  t.comment(`warnings: ${(stats.warnings ?? []).join('\n')}`)
  t.comment(`server figures: ${JSON.stringify({ series: stats.series, logLines: stats.logLines })}`)
  t.ok(sum(stats.series ?? {}, 'slipway_tftp_refusals_total') + sum(stats.series ?? {}, 'slipway_tftp_transfers_total{outcome="evicted"}') > 0, 'descriptor exhaustion met and counted')
})
