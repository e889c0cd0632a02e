/**
 * BOOTP/DHCP wire format (RFC 951, 2131, 2132, 3396). Owned here because the npm `dhcp` package
 * crashes on real PXE ROMs. Options stay raw bytes keyed by code; typed readers interpret the few the
 * engine needs, so an unknown or odd option can never throw. Parsing rejects, with a stable code,
 * only what makes the packet unusable.
 */
import { ipv4FromBytes, ipv4ToBytes } from '../../lib/ipv4.ts'

export const BOOTREQUEST = 1
export const BOOTREPLY = 2
/** The flags bit of a client that cannot take a unicast before it has an address (RFC 2131 4.1). */
export const BROADCAST_FLAG = 0x8000
/** In ciaddr, yiaddr, siaddr and giaddr, the unspecified address means "none". */
export const NO_ADDRESS = '0.0.0.0'
const FIXED_LENGTH = 236
const MAGIC_COOKIE = 0x63825363
/** RFC 1542: some relays and old clients drop BOOTP messages shorter than this. */
const MINIMUM_BOOTP_LENGTH = 300

export const MESSAGE_TYPE = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const
export const MESSAGE_TYPE_NAME: Record<number, string> = Object.fromEntries(Object.entries(MESSAGE_TYPE).map(([name, code]) => [code, name]))

export const OPTION = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS_SERVERS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST_ADDRESS: 28,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_REQUEST_LIST: 55,
  MESSAGE: 56,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  USER_CLASS: 77,
  RELAY_AGENT_INFO: 82,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  IPXE_ENCAPSULATED: 175,
  END: 255,
} as const

export interface DhcpPacket {
  op: number
  htype: number
  hlen: number
  hops: number
  xid: number
  secs: number
  flags: number
  ciaddr: string
  yiaddr: string
  siaddr: string
  giaddr: string
  /** The 16-byte client hardware address field, raw. */
  chaddr: Buffer
  sname: string
  file: string
  /** Raw option data by code; repeated instances are concatenated (RFC 3396). Insertion order is kept. */
  options: Map<number, Buffer>
}

export class DhcpCodecError extends Error {
  constructor(
    readonly code: 'TRUNCATED' | 'NO_MAGIC_COOKIE' | 'OPTION_OVERRUN' | 'BAD_HLEN',
    message: string,
  ) {
    super(message)
    this.name = 'DhcpCodecError'
  }
}

/** Text fields end at the first NUL; bytes are taken as latin1 so no input can fail to decode. */
function readText(buffer: Buffer, start: number, end: number): string {
  const zero = buffer.indexOf(0, start)
  return buffer.toString('latin1', start, zero === -1 || zero > end ? end : zero)
}

export function parseDhcpPacket(buffer: Buffer): DhcpPacket {
  if (buffer.length < FIXED_LENGTH + 4) throw new DhcpCodecError('TRUNCATED', `datagram of ${buffer.length} bytes is shorter than a BOOTP header`)
  if (buffer.readUInt32BE(FIXED_LENGTH) !== MAGIC_COOKIE) throw new DhcpCodecError('NO_MAGIC_COOKIE', 'no DHCP magic cookie')
  const hlen = buffer[2]!
  if (hlen > 16) throw new DhcpCodecError('BAD_HLEN', `hardware address length ${hlen} exceeds the 16-byte field`)

  const options = new Map<number, Buffer>()
  let offset = FIXED_LENGTH + 4
  while (offset < buffer.length) {
    const code = buffer[offset]!
    if (code === OPTION.PAD) {
      offset += 1
      continue
    }
    if (code === OPTION.END) break
    if (offset + 1 >= buffer.length) throw new DhcpCodecError('OPTION_OVERRUN', `option ${code} has no length byte`)
    const length = buffer[offset + 1]!
    const start = offset + 2
    if (start + length > buffer.length) throw new DhcpCodecError('OPTION_OVERRUN', `option ${code} claims ${length} bytes past the end of the datagram`)
    const value = Buffer.from(buffer.subarray(start, start + length))
    const previous = options.get(code)
    options.set(code, previous ? Buffer.concat([previous, value]) : value)
    offset = start + length
  }
  // Option 52 (overload) would move options into sname/file. No PXE client needs it and parsing those
  // fields as options is a classic source of bugs, so it is ignored: sname/file are read as text only.
  return {
    op: buffer[0]!,
    htype: buffer[1]!,
    hlen,
    hops: buffer[3]!,
    xid: buffer.readUInt32BE(4),
    secs: buffer.readUInt16BE(8),
    flags: buffer.readUInt16BE(10),
    ciaddr: ipv4FromBytes(buffer, 12),
    yiaddr: ipv4FromBytes(buffer, 16),
    siaddr: ipv4FromBytes(buffer, 20),
    giaddr: ipv4FromBytes(buffer, 24),
    chaddr: Buffer.from(buffer.subarray(28, 44)),
    sname: readText(buffer, 44, 108),
    file: readText(buffer, 108, 236),
    options,
  }
}

function writeText(target: Buffer, text: string, start: number, size: number) {
  const bytes = Buffer.from(text, 'latin1')
  // Leave room for the terminating NUL; callers check the fit and put longer values only in options.
  bytes.copy(target, start, 0, Math.min(bytes.length, size - 1))
}

export function formatDhcpPacket(packet: DhcpPacket): Buffer {
  const header = Buffer.alloc(FIXED_LENGTH + 4)
  header[0] = packet.op
  header[1] = packet.htype
  header[2] = Math.min(packet.hlen, 16)
  header[3] = packet.hops
  header.writeUInt32BE(packet.xid >>> 0, 4)
  header.writeUInt16BE(packet.secs & 0xffff, 8)
  header.writeUInt16BE(packet.flags & 0xffff, 10)
  ipv4ToBytes(packet.ciaddr).copy(header, 12)
  ipv4ToBytes(packet.yiaddr).copy(header, 16)
  ipv4ToBytes(packet.siaddr).copy(header, 20)
  ipv4ToBytes(packet.giaddr).copy(header, 24)
  packet.chaddr.copy(header, 28, 0, 16)
  writeText(header, packet.sname, 44, 64)
  writeText(header, packet.file, 108, 128)
  header.writeUInt32BE(MAGIC_COOKIE, FIXED_LENGTH)

  const parts: Buffer[] = [header]
  // Message type first: some ROMs look only at the first option.
  const codes = [...packet.options.keys()].sort((a, b) => (a === OPTION.MESSAGE_TYPE ? -1 : b === OPTION.MESSAGE_TYPE ? 1 : 0))
  for (const code of codes) {
    if (code === OPTION.PAD || code === OPTION.END) continue
    const value = packet.options.get(code)!
    // RFC 3396: a value longer than 255 bytes is split into consecutive instances of the option.
    for (let start = 0; start < value.length || start === 0; start += 255) {
      const chunk = value.subarray(start, start + 255)
      parts.push(Buffer.from([code, chunk.length]), chunk)
      if (value.length === 0) break
    }
  }
  parts.push(Buffer.from([OPTION.END]))
  const body = Buffer.concat(parts)
  return body.length >= MINIMUM_BOOTP_LENGTH ? body : Buffer.concat([body, Buffer.alloc(MINIMUM_BOOTP_LENGTH - body.length)])
}

// Typed readers: each returns undefined rather than throwing on a value of the wrong size.

export const optionByte = (packet: DhcpPacket, code: number): number | undefined => {
  const value = packet.options.get(code)
  return value && value.length >= 1 ? value[0] : undefined
}

export const optionIpv4 = (packet: DhcpPacket, code: number): string | undefined => {
  const value = packet.options.get(code)
  return value && value.length === 4 ? ipv4FromBytes(value) : undefined
}

export const optionText = (packet: DhcpPacket, code: number): string | undefined => {
  const value = packet.options.get(code)
  return value ? readText(value, 0, value.length) : undefined
}

export const messageTypeOf = (packet: DhcpPacket): number | undefined => optionByte(packet, OPTION.MESSAGE_TYPE)

/** Option 93: a list of 16-bit architecture types; the first is the one that matters. */
export function clientArchOf(packet: DhcpPacket): number | undefined {
  const value = packet.options.get(OPTION.CLIENT_ARCH)
  return value && value.length >= 2 ? value.readUInt16BE(0) : undefined
}

/**
 * Option 77: RFC 3004 says length-prefixed classes, but iPXE and many ROMs send one plain string.
 * Read it as RFC 3004 only when the lengths tile the value exactly.
 */
export function userClassesOf(packet: DhcpPacket): string[] {
  const value = packet.options.get(OPTION.USER_CLASS)
  if (!value || value.length === 0) return []
  const classes: string[] = []
  let offset = 0
  while (offset < value.length) {
    const length = value[offset]!
    if (length === 0 || offset + 1 + length > value.length) return [readText(value, 0, value.length)]
    classes.push(value.toString('latin1', offset + 1, offset + 1 + length))
    offset += 1 + length
  }
  return classes
}

/** The client MAC in lowercase colon form; undefined for anything but Ethernet (htype 1, hlen 6). */
export function clientMacOf(packet: DhcpPacket): string | undefined {
  if (packet.htype !== 1 || packet.hlen !== 6) return undefined
  return [...packet.chaddr.subarray(0, 6)].map((byte) => byte.toString(16).padStart(2, '0')).join(':')
}

/** Builds a sub-option block (option 43, 175): code, length, value, ..., then END. */
export function encodeSubOptions(subOptions: Array<[number, Buffer]>): Buffer {
  return Buffer.concat([...subOptions.flatMap(([code, value]) => [Buffer.from([code, value.length]), value]), Buffer.from([OPTION.END])])
}

export function emptyPacket(): DhcpPacket {
  return {
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0,
    secs: 0,
    flags: 0,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: Buffer.alloc(16),
    sname: '',
    file: '',
    options: new Map(),
  }
}
