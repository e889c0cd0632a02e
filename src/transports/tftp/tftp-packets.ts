/**
 * TFTP packets (RFC 1350, options RFC 2347): parsing what a client sends and building what the server
 * answers. Pure functions over Buffers; nothing here touches a socket.
 */

export const OPCODE = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const

/** RFC 1350 error codes, plus 8 from RFC 2347 (option negotiation refused, also a client's "abort"). */
export const ERROR_CODE = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TRANSFER_ID: 5,
  OPTION_REFUSED: 8,
} as const

/** RFC 2347: a request, options included, fits in 512 bytes. */
export const MAX_REQUEST_BYTES = 512

export type ParsedRequest =
  | { ok: true; opcode: number; filename: string; mode: string; options: Map<string, string> }
  | { ok: false; reason: string }

/** The opcode of a datagram, or undefined when it is too short to have one. */
export function readOpcode(message: Buffer): number | undefined {
  return message.length >= 2 ? message.readUInt16BE(0) : undefined
}

/**
 * Parses an RRQ/WRQ: filename, mode, then option name/value pairs. Option names are lower-cased and the
 * first occurrence wins; an unterminated tail is ignored (after filename and mode it can only be an
 * option); an empty option name ends the list (some ROMs pad their request with NULs).
 */
export function parseRequest(message: Buffer): ParsedRequest {
  const strings: string[] = []
  let offset = 2
  while (offset < message.length) {
    const end = message.indexOf(0, offset)
    if (end === -1) break
    strings.push(message.toString('latin1', offset, end))
    offset = end + 1
  }
  const [filename, mode, ...optionStrings] = strings
  if (filename === undefined || mode === undefined) return { ok: false, reason: 'missing filename or mode' }
  if (filename === '') return { ok: false, reason: 'empty filename' }
  const options = new Map<string, string>()
  for (let index = 0; index + 1 < optionStrings.length; index += 2) {
    const name = optionStrings[index]!.toLowerCase()
    if (name === '') break
    if (!options.has(name)) options.set(name, optionStrings[index + 1]!)
  }
  return { ok: true, opcode: message.readUInt16BE(0), filename, mode: mode.toLowerCase(), options }
}

/** The block number of an ACK, or undefined when the datagram is not a well-formed ACK. */
export function parseAck(message: Buffer): number | undefined {
  return message.length >= 4 && message.readUInt16BE(0) === OPCODE.ACK ? message.readUInt16BE(2) : undefined
}

/** Code and text of an ERROR packet, or undefined when the datagram is not one. */
export function parseError(message: Buffer): { code: number; message: string } | undefined {
  if (message.length < 4 || message.readUInt16BE(0) !== OPCODE.ERROR) return undefined
  const end = message.indexOf(0, 4)
  const text = message.toString('latin1', 4, end === -1 ? message.length : end)
  return { code: message.readUInt16BE(2), message: text.replace(/[^\x20-\x7e]/g, '?').slice(0, 200) }
}

export function encodeError(code: number, message: string): Buffer {
  const text = Buffer.from(message.replace(/[^\x20-\x7e]/g, '?'), 'latin1')
  const packet = Buffer.alloc(5 + text.length)
  packet.writeUInt16BE(OPCODE.ERROR, 0)
  packet.writeUInt16BE(code >= 0 && code <= 8 ? code : ERROR_CODE.NOT_DEFINED, 2)
  text.copy(packet, 4)
  return packet
}

export function encodeOack(options: readonly (readonly [string, string])[]): Buffer {
  const body = options.map(([name, value]) => `${name}\0${value}\0`).join('')
  return Buffer.concat([Buffer.from([0, OPCODE.OACK]), Buffer.from(body, 'latin1')])
}

/** The 4-byte header of a DATA packet; the payload is sent beside it (no copy of the file bytes). */
export function encodeDataHeader(block: number): Buffer {
  const header = Buffer.allocUnsafe(4)
  header.writeUInt16BE(OPCODE.DATA, 0)
  header.writeUInt16BE(block & 0xffff, 2)
  return header
}

const LF = 0x0a
const CR = 0x0d

/**
 * RFC 764 netascii, as tftpd-hpa sends it: LF becomes CR LF and a bare CR becomes CR NUL, byte by byte
 * (no state across calls, so a file can be converted chunk by chunk).
 */
export function toNetascii(data: Buffer): Buffer {
  let extra = 0
  for (let index = 0; index < data.length; index++) if (data[index] === LF || data[index] === CR) extra++
  if (extra === 0) return data
  const converted = Buffer.allocUnsafe(data.length + extra)
  let out = 0
  for (let index = 0; index < data.length; index++) {
    const byte = data[index]!
    if (byte === LF) {
      converted[out++] = CR
      converted[out++] = LF
    } else if (byte === CR) {
      converted[out++] = CR
      converted[out++] = 0
    } else converted[out++] = byte
  }
  return converted
}
