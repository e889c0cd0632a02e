/**
 * A scripted DHCP client for tests, run inside a lab namespace. Argument: a JSON file
 *   { sends: [{ hex?, file?, to: {address, port}, atMs }], listenMs, bindPort?, paceEvery? }
 * `file` holds many datagrams as [u16 length][bytes]... (the fuzz corpus). Every datagram received on
 * the bound port is printed as a JSON line {from, port, hex}; a final line {done, sent} ends the run.
 */
import dgram from 'node:dgram'
import { readFileSync } from 'node:fs'
import { sleep } from './wait.ts'

interface Send {
  hex?: string
  file?: string
  to: { address: string; port: number }
  atMs: number
}
const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { sends: Send[]; listenMs: number; bindPort?: number; paceEvery?: number }

const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true })
socket.on('message', (message, from) => process.stdout.write(`${JSON.stringify({ from: from.address, port: from.port, hex: message.toString('hex') })}\n`))
socket.on('error', (error) => process.stderr.write(`probe socket error: ${error.message}\n`))
await new Promise<void>((resolve) => socket.bind({ port: spec.bindPort ?? 68, address: '0.0.0.0' }, resolve))
socket.setBroadcast(true)

const sendOne = (bytes: Buffer, to: Send['to']) => new Promise<void>((resolve) => socket.send(bytes, to.port, to.address, () => resolve()))

let sent = 0
const started = Date.now()
for (const item of [...spec.sends].sort((a, b) => a.atMs - b.atMs)) {
  const wait = item.atMs - (Date.now() - started)
  if (wait > 0) await sleep(wait)
  if (item.hex !== undefined) {
    await sendOne(Buffer.from(item.hex, 'hex'), item.to)
    sent++
  }
  if (item.file) {
    const corpus = readFileSync(item.file)
    let offset = 0
    while (offset + 2 <= corpus.length) {
      const length = corpus.readUInt16BE(offset)
      await sendOne(corpus.subarray(offset + 2, offset + 2 + length), item.to)
      offset += 2 + length
      // Pace the flood a little so the kernel queues, not our memory, bound it.
      if (++sent % (spec.paceEvery ?? 500) === 0) await sleep(1)
    }
  }
}
await sleep(spec.listenMs)
process.stdout.write(`${JSON.stringify({ done: true, sent })}\n`)
socket.close()
