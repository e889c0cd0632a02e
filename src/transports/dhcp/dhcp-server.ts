/**
 * The engine's DHCP server: translates datagrams to the lease policy (src/core/dhcp) and the boot
 * decision (src/core/pxe) and back. Full mode hands out addresses and boot information; proxy mode
 * (beside an existing DHCP server) only boot information, on port 67 and on the PXE port 4011.
 *
 * Node cannot tell which interface a datagram came in on (no IP_PKTINFO) and cannot unicast to a
 * client that has no address yet (no ARP injection), so: one boot network per process, sockets bound
 * to 0.0.0.0 to see broadcast DISCOVERs, and replies broadcast to 255.255.255.255 through a socket
 * bound to serverAddress, which Linux routes out of the boot interface even without a default route.
 */
import dgram from 'node:dgram'
import type { Kysely } from 'kysely'
import type { Logger } from 'pino'
import type { Config } from '../../config.ts'
import type { EngineMetrics } from '../metrics.ts'
import { dhcpPoolOf, validateDhcpSettings, type DhcpPool } from '../../core/dhcp/dhcp-settings.ts'
import { allocateAddress, confirmAddress, declineAddress, forgetOffer, OFFER_HOLD_SECONDS, releaseAddress, type PoolCursor } from '../../core/dhcp/lease-policy.ts'
import type { DhcpLeaseStore } from '../../core/dhcp/lease-store.ts'
import { misconfigured } from '../../core/errors.ts'
import { decideBoot, DEFAULT_IPXE_BINARIES, type BootClient, type BootDecision, type IpxeBinaries } from '../../core/pxe/boot-decision.ts'
import { formatIpv4, ipv4ToBytes } from '../../lib/ipv4.ts'
import type { Database } from '../../storage/database.ts'
import { dhcpLeaseStore } from '../../storage/repositories/dhcp-leases.ts'
import {
  BOOTREPLY,
  BOOTREQUEST,
  clientArchOf,
  clientMacOf,
  DhcpCodecError,
  encodeSubOptions,
  formatDhcpPacket,
  MESSAGE_TYPE,
  MESSAGE_TYPE_NAME,
  messageTypeOf,
  OPTION,
  optionIpv4,
  optionText,
  parseDhcpPacket,
  userClassesOf,
  type DhcpPacket,
} from './dhcp-packet.ts'

const CLIENT_PORT = 68
export const PXE_PORT = 4011
const ZERO = '0.0.0.0'
const LIMITED_BROADCAST = '255.255.255.255'
const BROADCAST_FLAG = 0x8000
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
/** PXE option 43 sub-option 6 (PXE_DISCOVERY_CONTROL) = 8: no boot server discovery, boot `file` directly. */
const PXE_DISCOVERY_USE_FILE = encodeSubOptions([[6, Buffer.from([8])]])
/** iPXE option 175 sub-option 176 (no-pxedhcp) = 1: do not wait ~3 s for a proxyDHCP offer. */
const IPXE_NO_PROXY_DHCP = Buffer.from([176, 1, 1])

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

export interface DhcpServerOptions {
  settings: Config['dhcp']
  /** Base URL of the engine's HTTP for iPXE scripts and HTTP boot, e.g. `http://10.0.0.1:8080`. */
  httpUrl: string
  binaries?: IpxeBinaries
  store: Kysely<Database>
  logger: Logger
  /** Where decisions are counted for /metrics; optional so the server can run alone (tests, lab). */
  metrics?: EngineMetrics
  clock?: () => Date
}

interface Destination {
  address: string
  port: number
}

export async function startDhcpServer(options: DhcpServerOptions): Promise<DhcpServerHandle> {
  const { settings, logger } = options
  const stats: DhcpServerStats = { received: 0, replied: 0, ignored: 0, malformed: 0, malformedByCode: {}, failed: 0 }
  if (settings.mode === 'off') return { close: async () => {}, stats: () => ({ ...stats }) }

  const problems = validateDhcpSettings(settings)
  if (problems.length > 0) {
    throw misconfigured('DHCP_SETTINGS_INVALID', `invalid dhcp settings:\n  - ${problems.map((problem) => `${problem.path}: ${problem.message} (${problem.code})`).join('\n  - ')}`, { problems })
  }
  const clock = options.clock ?? (() => new Date())
  const leases: DhcpLeaseStore = dhcpLeaseStore(options.store)
  const pool = settings.mode === 'full' ? dhcpPoolOf(settings) : undefined
  const poolCursor: PoolCursor = { next: pool?.start ?? 0 }
  const bootServer = { address: settings.serverAddress, httpUrl: options.httpUrl.replace(/\/+$/, ''), binaries: options.binaries ?? DEFAULT_IPXE_BINARIES }
  const log = logger.child({ component: 'dhcp', mode: settings.mode })

  const sockets: dgram.Socket[] = []
  /** Bound to serverAddress: the one socket whose limited broadcasts leave through the boot interface. */
  let interfaceSocket: dgram.Socket | undefined
  const send = (socket: dgram.Socket, reply: DhcpPacket, to: Destination) => {
    const bytes = formatDhcpPacket(reply)
    const via = to.address === LIMITED_BROADCAST && interfaceSocket ? interfaceSocket : socket
    via.send(bytes, to.port, to.address, (error) => {
      if (error) {
        stats.failed++
        log.warn({ err: error, to }, 'could not send DHCP reply')
      } else stats.replied++
    })
  }

  /** Every datagram goes through here: nothing a client sends may crash the server. */
  const receive = (socket: dgram.Socket, onPort: number) => (message: Buffer, from: dgram.RemoteInfo) => {
    stats.received++
    let request: DhcpPacket
    try {
      request = parseDhcpPacket(message)
    } catch (error) {
      const code = error instanceof DhcpCodecError ? error.code : 'UNPARSABLE'
      stats.malformed++
      stats.malformedByCode[code] = (stats.malformedByCode[code] ?? 0) + 1
      options.metrics?.countDhcpMalformed(code)
      log.debug({ from: from.address, code }, 'malformed DHCP datagram ignored')
      return
    }
    handle(socket, onPort, request, from).catch((error: unknown) => {
      stats.failed++
      log.error({ err: error }, 'DHCP request failed')
    })
  }

  const handle = async (socket: dgram.Socket, onPort: number, request: DhcpPacket, from: dgram.RemoteInfo): Promise<void> => {
    const type = messageTypeOf(request)
    const mac = clientMacOf(request)
    if (request.op !== BOOTREQUEST || type === undefined || !mac) {
      stats.ignored++
      return
    }
    const client = bootClientOf(request, mac)
    const decision = decideBoot(client, bootServer)
    const context = {
      mac,
      type: MESSAGE_TYPE_NAME[type] ?? `type-${type}`,
      arch: client.arch,
      vendorClass: client.vendorClass,
      userClasses: client.userClasses,
      ...(request.giaddr !== ZERO ? { relay: request.giaddr } : {}),
    }
    const outcome = settings.mode === 'proxy' ? await answerAsProxy(socket, onPort, request, type, decision, from) : await answerAsServer(socket, request, type, mac, decision)
    if (outcome === undefined) {
      stats.ignored++
      return
    }
    const level = outcome.level ?? 'info'
    options.metrics?.countDhcpDecision({ mode: settings.mode, type: context.type, outcome: outcome.message, boot: decision.kind })
    log[level]({ ...context, ...outcome.fields, reason: outcome.why ?? decision.reason }, outcome.message)
  }

  interface Outcome {
    message: string
    fields?: Record<string, unknown>
    why?: string
    level?: 'info' | 'warn'
  }

  const answerAsServer = async (socket: dgram.Socket, request: DhcpPacket, type: number, mac: string, decision: BootDecision): Promise<Outcome | undefined> => {
    const now = clock()
    const leaseRequest = {
      mac,
      clientId: request.options.get(OPTION.CLIENT_ID)?.toString('hex') ?? null,
      hostname: optionText(request, OPTION.HOSTNAME) ?? null,
    }
    const file = decision.kind === 'none' ? undefined : decision.filename
    const serverId = optionIpv4(request, OPTION.SERVER_ID)
    const requestedIp = optionIpv4(request, OPTION.REQUESTED_IP)
    switch (type) {
      case MESSAGE_TYPE.DISCOVER: {
        const allocation = await allocateAddress(leases, pool!, { ...leaseRequest, ...(requestedIp ? { requestedIp } : {}) }, 'offered', OFFER_HOLD_SECONDS, now, poolCursor)
        if (!allocation.ok) return { message: 'no offer', fields: { code: allocation.code }, why: allocation.message, level: 'warn' }
        const reply = leaseReply(request, MESSAGE_TYPE.OFFER, allocation.ip, allocation.hostname, decision)
        send(socket, reply, destinationOf(request, reply))
        return { message: 'offer', fields: { offered: { ip: allocation.ip, file }, addressFrom: allocation.source } }
      }
      case MESSAGE_TYPE.REQUEST: {
        if (serverId !== undefined && serverId !== settings.serverAddress) {
          const forgot = await forgetOffer(leases, mac, now)
          return { message: 'request for another server: silent', fields: { serverId, releasedOurOffer: forgot }, why: 'option 54 names another server' }
        }
        // SELECTING and INIT-REBOOT carry option 50; RENEWING and REBINDING carry the address in ciaddr.
        const ip = requestedIp ?? (request.ciaddr !== ZERO ? request.ciaddr : undefined)
        if (!ip) return undefined
        const result = await confirmAddress(leases, pool!, { ...leaseRequest, requestedIp: ip }, settings.leaseSeconds, now)
        if (!result.ok) {
          const reply = nakReply(request, result.message)
          send(socket, reply, destinationOf(request, reply))
          return { message: 'nak', fields: { requested: ip, code: result.code }, why: result.message, level: 'warn' }
        }
        const reply = leaseReply(request, MESSAGE_TYPE.ACK, ip, result.hostname, decision)
        send(socket, reply, destinationOf(request, reply))
        return { message: 'ack', fields: { offered: { ip, file }, state: requestedIp ? (serverId ? 'selecting' : 'init-reboot') : 'renewing' } }
      }
      case MESSAGE_TYPE.RELEASE: {
        if (serverId !== undefined && serverId !== settings.serverAddress) return undefined
        const released = await releaseAddress(leases, mac, request.ciaddr, now)
        return { message: 'release', fields: { ip: request.ciaddr, released }, why: released ? 'client released its lease' : 'no lease of this client on that address' }
      }
      case MESSAGE_TYPE.DECLINE: {
        if (serverId !== undefined && serverId !== settings.serverAddress) return undefined
        if (!requestedIp) return undefined
        const declined = await declineAddress(leases, mac, requestedIp, now)
        return { message: 'decline', fields: { ip: requestedIp, quarantined: declined }, why: 'client found the address in use', level: 'warn' }
      }
      case MESSAGE_TYPE.INFORM: {
        // RFC 2131 3.4: configuration only; no yiaddr, no lease time.
        const reply = leaseReply(request, MESSAGE_TYPE.ACK, undefined, null, decision)
        send(socket, reply, destinationOf(request, reply))
        return { message: 'inform ack', fields: { ip: request.ciaddr, offered: { file } } }
      }
      default:
        return undefined
    }
  }

  const answerAsProxy = async (socket: dgram.Socket, onPort: number, request: DhcpPacket, type: number, decision: BootDecision, from: dgram.RemoteInfo): Promise<Outcome | undefined> => {
    // Only netboot clients: anything else is the address server's business.
    if (decision.kind === 'none') return undefined
    if (onPort === PXE_PORT) {
      if (type !== MESSAGE_TYPE.REQUEST && type !== MESSAGE_TYPE.INFORM) return undefined
      const reply = proxyReply(request, MESSAGE_TYPE.ACK, decision)
      // The client already has an address from the DHCP server and asked us directly: answer it directly.
      send(socket, reply, { address: from.address, port: from.port })
      return { message: 'proxy ack (port 4011)', fields: { offered: { ip: null, file: decision.filename } } }
    }
    if (type !== MESSAGE_TYPE.DISCOVER) return undefined
    const reply = proxyReply(request, MESSAGE_TYPE.OFFER, decision)
    send(socket, reply, destinationOf(request, reply))
    return { message: 'proxy offer', fields: { offered: { ip: null, file: decision.filename } } }
  }

  const baseReply = (request: DhcpPacket, type: number): DhcpPacket => ({
    op: BOOTREPLY,
    htype: request.htype,
    hlen: request.hlen,
    hops: 0,
    xid: request.xid,
    secs: 0,
    flags: request.flags,
    ciaddr: ZERO,
    yiaddr: ZERO,
    siaddr: ZERO,
    giaddr: request.giaddr,
    chaddr: request.chaddr,
    sname: '',
    file: '',
    options: new Map([
      [OPTION.MESSAGE_TYPE, Buffer.from([type])],
      [OPTION.SERVER_ID, ipv4ToBytes(settings.serverAddress)],
    ]),
  })

  const leaseReply = (request: DhcpPacket, type: number, ip: string | undefined, hostname: string | null, decision: BootDecision): DhcpPacket => {
    const reply = baseReply(request, type)
    const options = reply.options
    if (ip) {
      reply.yiaddr = ip
      options.set(OPTION.LEASE_TIME, uint32(settings.leaseSeconds))
      options.set(OPTION.RENEWAL_TIME, uint32(Math.floor(settings.leaseSeconds / 2)))
      options.set(OPTION.REBINDING_TIME, uint32(Math.floor((settings.leaseSeconds * 7) / 8)))
    } else {
      reply.ciaddr = request.ciaddr
    }
    options.set(OPTION.SUBNET_MASK, uint32(pool!.subnet.mask))
    options.set(OPTION.BROADCAST_ADDRESS, ipv4ToBytes(formatIpv4(pool!.subnet.broadcast)))
    if (settings.router) options.set(OPTION.ROUTER, ipv4ToBytes(settings.router))
    if (settings.dnsServers.length > 0) options.set(OPTION.DNS_SERVERS, Buffer.concat(settings.dnsServers.map(ipv4ToBytes)))
    if (settings.domain) options.set(OPTION.DOMAIN_NAME, Buffer.from(settings.domain, 'latin1'))
    if (hostname) options.set(OPTION.HOSTNAME, Buffer.from(hostname, 'latin1'))
    addBootInformation(reply, request, decision)
    echoRelayAgentInformation(reply, request)
    return reply
  }

  const proxyReply = (request: DhcpPacket, type: number, decision: BootDecision): DhcpPacket => {
    const reply = baseReply(request, type)
    reply.ciaddr = type === MESSAGE_TYPE.ACK ? request.ciaddr : ZERO
    addBootInformation(reply, request, decision)
    // A proxy offer is only taken by PXE firmware when it says PXEClient and carries option 43.
    if (!reply.options.has(OPTION.VENDOR_CLASS)) reply.options.set(OPTION.VENDOR_CLASS, Buffer.from('PXEClient'))
    if (reply.options.get(OPTION.VENDOR_CLASS)!.toString() === 'PXEClient') reply.options.set(OPTION.VENDOR_SPECIFIC, PXE_DISCOVERY_USE_FILE)
    echoRelayAgentInformation(reply, request)
    return reply
  }

  const nakReply = (request: DhcpPacket, why: string): DhcpPacket => {
    const reply = baseReply(request, MESSAGE_TYPE.NAK)
    reply.options.set(OPTION.MESSAGE, Buffer.from(why, 'latin1').subarray(0, 255))
    // RFC 2131 4.3.2: a NAK through a relay must be broadcast by the relay.
    if (request.giaddr !== ZERO) reply.flags |= BROADCAST_FLAG
    echoRelayAgentInformation(reply, request)
    return reply
  }

  /** Many ROMs ignore options 66/67 and read siaddr/sname/file, so both are always set. */
  const addBootInformation = (reply: DhcpPacket, request: DhcpPacket, decision: BootDecision) => {
    if (decision.kind === 'none') return
    reply.siaddr = decision.nextServer
    reply.sname = decision.nextServer
    // A filename that does not fit the 128-byte field travels only in option 67.
    if (Buffer.byteLength(decision.filename, 'latin1') < 128) reply.file = decision.filename
    reply.options.set(OPTION.TFTP_SERVER_NAME, Buffer.from(decision.nextServer, 'latin1'))
    reply.options.set(OPTION.BOOTFILE_NAME, Buffer.from(decision.filename, 'latin1'))
    if (decision.vendorClass) reply.options.set(OPTION.VENDOR_CLASS, Buffer.from(decision.vendorClass, 'latin1'))
    if (decision.vendorClass === 'PXEClient') reply.options.set(OPTION.VENDOR_SPECIFIC, PXE_DISCOVERY_USE_FILE)
    if (decision.ipxeNoProxyDhcp) reply.options.set(OPTION.IPXE_ENCAPSULATED, IPXE_NO_PROXY_DHCP)
    const uuid = request.options.get(OPTION.CLIENT_UUID)
    if (uuid) reply.options.set(OPTION.CLIENT_UUID, uuid)
  }

  /**
   * RFC 2131 4.1 with one exception: a client without an address gets the reply by broadcast (no ARP
   * injection in Node). Broadcasts go to 255.255.255.255, not the subnet broadcast: UEFI firmware's own
   * PXE client ignores offers sent to the subnet broadcast address (iPXE and udhcpc accept both).
   */
  const broadcast: Destination = { address: LIMITED_BROADCAST, port: CLIENT_PORT }
  const destinationOf = (request: DhcpPacket, reply: DhcpPacket): Destination => {
    if (request.giaddr !== ZERO) return { address: request.giaddr, port: settings.port }
    if (messageTypeOf(reply) === MESSAGE_TYPE.NAK) return broadcast
    if (request.ciaddr !== ZERO && (request.flags & BROADCAST_FLAG) === 0) return { address: request.ciaddr, port: CLIENT_PORT }
    return broadcast
  }

  const ports = settings.mode === 'proxy' ? [settings.port, PXE_PORT] : [settings.port]
  // Node cannot pick the interface of a send (no SO_BINDTODEVICE/IP_PKTINFO), but Linux routes a
  // limited broadcast out of the interface owning the socket's bound address: so besides the 0.0.0.0
  // sockets that see broadcasts, one socket is bound to serverAddress:port (it also receives the
  // unicasts addressed to it, such as renewals).
  const bindings = [...ports.map((port) => ({ port, address: '0.0.0.0' })), { port: settings.port, address: settings.serverAddress }]
  try {
    for (const { port, address } of bindings) {
      const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true })
      sockets.push(socket)
      if (address !== '0.0.0.0') interfaceSocket = socket
      socket.on('message', receive(socket, port))
      socket.on('error', (error) => log.error({ err: error, port }, 'DHCP socket error'))
      await new Promise<void>((resolve, reject) => {
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
  } catch (error) {
    await closeAll(sockets)
    throw error
  }
  log.info({ ports, serverAddress: settings.serverAddress, ...(pool ? { pool: `${settings.rangeStart}-${settings.rangeEnd}` } : {}) }, 'DHCP server listening')
  return { close: () => closeAll(sockets), stats: () => ({ ...stats, malformedByCode: { ...stats.malformedByCode } }) }
}

function bootClientOf(request: DhcpPacket, mac: string): BootClient {
  const arch = clientArchOf(request)
  const vendorClass = optionText(request, OPTION.VENDOR_CLASS)
  return {
    mac,
    ...(arch !== undefined ? { arch } : {}),
    ...(vendorClass !== undefined ? { vendorClass } : {}),
    userClasses: userClassesOf(request),
    sentIpxeOptions: request.options.has(OPTION.IPXE_ENCAPSULATED),
  }
}

function echoRelayAgentInformation(reply: DhcpPacket, request: DhcpPacket) {
  // RFC 3046 2.2: a relay strips option 82 from our reply, so it must come back unchanged.
  const relayInfo = request.options.get(OPTION.RELAY_AGENT_INFO)
  if (relayInfo && request.giaddr !== ZERO) reply.options.set(OPTION.RELAY_AGENT_INFO, relayInfo)
}

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(value >>> 0, 0)
  return bytes
}

function closeAll(sockets: dgram.Socket[]): Promise<void> {
  return Promise.all(sockets.map((socket) => new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve())
    } catch {
      resolve() // already closed
    }
  }))).then(() => undefined)
}
