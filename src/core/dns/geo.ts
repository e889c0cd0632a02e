/** Addresses, subnets and distances, for answering with the nearest cluster. */

const EARTH_RADIUS_KM = 6371.0088

/** Great-circle distance (haversine), in kilometres. */
export function greatCircleKm(a: { latitude: number; longitude: number }, b: { latitude: number; longitude: number }): number {
  const radians = (degrees: number) => (degrees * Math.PI) / 180
  const dLat = radians(b.latitude - a.latitude)
  const dLon = radians(b.longitude - a.longitude)
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(radians(a.latitude)) * Math.cos(radians(b.latitude)) * Math.sin(dLon / 2) ** 2
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)))
}

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address, or undefined when `text` is neither. */
export function addressBytes(text: string): Uint8Array | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split('.').map(Number)
    return parts.every((part) => part <= 255) ? Uint8Array.from(parts) : undefined
  }
  if (!text.includes(':') || !/^[0-9A-Fa-f:.]+$/.test(text)) return undefined
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two groups.
  let body = text
  const v4 = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text)
  if (v4) {
    const bytes = addressBytes(v4[1]!)
    if (!bytes) return undefined
    body = `${text.slice(0, -v4[1]!.length)}${((bytes[0]! << 8) | bytes[1]!).toString(16)}:${((bytes[2]! << 8) | bytes[3]!).toString(16)}`
  }
  const halves = body.split('::')
  if (halves.length > 2) return undefined
  const groups = (half: string) => (half === '' ? [] : half.split(':'))
  const head = groups(halves[0]!)
  const tail = halves.length === 2 ? groups(halves[1]!) : []
  const missing = 8 - head.length - tail.length
  if ((halves.length === 1 && missing !== 0) || missing < 0 || (halves.length === 2 && missing < 1)) return undefined
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail]
  if (all.some((group) => !/^[0-9A-Fa-f]{1,4}$/.test(group))) return undefined
  const bytes = new Uint8Array(16)
  all.forEach((group, index) => {
    const value = Number.parseInt(group, 16)
    bytes[index * 2] = value >> 8
    bytes[index * 2 + 1] = value & 0xff
  })
  return bytes
}

export interface Subnet {
  /** As written, e.g. 10.1.0.0/16 or 2001:db8::/32. */
  cidr: string
  bytes: Uint8Array
  prefixLength: number
}

export function parseSubnet(cidr: string): Subnet | undefined {
  const [address, prefix] = cidr.split('/')
  const bytes = address === undefined ? undefined : addressBytes(address)
  if (!bytes || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return undefined
  const prefixLength = Number(prefix)
  if (prefixLength > bytes.length * 8) return undefined
  return { cidr, bytes, prefixLength }
}

/** Whether the first `prefixLength` bits of `address` are the subnet's (same family only). */
export function subnetContains(subnet: Subnet, address: Uint8Array): boolean {
  if (address.length !== subnet.bytes.length) return false
  let bits = subnet.prefixLength
  for (let index = 0; bits > 0; index++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff
    if ((address[index]! & mask) !== (subnet.bytes[index]! & mask)) return false
  }
  return true
}

/** The most specific subnet holding `address`. */
export function longestMatch<T extends { subnet: Subnet }>(entries: readonly T[], address: Uint8Array): T | undefined {
  let best: T | undefined
  for (const entry of entries) {
    if (subnetContains(entry.subnet, address) && (!best || entry.subnet.prefixLength > best.subnet.prefixLength)) best = entry
  }
  return best
}
