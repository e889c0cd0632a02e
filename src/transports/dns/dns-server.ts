import dgram from 'node:dgram'
import net from 'node:net'
import type { Logger } from 'pino'
import type { DnsAnswer, DnsZone } from '../../core/dns/dns-zone.ts'
import type { GovernedListener } from '../connection-governor.ts'
import { headerOnly, plausibleQuery, RCODE, readQuery, writeReply } from './dns-wire.ts'

export interface DnsServerOptions {
  host: string
  port: number
  zone: DnsZone
  logger: Logger
  /** Bounds the TCP connections: idle timeout, per-client and total caps (connection-governor.ts). */
  connections: GovernedListener
}

export interface DnsServer {
  udpPort: number
  tcpPort: number
  close(): Promise<void>
}

/** Answers queued for a client that does not read them, before its queries are no longer read either. */
const TCP_MAX_UNSENT_BYTES = 64 * 1024

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
/** How many ports the OS may pick for UDP before one is also free for TCP (port 0 only). */
const PICK_ATTEMPTS = 20

async function openUdp(options: DnsServerOptions): Promise<dgram.Socket> {
  const { zone, logger } = options
  const udp = dgram.createSocket({ type: net.isIPv6(options.host) ? 'udp6' : 'udp4', reuseAddr: false })
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
  return udp
}

function listenTcp(tcp: net.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    tcp.listen(port, host, () => {
      tcp.off('error', reject)
      resolve()
    })
  })
}

export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const { zone, logger } = options

  const tcp = net.createServer((socket) => {
    // Over a cap, the governor closes the longest-idle connection first (RFC 7766 6.2.3), else this one.
    const connection = options.connections.admit(socket)
    if (!connection) return
    let pending: Buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      // Pipelined queries are answered one after the other, so in the order asked.
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0)
        if (pending.length < 2 + length) break
        const message = Buffer.from(pending.subarray(2, 2 + length))
        pending = pending.subarray(2 + length)
        const answered = answerQuery(zone, message, socket.remoteAddress ?? '', 'tcp')
        if (!answered) continue
        // Only an answered query restarts the idle timer: bytes, a partial message or a runt do not.
        connection.requestStarted()
        const framed = Buffer.alloc(2 + answered.reply.length)
        framed.writeUInt16BE(answered.reply.length, 0)
        answered.reply.copy(framed, 2)
        socket.write(framed)
        connection.requestEnded()
      }
      if (socket.writableLength > TCP_MAX_UNSENT_BYTES && !socket.isPaused()) {
        // It stops reading while it does not read: its idle timer then closes it if it never does.
        socket.pause()
        socket.once('drain', () => socket.resume())
      }
    })
    socket.on('error', () => socket.destroy())
  })
  tcp.on('error', (error) => logger.error({ err: error }, 'dns tcp server error'))
  // The same port as UDP (a port of 0 lets the OS pick for UDP; TCP then takes the same number).
  // When that number is taken for TCP, the UDP socket is closed and the OS picks again.
  let udp: dgram.Socket
  for (let attempt = 1; ; attempt++) {
    udp = await openUdp(options)
    try {
      await listenTcp(tcp, udp.address().port, options.host)
      break
    } catch (error) {
      await new Promise<void>((resolve) => udp.close(() => resolve()))
      if (options.port === 0 && (error as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < PICK_ATTEMPTS) continue
      throw error
    }
  }
  const udpPort = udp.address().port
  const tcpPort = (tcp.address() as net.AddressInfo).port
  return {
    udpPort,
    tcpPort,
    close: async () => {
      options.connections.destroyAll()
      await new Promise<void>((resolve) => tcp.close(() => resolve()))
      await new Promise<void>((resolve) => udp.close(() => resolve()))
    },
  }
}
