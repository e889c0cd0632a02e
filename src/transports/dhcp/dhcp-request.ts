/**
 * What both responders read from a datagram before deciding anything: that it is a client's DHCP
 * message from an Ethernet NIC, its MAC, and what it says about how it boots (decideBoot's input).
 */
import type { BootClient } from '../../core/dhcp/boot-decision.ts'
import { BOOTREQUEST, clientArchOf, clientMacOf, MESSAGE_TYPE_NAME, messageTypeOf, OPTION, optionText, userClassesOf, type DhcpPacket } from './dhcp-packet.ts'

export interface DhcpRequest {
  packet: DhcpPacket
  /** Option 53, e.g. MESSAGE_TYPE.DISCOVER. */
  type: number
  /** The type for logs and metrics, e.g. `DISCOVER`. */
  typeName: string
  mac: string
  client: BootClient
}

/** Undefined for anything a DHCP server does not answer: replies, BOOTP without option 53, non-Ethernet clients. */
export function readDhcpRequest(packet: DhcpPacket): DhcpRequest | undefined {
  const type = messageTypeOf(packet)
  const mac = clientMacOf(packet)
  if (packet.op !== BOOTREQUEST || type === undefined || !mac) return undefined
  return { packet, type, typeName: MESSAGE_TYPE_NAME[type] ?? `type-${type}`, mac, client: bootClientOf(packet, mac) }
}

function bootClientOf(packet: DhcpPacket, mac: string): BootClient {
  const arch = clientArchOf(packet)
  const vendorClass = optionText(packet, OPTION.VENDOR_CLASS)
  return {
    mac,
    ...(arch !== undefined ? { arch } : {}),
    ...(vendorClass !== undefined ? { vendorClass } : {}),
    userClasses: userClassesOf(packet),
    sentIpxeOptions: packet.options.has(OPTION.IPXE_ENCAPSULATED),
  }
}
