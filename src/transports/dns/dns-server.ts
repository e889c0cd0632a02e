import dgram from 'node:dgram'
import net from 'node:net'
import type { Logger } from 'pino'
import type { DnsAnswer, DnsZone } from '../../core/dns/dns-zone.ts'
import { headerOnly, plausibleQuery, RCODE, readQuery, writeReply } from './dns-wire.ts'

export interface DnsServerOptions {
  host: string
  port: number
  zone: DnsZone
  logger: Logger
}

export interface DnsServer {
  udpPort: number
  tcpPort: number
  close(): Promise<void>
}

const TCP_IDLE_MS = 10_000
const TCP_MAX_CONNECTIONS = 256

/** The answer to one wire query, or undefined to stay silent (a response, a runt). Never throws. */
export function answerQuery(zone: DnsZone, message: Buffer, source: string, transport: 'udp' | 'tcp'): { reply: Buffer; rcode: string } | undefined {
  const refuse = (rcode: keyof typeof RCODE) => {
    const reply = headerOnly(message, RCODE[rcode])
    return reply && { reply, rcode }
  }
  if (!plausibleQuery(message)) return refuse('FORMERR')
  const query = readQuery(message)
  if (!query) return refuse('FORMERR')
  if (query.opcode !== 0) return refuse('NOTIMP')
  let answer: DnsAnswer
  try {
    answer =
      query.class === 1 || query.class === 255
        ? zone.answer({ name: query.name, type: query.type }, { source, ...(query.edns?.subnet ? { subnet: { address: query.edns.subnet.ip, sourcePrefixLength: query.edns.subnet.sourcePrefixLength } } : {}) })
        : { rcode: 'REFUSED', authoritative: false, answers: [], authority: [], additional: [], scopePrefixLength: 0 }
    return { reply: writeReply(query, answer, transport), rcode: answer.rcode }
  } catch {
    return refuse('SERVFAIL')
  }
}

/**
 * The authoritative DNS server on UDP and TCP (RFC 7766 framing), answering from the zone in
 * memory through its own wire codec (dns-wire.ts): every datagram is checked before it is read, and
 * no packet, however malformed, stops the server.
 */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const { zone, logger } = options
  const family = net.isIPv6(options.host) ? 'udp6' : 'udp4'
  const udp = dgram.createSocket({ type: family, reuseAddr: false })
  udp.on('error', (error) => logger.error({ err: error }, 'dns udp socket error'))
  udp.on('message', (message, remote) => {
    const answered = answerQuery(zone, message, remote.address, 'udp')
    if (!answered) return
    udp.send(answered.reply, remote.port, remote.address, (error) => error && logger.debug({ err: error }, 'dns reply not sent'))
  })
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject)
    udp.bind(options.port, options.host, () => {
      udp.off('error', reject)
      resolve()
    })
  })
  const udpPort = udp.address().port

  const sockets = new Set<net.Socket>()
  const tcp = net.createServer((socket) => {
    if (sockets.size >= TCP_MAX_CONNECTIONS) return socket.destroy()
    sockets.add(socket)
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy())
    let pending = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0)
        if (pending.length < 2 + length) break
        const message = pending.subarray(2, 2 + length)
        pending = pending.subarray(2 + length)
        const answered = answerQuery(zone, Buffer.from(message), socket.remoteAddress ?? '', 'tcp')
        if (!answered) continue
        const framed = Buffer.alloc(2 + answered.reply.length)
        framed.writeUInt16BE(answered.reply.length, 0)
        answered.reply.copy(framed, 2)
        socket.write(framed)
      }
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => sockets.delete(socket))
  })
  tcp.on('error', (error) => logger.error({ err: error }, 'dns tcp server error'))
  // The same port as UDP (a port of 0 lets the OS pick for UDP; TCP then takes the same number).
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    tcp.listen(udpPort, options.host, () => {
      tcp.off('error', reject)
      resolve()
    })
  })
  const tcpPort = (tcp.address() as net.AddressInfo).port
  return {
    udpPort,
    tcpPort,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => tcp.close(() => resolve()))
      await new Promise<void>((resolve) => udp.close(() => resolve()))
    },
  }
}
