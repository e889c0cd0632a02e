import { constants as fsConstants, type Stats } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { toNetascii } from './tftp-packets.ts'
import type { BlockContent } from './tftp-transfer.ts'

/**
 * The bytes a transfer sends. Small files (the iPXE binaries: 70 KB-1 MB, fetched by every booting
 * machine) are read once and kept in a cache keyed by path and file identity (device, inode, size,
 * mtime, ctime), so a boot storm or a flood of requests costs no file descriptor and no read per
 * request, and a replaced file is read again. Larger files are streamed per transfer in 256 KiB reads,
 * the next one started while the current one is being sent, so memory stays bounded.
 */

export type TransferMode = 'octet' | 'netascii'

export interface TransferContent extends BlockContent {
  /** Bytes the transfer will send, when known before it starts (the OACK's tsize). */
  readonly size: number | undefined
  /** Frees what the content holds (a streamed file's descriptor). */
  close(): void
}

export interface ContentCacheLimits {
  /** Files up to this size are kept in memory; larger ones are streamed. */
  maxFileBytes: number
  /** Memory the cache may hold; least recently used files are dropped beyond it. */
  maxTotalBytes: number
}

export const DEFAULT_CACHE_LIMITS: ContentCacheLimits = { maxFileBytes: 16 * 1024 * 1024, maxTotalBytes: 64 * 1024 * 1024 }

const READ_CHUNK_BYTES = 256 * 1024
// O_NOFOLLOW: the path was resolved with realpath, a link appearing since is refused; O_NONBLOCK: a
// FIFO swapped in must not hang the open.
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK

class MemoryContent implements TransferContent {
  constructor(private readonly bytes: Buffer) {}
  get size(): number {
    return this.bytes.length
  }
  load(): undefined {
    return undefined
  }
  slice(start: number, end: number): Buffer {
    return this.bytes.subarray(start, end)
  }
  release(): void {}
  close(): void {}
}

class StreamedFileContent implements TransferContent {
  private bytes: Buffer = Buffer.alloc(0)
  /** Content offset of bytes[0]. */
  private bytesStart = 0
  private filePosition = 0
  private ended = false
  private reading: Promise<void> | undefined
  private readError: Error | undefined
  private closed = false

  constructor(
    private readonly handle: FileHandle,
    /** Size when opened: the transfer sends that many bytes even if the file grows meanwhile. */
    private readonly fileSize: number,
    private readonly netascii: boolean,
  ) {}

  get size(): number | undefined {
    return this.netascii ? undefined : this.fileSize
  }

  private get bytesEnd(): number {
    return this.bytesStart + this.bytes.length
  }

  load(start: number, end: number): Promise<void> | undefined {
    if (this.readError !== undefined) return Promise.reject(this.readError)
    if (end <= this.bytesEnd || this.ended) {
      this.readAhead(end)
      return undefined
    }
    return this.fill(end)
  }

  slice(start: number, end: number): Buffer {
    return this.bytes.subarray(start - this.bytesStart, end - this.bytesStart)
  }

  release(offset: number): void {
    // Dropping acknowledged bytes a chunk at a time keeps the copies in readChunk rare.
    if (offset - this.bytesStart < READ_CHUNK_BYTES) return
    this.bytes = this.bytes.subarray(offset - this.bytesStart)
    this.bytesStart = offset
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.reading === undefined) void this.handle.close().catch(() => {})
  }

  private async fill(end: number): Promise<void> {
    while (this.bytesEnd < end && !this.ended) {
      await (this.reading ?? this.readChunk())
      if (this.readError !== undefined) throw this.readError
      if (this.closed) return
    }
    this.readAhead(end)
  }

  /** Starts the next read when less than half a chunk is buffered past `end`. */
  private readAhead(end: number): void {
    if (!this.ended && !this.closed && this.reading === undefined && this.bytesEnd - end < READ_CHUNK_BYTES / 2) void this.readChunk()
  }

  private readChunk(): Promise<void> {
    const reading = (async () => {
      try {
        const length = Math.min(READ_CHUNK_BYTES, this.fileSize - this.filePosition)
        const chunk = Buffer.allocUnsafe(Math.max(length, 0))
        const { bytesRead } = length > 0 ? await this.handle.read(chunk, 0, length, this.filePosition) : { bytesRead: 0 }
        this.filePosition += bytesRead
        if (bytesRead === 0 || this.filePosition >= this.fileSize) this.ended = true
        const data = this.netascii ? toNetascii(chunk.subarray(0, bytesRead)) : chunk.subarray(0, bytesRead)
        this.bytes = this.bytes.length === 0 ? data : Buffer.concat([this.bytes, data])
      } catch (error) {
        this.readError = error instanceof Error ? error : new Error(String(error))
      } finally {
        this.reading = undefined
        if (this.closed) void this.handle.close().catch(() => {})
      }
    })()
    this.reading = reading
    return reading
  }
}

const fileIdentity = (stats: Stats): string => `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`

/** Shaped like an fs error (with a code), so callers handle it like any other read failure. */
function notARegularFile(realPath: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${realPath} is not a regular file`), { code: 'ENOTREG' })
}

export class FileContentCache {
  private readonly entries = new Map<string, { identity: string; bytes: Buffer }>()
  private readonly loading = new Map<string, Promise<{ identity: string; bytes: Buffer } | 'too-large'>>()
  private totalBytes = 0

  constructor(private readonly limits: ContentCacheLimits = DEFAULT_CACHE_LIMITS) {}

  /** Content of a resolved file; rejects with the fs error (EMFILE/ENFILE included) when it cannot be read. */
  async open(realPath: string, mode: TransferMode): Promise<TransferContent> {
    const stats = await stat(realPath)
    if (!stats.isFile()) throw notARegularFile(realPath)
    const key = `${mode}:${realPath}`
    const identity = fileIdentity(stats)
    const cached = this.entries.get(key)
    if (cached !== undefined && cached.identity === identity) {
      this.entries.delete(key)
      this.entries.set(key, cached)
      return new MemoryContent(cached.bytes)
    }
    if (stats.size > this.limits.maxFileBytes) return this.openStreamed(realPath, mode)

    // Requests arriving together for a file not yet cached share one read.
    const loadKey = `${key}|${identity}`
    let loading = this.loading.get(loadKey)
    if (loading === undefined) {
      loading = this.readWhole(realPath, mode).finally(() => this.loading.delete(loadKey))
      this.loading.set(loadKey, loading)
    }
    const loaded = await loading
    if (loaded === 'too-large') return this.openStreamed(realPath, mode)
    this.remember(key, loaded.identity, loaded.bytes)
    return new MemoryContent(loaded.bytes)
  }

  get cachedBytes(): number {
    return this.totalBytes
  }

  private async readWhole(realPath: string, mode: TransferMode): Promise<{ identity: string; bytes: Buffer } | 'too-large'> {
    const handle = await open(realPath, OPEN_FLAGS)
    try {
      const stats = await handle.stat()
      if (!stats.isFile()) throw notARegularFile(realPath)
      if (stats.size > this.limits.maxFileBytes) return 'too-large'
      const bytes = Buffer.allocUnsafe(stats.size)
      let filled = 0
      while (filled < bytes.length) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, filled)
        if (bytesRead === 0) break
        filled += bytesRead
      }
      const octets = bytes.subarray(0, filled)
      return { identity: fileIdentity(stats), bytes: mode === 'netascii' ? toNetascii(octets) : octets }
    } finally {
      await handle.close().catch(() => {})
    }
  }

  private async openStreamed(realPath: string, mode: TransferMode): Promise<TransferContent> {
    const handle = await open(realPath, OPEN_FLAGS)
    try {
      const stats = await handle.stat()
      if (!stats.isFile()) throw notARegularFile(realPath)
      return new StreamedFileContent(handle, stats.size, mode === 'netascii')
    } catch (error) {
      await handle.close().catch(() => {})
      throw error
    }
  }

  private remember(key: string, identity: string, bytes: Buffer): void {
    const previous = this.entries.get(key)
    if (previous?.identity === identity) return
    if (previous !== undefined) {
      this.entries.delete(key)
      this.totalBytes -= previous.bytes.length
    }
    if (bytes.length > this.limits.maxFileBytes) return
    this.entries.set(key, { identity, bytes })
    this.totalBytes += bytes.length
    for (const [oldestKey, oldest] of this.entries) {
      if (this.totalBytes <= this.limits.maxTotalBytes) break
      this.entries.delete(oldestKey)
      this.totalBytes -= oldest.bytes.length
    }
  }
}
