/**
 * The contract between the socket loop and the responders, as smee's `Handler`: a responder sees one
 * parsed datagram and returns what to send and where as a value, so it is tested without sockets.
 */
import type { DhcpOutcome } from './dhcp-outcome.ts'
import type { DhcpPacket } from './dhcp-packet.ts'
import type { DhcpPeer } from './dhcp-peer.ts'

/** How a datagram reached the server. */
export interface DhcpArrival {
  /** The local port it came in on: the DHCP server port, or 4011 in proxy mode. */
  localPort: number
  /** Who sent it: a client that already has an address, or a relay. */
  sender: DhcpPeer
  /** Where a reply goes by RFC 2131 4.1, fixed by the socket loop (see `peerOf`). */
  peer: DhcpPeer
}

/** Silence is an answer too: a RELEASE, a DECLINE, a REQUEST for another server are logged but not replied to. */
export type DhcpResponse = { outcome: DhcpOutcome } & ({ reply: DhcpPacket; destination: DhcpPeer } | { reply?: undefined; destination?: undefined })

export interface DhcpHandler {
  /** Undefined when the datagram is none of this server's business: counted as ignored, not logged. */
  respond(packet: DhcpPacket, arrival: DhcpArrival): Promise<DhcpResponse | undefined>
}
