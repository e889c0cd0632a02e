/**
 * Full mode: the engine is the network's DHCP server, handing out addresses through the lease policy
 * (src/core/dhcp) and boot information from decideBoot. smee's reservation handler, plus a pool.
 */
import { dhcpPoolOf, type DhcpPool, type DhcpSettings } from '../../core/dhcp/dhcp-settings.ts'
import { allocateAddress, confirmAddress, declineAddress, forgetOffer, OFFER_HOLD_SECONDS, releaseAddress, type PoolCursor } from '../../core/dhcp/lease-policy.ts'
import type { DhcpLeaseStore } from '../../core/dhcp/lease-store.ts'
import { decideBoot, type BootDecision, type BootServer } from '../../core/dhcp/boot-decision.ts'
import type { DhcpArrival, DhcpHandler, DhcpResponse } from './dhcp-handler.ts'
import { outcomeOf } from './dhcp-outcome.ts'
import { MESSAGE_TYPE, NO_ADDRESS, OPTION, optionIpv4, optionText, type DhcpPacket } from './dhcp-packet.ts'
import { nakPeerOf } from './dhcp-peer.ts'
import { ackReply, informAckReply, nakReply, offerReply, type LeaseNetwork } from './dhcp-replies.ts'
import { readDhcpRequest, type DhcpRequest } from './dhcp-request.ts'

export interface FullResponderOptions {
  /** Settings that passed `validateDhcpSettings` in full mode. */
  settings: DhcpSettings
  leases: DhcpLeaseStore
  bootServer: BootServer
  clock: () => Date
}

/** One request with everything its answer depends on. */
interface Exchange {
  request: DhcpRequest
  decision: BootDecision
  arrival: DhcpArrival
  now: Date
  /** What the lease policy needs to know about the client. */
  client: { mac: string; clientId: string | null; hostname: string | null }
  /** Option 54: the server the client chose, when it says. */
  serverId: string | undefined
  /** Option 50. */
  requestedIp: string | undefined
}

export class FullResponder implements DhcpHandler {
  private readonly pool: DhcpPool
  private readonly network: LeaseNetwork
  /** One for the pool, kept across requests, so that allocation searches by next fit (see PoolCursor). */
  private readonly poolCursor: PoolCursor

  constructor(private readonly options: FullResponderOptions) {
    const { settings } = options
    this.pool = dhcpPoolOf(settings)
    this.poolCursor = { next: this.pool.start }
    this.network = { serverAddress: settings.serverAddress, leaseSeconds: settings.leaseSeconds, subnet: this.pool.subnet, router: settings.router, dnsServers: settings.dnsServers, domain: settings.domain }
  }

  async respond(packet: DhcpPacket, arrival: DhcpArrival): Promise<DhcpResponse | undefined> {
    const request = readDhcpRequest(packet)
    if (!request) return undefined
    const exchange: Exchange = {
      request,
      decision: decideBoot(request.client, this.options.bootServer),
      arrival,
      now: this.options.clock(),
      client: { mac: request.mac, clientId: packet.options.get(OPTION.CLIENT_ID)?.toString('hex') ?? null, hostname: optionText(packet, OPTION.HOSTNAME) ?? null },
      serverId: optionIpv4(packet, OPTION.SERVER_ID),
      requestedIp: optionIpv4(packet, OPTION.REQUESTED_IP),
    }
    switch (request.type) {
      case MESSAGE_TYPE.DISCOVER:
        return this.offer(exchange)
      case MESSAGE_TYPE.REQUEST:
        return this.acknowledge(exchange)
      case MESSAGE_TYPE.RELEASE:
        return this.release(exchange)
      case MESSAGE_TYPE.DECLINE:
        return this.decline(exchange)
      case MESSAGE_TYPE.INFORM:
        return this.inform(exchange)
      default:
        return undefined
    }
  }

  private async offer({ request, decision, arrival, now, client, requestedIp }: Exchange): Promise<DhcpResponse> {
    const allocation = await allocateAddress(this.options.leases, this.pool, { ...client, ...(requestedIp ? { requestedIp } : {}) }, 'offered', OFFER_HOLD_SECONDS, now, this.poolCursor)
    if (!allocation.ok) return { outcome: outcomeOf(request, decision, { message: 'no offer', fields: { code: allocation.code }, why: allocation.message, level: 'warn' }) }
    return {
      reply: offerReply(request.packet, allocation, decision, this.network),
      destination: arrival.peer,
      outcome: outcomeOf(request, decision, { message: 'offer', fields: { offered: { ip: allocation.ip, file: fileOf(decision) }, addressFrom: allocation.source } }),
    }
  }

  /** A REQUEST in any state: SELECTING and INIT-REBOOT carry option 50; RENEWING and REBINDING the address in ciaddr. */
  private async acknowledge(exchange: Exchange): Promise<DhcpResponse | undefined> {
    const { request, decision, arrival, now, client, serverId, requestedIp } = exchange
    if (this.isForAnotherServer(exchange)) {
      const forgot = await forgetOffer(this.options.leases, client.mac, now)
      return { outcome: outcomeOf(request, decision, { message: 'request for another server: silent', fields: { serverId, releasedOurOffer: forgot }, why: 'option 54 names another server' }) }
    }
    const ip = requestedIp ?? (request.packet.ciaddr !== NO_ADDRESS ? request.packet.ciaddr : undefined)
    if (!ip) return undefined
    const result = await confirmAddress(this.options.leases, this.pool, { ...client, requestedIp: ip }, this.network.leaseSeconds, now)
    if (!result.ok) {
      return {
        reply: nakReply(request.packet, result.message, this.network.serverAddress),
        destination: nakPeerOf(request.packet, arrival.peer),
        outcome: outcomeOf(request, decision, { message: 'nak', fields: { requested: ip, code: result.code }, why: result.message, level: 'warn' }),
      }
    }
    return {
      reply: ackReply(request.packet, { ip, hostname: result.hostname }, decision, this.network),
      destination: arrival.peer,
      outcome: outcomeOf(request, decision, { message: 'ack', fields: { offered: { ip, file: fileOf(decision) }, state: requestedIp ? (serverId ? 'selecting' : 'init-reboot') : 'renewing' } }),
    }
  }

  private async release(exchange: Exchange): Promise<DhcpResponse | undefined> {
    const { request, decision, now, client } = exchange
    if (this.isForAnotherServer(exchange)) return undefined
    const ip = request.packet.ciaddr
    const released = await releaseAddress(this.options.leases, client.mac, ip, now)
    return { outcome: outcomeOf(request, decision, { message: 'release', fields: { ip, released }, why: released ? 'client released its lease' : 'no lease of this client on that address' }) }
  }

  private async decline(exchange: Exchange): Promise<DhcpResponse | undefined> {
    const { request, decision, now, client, requestedIp } = exchange
    if (this.isForAnotherServer(exchange) || !requestedIp) return undefined
    const declined = await declineAddress(this.options.leases, client.mac, requestedIp, now)
    return { outcome: outcomeOf(request, decision, { message: 'decline', fields: { ip: requestedIp, quarantined: declined }, why: 'client found the address in use', level: 'warn' }) }
  }

  private async inform({ request, decision, arrival }: Exchange): Promise<DhcpResponse> {
    return {
      reply: informAckReply(request.packet, decision, this.network),
      destination: arrival.peer,
      outcome: outcomeOf(request, decision, { message: 'inform ack', fields: { ip: request.packet.ciaddr, offered: { file: fileOf(decision) } } }),
    }
  }

  /** Option 54 naming another server: the client chose that server's offer, or is talking to it. */
  private isForAnotherServer({ serverId }: Exchange): boolean {
    return serverId !== undefined && serverId !== this.network.serverAddress
  }
}

const fileOf = (decision: BootDecision) => (decision.kind === 'none' ? undefined : decision.filename)
