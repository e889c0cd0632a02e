/**
 * Proxy mode (proxyDHCP): beside a site's own DHCP server, the engine gives netboot clients boot
 * information only, on port 67 and on the PXE port 4011. smee's proxy handler; it needs no store.
 */
import { decideBoot, type BootServer } from '../../core/dhcp/boot-decision.ts'
import type { DhcpArrival, DhcpHandler, DhcpResponse } from './dhcp-handler.ts'
import { outcomeOf } from './dhcp-outcome.ts'
import { MESSAGE_TYPE, type DhcpPacket } from './dhcp-packet.ts'
import { proxyAckReply, proxyOfferReply } from './dhcp-replies.ts'
import { readDhcpRequest } from './dhcp-request.ts'

export const PXE_PORT = 4011

export interface ProxyResponderOptions {
  serverAddress: string
  bootServer: BootServer
}

export class ProxyResponder implements DhcpHandler {
  constructor(private readonly options: ProxyResponderOptions) {}

  async respond(packet: DhcpPacket, arrival: DhcpArrival): Promise<DhcpResponse | undefined> {
    const request = readDhcpRequest(packet)
    if (!request) return undefined
    const decision = decideBoot(request.client, this.options.bootServer)
    // Only netboot clients: anything else is the address server's business.
    if (decision.kind === 'none') return undefined
    const offered = { offered: { ip: null, file: decision.filename } }
    if (arrival.localPort === PXE_PORT) {
      if (request.type !== MESSAGE_TYPE.REQUEST && request.type !== MESSAGE_TYPE.INFORM) return undefined
      return {
        reply: proxyAckReply(packet, decision, this.options.serverAddress),
        // The client already has an address from the DHCP server and asked us directly: answer it directly.
        destination: arrival.sender,
        outcome: outcomeOf(request, decision, { message: 'proxy ack (port 4011)', fields: offered }),
      }
    }
    if (request.type !== MESSAGE_TYPE.DISCOVER) return undefined
    return {
      reply: proxyOfferReply(packet, decision, this.options.serverAddress),
      destination: arrival.peer,
      outcome: outcomeOf(request, decision, { message: 'proxy offer', fields: offered }),
    }
  }
}
