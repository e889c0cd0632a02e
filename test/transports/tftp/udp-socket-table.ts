// Which UDP sockets this process holds and what address each is bound to, read from Linux /proc: the
// only way to see the local address of a socket a library (or the server under test) keeps private.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

export interface BoundUdpSocket {
  address: string
  port: number
}

/** Local address and port of every UDP (IPv4 and IPv6) socket this process has open. */
export function udpSocketsOfThisProcess(): BoundUdpSocket[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
      if (match) inodes.add(match[1]!)
    } catch {
      // the fd was closed between the listing and the readlink
    }
  }
  const sockets: BoundUdpSocket[] = []
  for (const table of ['/proc/self/net/udp', '/proc/self/net/udp6']) {
    let text: string
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      const [local, inode] = [fields[1], fields[9]]
      if (local === undefined || inode === undefined || !inodes.has(inode)) continue
      const [hexAddress, hexPort] = local.split(':') as [string, string]
      sockets.push({ address: decodeProcAddress(hexAddress), port: Number.parseInt(hexPort, 16) })
    }
  }
  return sockets
}

/** /proc/net/udp prints addresses as host-order 32-bit words in hex (little-endian on x86 and arm64). */
function decodeProcAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? []
  const bytes = words.flatMap((word) => [word.slice(6, 8), word.slice(4, 6), word.slice(2, 4), word.slice(0, 2)].map((pair) => Number.parseInt(pair, 16)))
  if (bytes.length === 4) return bytes.join('.')
  if (bytes.slice(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.')
  const groups: string[] = []
  for (let index = 0; index < 16; index += 2) groups.push(((bytes[index]! << 8) | bytes[index + 1]!).toString(16))
  return groups.join(':') // uncompressed: the tests only compare IPv4 addresses and '::'-free forms
}
