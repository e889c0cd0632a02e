import { addressBytes } from '../../core/dns/geo.ts'
import type { DnsAnswer, DnsRecord } from '../../core/dns/dns-zone.ts'

/**
 * The DNS wire format the server needs, owned here: reading a query (RFC 1035 question, RFC 6891 OPT,
 * RFC 7871 client subnet) and writing an answer with name compression. dns2 built replies bit by bit
 * and re-serialised the message after every record (~75 µs of ~98 µs per query, bench/dns.bench.ts),
 * and its IPv6 client-subnet decoder loses the OPT record for an odd number of address bytes; the
 * tests decode these replies with dns2 and dig to check them.
 */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const
const TYPE_OPT = 41
const OPTION_ECS = 8
/** What the server advertises and honours over UDP (the DNS flag day 2020 size). */
export const EDNS_PAYLOAD = 1232

export interface ClientSubnet {
  family: 1 | 2
  sourcePrefixLength: number
  /** The address bytes as sent (ceil(source / 8) of them). */
  address: Uint8Array
  /** Text form, zero-filled. */
  ip: string
}

export interface Query {
  id: number
  opcode: number
  rd: boolean
  /** Lower case, no trailing dot. */
  name: string
  type: number
  class: number
  /** The question section as sent (name, type, class): copied into the reply. */
  question: Buffer
  /** Present when the query carried an OPT record. */
  edns?: { payload: number; subnet?: ClientSubnet }
}

/**
 * Whether a datagram is worth reading: a query (QR clear) with one question and nothing in the answer
 * section, at most one authority and two additional records. Anything else is no query this server
 * answers, and refusing it before reading is what keeps a flood of junk cheap.
 */
export function plausibleQuery(message: Buffer): boolean {
  if (message.length < 17 || message.length > 65_535) return false
  return (message.readUInt16BE(2) & 0x8000) === 0 && message.readUInt16BE(4) === 1 && message.readUInt16BE(6) === 0 && message.readUInt16BE(8) <= 1 && message.readUInt16BE(10) <= 2
}

/** A bare header answering `message` with `rcode`, without reading anything else; undefined for a response. */
export function headerOnly(message: Buffer, rcode: number): Buffer | undefined {
  if (message.length < 12 || (message.readUInt16BE(2) & 0x8000) !== 0) return undefined
  const reply = Buffer.alloc(12)
  reply.writeUInt16BE(message.readUInt16BE(0), 0)
  const flags = message.readUInt16BE(2)
  reply.writeUInt16BE(0x8000 | (flags & 0x7800) | (flags & 0x0100) | rcode, 2)
  return reply
}

/** A name at `offset`: its text and where the record continues; undefined when malformed. */
function readName(message: Buffer, offset: number): { name: string; next: number } | undefined {
  const labels: string[] = []
  let next = -1
  let length = 0
  for (let hops = 0; hops < 128; hops++) {
    if (offset >= message.length) return undefined
    const size = message[offset]!
    if (size === 0) return { name: labels.join('.'), next: next === -1 ? offset + 1 : next }
    if ((size & 0xc0) === 0xc0) {
      if (offset + 1 >= message.length) return undefined
      if (next === -1) next = offset + 2
      offset = ((size & 0x3f) << 8) | message[offset + 1]!
      continue
    }
    if ((size & 0xc0) !== 0 || offset + 1 + size > message.length) return undefined
    length += size + 1
    if (length > 255) return undefined
    labels.push(message.toString('latin1', offset + 1, offset + 1 + size).toLowerCase())
    offset += 1 + size
  }
  return undefined
}

/** Past the name at `offset`; -1 when it runs off the message. */
function skipName(message: Buffer, offset: number): number {
  for (let hops = 0; offset < message.length && hops < 128; hops++) {
    const length = message[offset]!
    if (length === 0) return offset + 1
    if ((length & 0xc0) === 0xc0) return offset + 2 <= message.length ? offset + 2 : -1
    offset += 1 + length
  }
  return -1
}

function readSubnet(message: Buffer, body: number, length: number): ClientSubnet | undefined {
  if (length < 4) return undefined
  const family = message.readUInt16BE(body)
  const sourcePrefixLength = message[body + 2]!
  const size = family === 1 ? 4 : family === 2 ? 16 : 0
  const addressLength = length - 4
  if (size === 0 || sourcePrefixLength > size * 8 || addressLength !== Math.ceil(sourcePrefixLength / 8)) return undefined
  const bytes = Buffer.alloc(size)
  message.copy(bytes, 0, body + 4, body + 4 + addressLength)
  const ip = family === 1 ? [...bytes].join('.') : Array.from({ length: 8 }, (_, group) => bytes.readUInt16BE(group * 2).toString(16)).join(':')
  return { family: family as 1 | 2, sourcePrefixLength, address: Uint8Array.from(message.subarray(body + 4, body + 4 + addressLength)), ip }
}

/** Reads a query that passed plausibleQuery; undefined when it is malformed (FORMERR). */
export function readQuery(message: Buffer): Query | undefined {
  const question = readName(message, 12)
  if (!question || question.next + 4 > message.length) return undefined
  const flags = message.readUInt16BE(2)
  const query: Query = {
    id: message.readUInt16BE(0),
    opcode: (flags >> 11) & 0xf,
    rd: (flags & 0x0100) !== 0,
    name: question.name,
    type: message.readUInt16BE(question.next),
    class: message.readUInt16BE(question.next + 2),
    question: message.subarray(12, question.next + 4),
  }
  let offset = question.next + 4
  const records = message.readUInt16BE(8) + message.readUInt16BE(10)
  for (let index = 0; index < records; index++) {
    offset = skipName(message, offset)
    if (offset < 0 || offset + 10 > message.length) return undefined
    const type = message.readUInt16BE(offset)
    const rdataLength = message.readUInt16BE(offset + 8)
    const rdata = offset + 10
    if (rdata + rdataLength > message.length) return undefined
    if (type === TYPE_OPT) {
      const edns: NonNullable<Query['edns']> = { payload: Math.max(512, message.readUInt16BE(offset + 2)) }
      for (let option = rdata; option + 4 <= rdata + rdataLength; ) {
        const code = message.readUInt16BE(option)
        const length = message.readUInt16BE(option + 2)
        if (option + 4 + length > rdata + rdataLength) return undefined
        if (code === OPTION_ECS) {
          const subnet = readSubnet(message, option + 4, length)
          if (!subnet) return undefined // RFC 7871 §7.1.1: a malformed option is FORMERR
          edns.subnet = subnet
        }
        option += 4 + length
      }
      query.edns = edns
    }
    offset = rdata + rdataLength
  }
  return query
}

/** Writes a reply, compressing names against those already written (the question's first of all). */
class ReplyWriter {
  private buffer = Buffer.allocUnsafe(1024)
  length = 0
  private readonly names = new Map<string, number>()

  constructor(query: Query) {
    this.reserve(12)
    this.length = 12
    this.bytes(query.question)
    // The question name sits right after the header: every record for it is a 2-byte pointer.
    this.names.set(query.name, 12)
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra))
    this.buffer.copy(grown, 0, 0, this.length)
    this.buffer = grown
  }

  u8(value: number): void {
    this.reserve(1)
    this.buffer[this.length++] = value
  }

  u16(value: number): void {
    this.reserve(2)
    this.buffer.writeUInt16BE(value, this.length)
    this.length += 2
  }

  u32(value: number): void {
    this.reserve(4)
    this.buffer.writeUInt32BE(value >>> 0, this.length)
    this.length += 4
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length)
    this.buffer.set(data, this.length)
    this.length += data.length
  }

  name(name: string): void {
    let rest = name
    for (;;) {
      if (rest === '') return this.u8(0)
      const known = this.names.get(rest)
      if (known !== undefined) return this.u16(0xc000 | known)
      if (this.length < 0x3fff) this.names.set(rest, this.length)
      const dot = rest.indexOf('.')
      const label = dot === -1 ? rest : rest.slice(0, dot)
      const encoded = Buffer.from(label, 'latin1')
      this.u8(encoded.length)
      this.bytes(encoded)
      rest = dot === -1 ? '' : rest.slice(dot + 1)
    }
  }

  record(record: DnsRecord): void {
    this.name(record.name)
    this.u16(record.type)
    this.u16(1)
    this.u32(Math.min(record.ttl, 0x7fffffff))
    const lengthAt = this.length
    this.u16(0)
    const start = this.length
    if (record.type === 6) {
      const soa = record.data
      this.name(soa.primary)
      this.name(soa.admin)
      for (const value of [soa.serial, soa.refresh, soa.retry, soa.expiration, soa.minimum]) this.u32(value)
    } else if (record.type === 2) this.name(record.data)
    else this.bytes(addressBytes(record.data)!)
    this.buffer.writeUInt16BE(this.length - start, lengthAt)
  }

  opt(payload: number, subnet: ClientSubnet | undefined, scopePrefixLength: number): void {
    this.u8(0)
    this.u16(TYPE_OPT)
    this.u16(payload)
    this.u32(0)
    if (!subnet) return this.u16(0)
    this.u16(4 + 4 + subnet.address.length)
    this.u16(OPTION_ECS)
    this.u16(4 + subnet.address.length)
    this.u16(subnet.family)
    this.u8(subnet.sourcePrefixLength)
    this.u8(scopePrefixLength)
    this.bytes(subnet.address)
  }

  finish(header: { id: number; flags: number; answers: number; authority: number; additional: number }): Buffer {
    this.buffer.writeUInt16BE(header.id, 0)
    this.buffer.writeUInt16BE(header.flags, 2)
    this.buffer.writeUInt16BE(1, 4)
    this.buffer.writeUInt16BE(header.answers, 6)
    this.buffer.writeUInt16BE(header.authority, 8)
    this.buffer.writeUInt16BE(header.additional, 10)
    return Buffer.from(this.buffer.subarray(0, this.length))
  }
}

/** The reply to `query`; over UDP, a reply larger than the client takes is sent empty with TC set. */
export function writeReply(query: Query, answer: DnsAnswer, transport: 'udp' | 'tcp'): Buffer {
  const build = (truncated: boolean) => {
    const writer = new ReplyWriter(query)
    const sections = truncated ? [[], [], []] : [answer.answers, answer.authority, answer.additional]
    for (const section of sections) for (const record of section) writer.record(record)
    if (query.edns) writer.opt(EDNS_PAYLOAD, query.edns.subnet, answer.scopePrefixLength)
    const flags = 0x8000 | (query.opcode << 11) | (answer.authoritative ? 0x0400 : 0) | (truncated ? 0x0200 : 0) | (query.rd ? 0x0100 : 0) | RCODE[answer.rcode]
    return writer.finish({ id: query.id, flags, answers: sections[0]!.length, authority: sections[1]!.length, additional: sections[2]!.length + (query.edns ? 1 : 0) })
  }
  const reply = build(false)
  const limit = transport === 'tcp' ? 65_535 : Math.min(EDNS_PAYLOAD, query.edns?.payload ?? 512)
  return reply.length > limit ? build(true) : reply
}
