/**
 * Where a reply goes: RFC 2131 4.1, with one exception forced by Node. It cannot inject the ARP entry a
 * unicast to a client without an address needs, so such a client is answered by broadcast even when
 * it did not set the broadcast flag.
 */
import { BROADCAST_FLAG, NO_ADDRESS, type DhcpPacket } from './dhcp-packet.ts'

export const CLIENT_PORT = 68
export const LIMITED_BROADCAST = '255.255.255.255'

export interface DhcpPeer {
  readonly address: string
  readonly port: number
}

/**
 * 255.255.255.255, not the subnet broadcast: UEFI firmware's own PXE client ignores offers sent to the
 * subnet broadcast address (iPXE and udhcpc accept both).
 */
export const BROADCAST_PEER: DhcpPeer = { address: LIMITED_BROADCAST, port: CLIENT_PORT }

/** The peer of a reply to `request`: the relay (giaddr, on the server port), the client's address, or broadcast. */
export function peerOf(request: DhcpPacket, serverPort: number): DhcpPeer {
  if (request.giaddr !== NO_ADDRESS) return { address: request.giaddr, port: serverPort }
  if (request.ciaddr !== NO_ADDRESS && (request.flags & BROADCAST_FLAG) === 0) return { address: request.ciaddr, port: CLIENT_PORT }
  return BROADCAST_PEER
}

/** RFC 2131 4.1: without a relay a NAK is always broadcast, since the client's address may be wrong for this network. */
export function nakPeerOf(request: DhcpPacket, peer: DhcpPeer): DhcpPeer {
  return request.giaddr !== NO_ADDRESS ? peer : BROADCAST_PEER
}
