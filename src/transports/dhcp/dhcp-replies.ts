/**
 * The replies the engine sends (OFFER, ACK, NAK; proxy OFFER and ACK), built as values from the
 * request, the boot decision and the settings: nothing here touches a socket or the lease store.
 */
import type { BootDecision } from '../../core/dhcp/boot-decision.ts'
import { formatIpv4, ipv4ToBytes, type Ipv4Subnet } from '../../lib/ipv4.ts'
import { BOOTREPLY, BROADCAST_FLAG, encodeSubOptions, MESSAGE_TYPE, NO_ADDRESS, OPTION, type DhcpPacket } from './dhcp-packet.ts'

/** PXE option 43 sub-option 6 (PXE_DISCOVERY_CONTROL) = 8: no boot server discovery, boot `file` directly. */
const PXE_DISCOVERY_USE_FILE = encodeSubOptions([[6, Buffer.from([8])]])
/** iPXE option 175 sub-option 176 (no-pxedhcp) = 1: do not wait ~3 s for a proxyDHCP offer. */
const IPXE_NO_PROXY_DHCP = Buffer.from([176, 1, 1])

/** What a full-mode reply tells a client about the network besides its address. */
export interface LeaseNetwork {
  serverAddress: string
  leaseSeconds: number
  subnet: Ipv4Subnet
  /** Empty: no option 3. */
  router: string
  dnsServers: readonly string[]
  /** Empty: no option 15. */
  domain: string
}

export interface LeasedAddress {
  ip: string
  hostname: string | null
}

/** A netboot decision: proxy replies exist only for those. */
export type NetbootDecision = Exclude<BootDecision, { kind: 'none' }>

export const offerReply = (request: DhcpPacket, lease: LeasedAddress, decision: BootDecision, network: LeaseNetwork): DhcpPacket =>
  leaseReply(request, MESSAGE_TYPE.OFFER, lease, decision, network)

export const ackReply = (request: DhcpPacket, lease: LeasedAddress, decision: BootDecision, network: LeaseNetwork): DhcpPacket =>
  leaseReply(request, MESSAGE_TYPE.ACK, lease, decision, network)

/** RFC 2131 3.4: the answer to an INFORM is configuration only; no yiaddr, no lease time. */
export const informAckReply = (request: DhcpPacket, decision: BootDecision, network: LeaseNetwork): DhcpPacket =>
  leaseReply(request, MESSAGE_TYPE.ACK, undefined, decision, network)

export function nakReply(request: DhcpPacket, why: string, serverAddress: string): DhcpPacket {
  const reply = baseReply(request, MESSAGE_TYPE.NAK, serverAddress)
  reply.options.set(OPTION.MESSAGE, Buffer.from(why, 'latin1').subarray(0, 255))
  // RFC 2131 4.3.2: a NAK through a relay must be broadcast by the relay.
  if (request.giaddr !== NO_ADDRESS) reply.flags |= BROADCAST_FLAG
  echoRelayAgentInformation(reply, request)
  return reply
}

/** The proxyDHCP OFFER on port 67: boot information only, beside the address server's own offer. */
export const proxyOfferReply = (request: DhcpPacket, decision: NetbootDecision, serverAddress: string): DhcpPacket =>
  proxyReply(request, MESSAGE_TYPE.OFFER, decision, serverAddress)

/** The proxyDHCP ACK on port 4011, to a client that already has its address. */
export const proxyAckReply = (request: DhcpPacket, decision: NetbootDecision, serverAddress: string): DhcpPacket =>
  proxyReply(request, MESSAGE_TYPE.ACK, decision, serverAddress)

function baseReply(request: DhcpPacket, type: number, serverAddress: string): DhcpPacket {
  return {
    op: BOOTREPLY,
    htype: request.htype,
    hlen: request.hlen,
    hops: 0,
    xid: request.xid,
    secs: 0,
    flags: request.flags,
    ciaddr: NO_ADDRESS,
    yiaddr: NO_ADDRESS,
    siaddr: NO_ADDRESS,
    giaddr: request.giaddr,
    chaddr: request.chaddr,
    sname: '',
    file: '',
    options: new Map([
      [OPTION.MESSAGE_TYPE, Buffer.from([type])],
      [OPTION.SERVER_ID, ipv4ToBytes(serverAddress)],
    ]),
  }
}

function leaseReply(request: DhcpPacket, type: number, lease: LeasedAddress | undefined, decision: BootDecision, network: LeaseNetwork): DhcpPacket {
  const reply = baseReply(request, type, network.serverAddress)
  const options = reply.options
  if (lease) {
    reply.yiaddr = lease.ip
    options.set(OPTION.LEASE_TIME, uint32(network.leaseSeconds))
    options.set(OPTION.RENEWAL_TIME, uint32(Math.floor(network.leaseSeconds / 2)))
    options.set(OPTION.REBINDING_TIME, uint32(Math.floor((network.leaseSeconds * 7) / 8)))
  } else {
    reply.ciaddr = request.ciaddr
  }
  options.set(OPTION.SUBNET_MASK, uint32(network.subnet.mask))
  options.set(OPTION.BROADCAST_ADDRESS, ipv4ToBytes(formatIpv4(network.subnet.broadcast)))
  if (network.router) options.set(OPTION.ROUTER, ipv4ToBytes(network.router))
  if (network.dnsServers.length > 0) options.set(OPTION.DNS_SERVERS, Buffer.concat(network.dnsServers.map(ipv4ToBytes)))
  if (network.domain) options.set(OPTION.DOMAIN_NAME, Buffer.from(network.domain, 'latin1'))
  if (lease?.hostname) options.set(OPTION.HOSTNAME, Buffer.from(lease.hostname, 'latin1'))
  addBootInformation(reply, request, decision)
  echoRelayAgentInformation(reply, request)
  return reply
}

function proxyReply(request: DhcpPacket, type: number, decision: NetbootDecision, serverAddress: string): DhcpPacket {
  const reply = baseReply(request, type, serverAddress)
  reply.ciaddr = type === MESSAGE_TYPE.ACK ? request.ciaddr : NO_ADDRESS
  addBootInformation(reply, request, decision)
  // A proxy offer is only taken by PXE firmware when it says PXEClient and carries option 43.
  if (!reply.options.has(OPTION.VENDOR_CLASS)) reply.options.set(OPTION.VENDOR_CLASS, Buffer.from('PXEClient'))
  if (reply.options.get(OPTION.VENDOR_CLASS)!.toString() === 'PXEClient') reply.options.set(OPTION.VENDOR_SPECIFIC, PXE_DISCOVERY_USE_FILE)
  echoRelayAgentInformation(reply, request)
  return reply
}

/** Many ROMs ignore options 66/67 and read siaddr/sname/file, so both are always set. */
function addBootInformation(reply: DhcpPacket, request: DhcpPacket, decision: BootDecision) {
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

/** RFC 3046 2.2: a relay strips option 82 from our reply, so it must come back unchanged. */
function echoRelayAgentInformation(reply: DhcpPacket, request: DhcpPacket) {
  const relayInfo = request.options.get(OPTION.RELAY_AGENT_INFO)
  if (relayInfo && request.giaddr !== NO_ADDRESS) reply.options.set(OPTION.RELAY_AGENT_INFO, relayInfo)
}

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(value >>> 0, 0)
  return bytes
}
