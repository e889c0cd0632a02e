/**
 * The DHCP server's UDP loop, as smee's: it reads datagrams, parses them, fixes the peer address and
 * hands each one to a DhcpHandler, then sends what the handler returned. Nothing a client sends may
 * crash it; it decides nothing about DHCP.
 *
 * Node cannot tell which interface a datagram came in on (no IP_PKTINFO) and cannot unicast to a
 * client that has no address yet (no ARP injection), so: one boot network per process, sockets bound
 * to 0.0.0.0 to see broadcast DISCOVERs, and replies broadcast to 255.255.255.255 through a socket
 * bound to serverAddress, which Linux routes out of the boot interface even without a default route.
 */
import dgram from 'node:dgram'
import type { Logger } from 'pino'
import { misconfigured } from '../../core/errors.ts'
import type { DhcpHandler } from './dhcp-handler.ts'
import type { DhcpOutcome } from './dhcp-outcome.ts'
import { DhcpCodecError, formatDhcpPacket, parseDhcpPacket, type DhcpPacket } from './dhcp-packet.ts'
import { LIMITED_BROADCAST, peerOf, type DhcpPeer } from './dhcp-peer.ts'

const ANY_ADDRESS = '0.0.0.0'
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024

export interface DhcpServerStats {
  received: number
  replied: number
  ignored: number
  malformed: number
  malformedByCode: Record<string, number>
  failed: number
}

export interface DhcpServerHandle {
  close(): Promise<void>
  stats(): DhcpServerStats
}

/** Told about what the loop saw, for the log and /metrics. */
export interface DhcpObserver {
  answered(outcome: DhcpOutcome): void
  malformed(code: string): void
}

export interface DhcpSocketLoopOptions {
  /** The DHCP server port (67): relays are answered there, and the serverAddress socket listens on it. */
  serverPort: number
  /** Further ports to listen on, on all addresses (4011 in proxy mode). */
  extraPorts?: readonly number[]
  serverAddress: string
  handler: DhcpHandler
  observer: DhcpObserver
  log: Logger
}

export const emptyDhcpStats = (): DhcpServerStats => ({ received: 0, replied: 0, ignored: 0, malformed: 0, malformedByCode: {}, failed: 0 })

export async function startDhcpSocketLoop(options: DhcpSocketLoopOptions): Promise<DhcpServerHandle> {
  const { handler, observer, log, serverPort } = options
  const stats = emptyDhcpStats()
  const sockets: dgram.Socket[] = []
  /** Bound to serverAddress: the one socket whose limited broadcasts leave through the boot interface. */
  let interfaceSocket: dgram.Socket | undefined

  const send = (socket: dgram.Socket, reply: DhcpPacket, to: DhcpPeer) => {
    const bytes = formatDhcpPacket(reply)
    const via = to.address === LIMITED_BROADCAST && interfaceSocket ? interfaceSocket : socket
    via.send(bytes, to.port, to.address, (error) => {
      if (error) {
        stats.failed++
        log.warn({ err: error, to }, 'could not send DHCP reply')
      } else stats.replied++
    })
  }

  const answer = async (socket: dgram.Socket, localPort: number, packet: DhcpPacket, from: dgram.RemoteInfo): Promise<void> => {
    const response = await handler.respond(packet, { localPort, sender: { address: from.address, port: from.port }, peer: peerOf(packet, serverPort) })
    if (response === undefined) {
      stats.ignored++
      return
    }
    if (response.reply) send(socket, response.reply, response.destination)
    observer.answered(response.outcome)
  }

  const receive = (socket: dgram.Socket, localPort: number) => (message: Buffer, from: dgram.RemoteInfo) => {
    stats.received++
    let packet: DhcpPacket
    try {
      packet = parseDhcpPacket(message)
    } catch (error) {
      const code = error instanceof DhcpCodecError ? error.code : 'UNPARSABLE'
      stats.malformed++
      stats.malformedByCode[code] = (stats.malformedByCode[code] ?? 0) + 1
      observer.malformed(code)
      log.debug({ from: from.address, code }, 'malformed DHCP datagram ignored')
      return
    }
    answer(socket, localPort, packet, from).catch((error: unknown) => {
      stats.failed++
      log.error({ err: error }, 'DHCP request failed')
    })
  }

  // Node cannot pick the interface of a send (no SO_BINDTODEVICE/IP_PKTINFO), but Linux routes a
  // limited broadcast out of the interface owning the socket's bound address: so besides the 0.0.0.0
  // sockets that see broadcasts, one socket is bound to serverAddress:port (it also receives the
  // unicasts addressed to it, such as renewals).
  const ports = [serverPort, ...(options.extraPorts ?? [])]
  const bindings = [...ports.map((port) => ({ port, address: ANY_ADDRESS })), { port: serverPort, address: options.serverAddress }]
  try {
    for (const { port, address } of bindings) {
      const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true })
      sockets.push(socket)
      if (address !== ANY_ADDRESS) interfaceSocket = socket
      socket.on('message', receive(socket, port))
      socket.on('error', (error) => log.error({ err: error, port }, 'DHCP socket error'))
      await bindSocket(socket, port, address, log)
    }
  } catch (error) {
    await closeAll(sockets)
    throw error
  }
  return { close: () => closeAll(sockets), stats: () => ({ ...stats, malformedByCode: { ...stats.malformedByCode } }) }
}

function bindSocket(socket: dgram.Socket, port: number, address: string, log: Logger): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRNOTAVAIL'
          ? misconfigured('DHCP_SERVER_ADDRESS_NOT_LOCAL', `dhcp.serverAddress ${address} is not an address of this host's boot interface`)
          : error,
      ),
    )
    socket.bind({ port, address }, () => {
      socket.removeAllListeners('error')
      socket.on('error', (error) => log.error({ err: error, port, address }, 'DHCP socket error'))
      socket.setBroadcast(true)
      // A rack powering on at once sends bursts: queue them in the kernel rather than drop them.
      try {
        socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES)
      } catch {
        // capped by net.core.rmem_max; the default still works
      }
      resolve()
    })
  })
}

function closeAll(sockets: dgram.Socket[]): Promise<void> {
  return Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          try {
            socket.close(() => resolve())
          } catch {
            resolve() // already closed
          }
        }),
    ),
  ).then(() => undefined)
}
