/**
 * IPv4 addresses as unsigned 32-bit numbers: ranges, subnets and broadcast addresses are then plain
 * arithmetic. Text is always dotted quad without leading zeros (leading zeros are octal to some parsers).
 */
const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

export const isIpv4 = (text: string): boolean => DOTTED_QUAD.test(text)

/** Returns the address as an unsigned 32-bit number, or undefined if `text` is not a dotted quad. */
export function parseIpv4(text: string): number | undefined {
  const match = DOTTED_QUAD.exec(text)
  if (!match) return undefined
  return ((Number(match[1]) << 24) | (Number(match[2]) << 16) | (Number(match[3]) << 8) | Number(match[4])) >>> 0
}

export function formatIpv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`
}

export interface Ipv4Subnet {
  /** Network address (host bits zero). */
  network: number
  prefixLength: number
  mask: number
  broadcast: number
}

export const prefixToMask = (prefixLength: number): number => (prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0)

/** Parses `10.0.0.0/24`; host bits set (`10.0.0.5/24`) are accepted and cleared, as `ip route` does. */
export function parseCidr(text: string): Ipv4Subnet | undefined {
  const [address, prefix, extra] = text.split('/')
  if (address === undefined || prefix === undefined || extra !== undefined || !/^\d{1,2}$/.test(prefix)) return undefined
  const prefixLength = Number(prefix)
  const value = parseIpv4(address)
  if (value === undefined || prefixLength > 32) return undefined
  const mask = prefixToMask(prefixLength)
  const network = (value & mask) >>> 0
  return { network, prefixLength, mask, broadcast: (network | ~mask) >>> 0 }
}

export const subnetContains = (subnet: Ipv4Subnet, address: number): boolean => ((address & subnet.mask) >>> 0) === subnet.network

/** Four bytes in network order, for protocol fields. */
export function ipv4ToBytes(text: string): Buffer {
  const value = parseIpv4(text) ?? 0
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(value, 0)
  return bytes
}

export function ipv4FromBytes(bytes: Buffer, offset = 0): string {
  return formatIpv4(bytes.readUInt32BE(offset))
}

/** `::ffff:10.0.0.5` (an IPv4 peer on a dual-stack socket) is 10.0.0.5. */
export const plainAddress = (address: string): string => (address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address)
