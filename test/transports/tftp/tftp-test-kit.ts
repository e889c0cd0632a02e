// Shared by the TFTP tests and the benchmark: fixtures, real-client runner, and a raw TFTP client.
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile, open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pino, { type Logger } from 'pino'

export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a client binary; never rejects, so a test can assert on a failing client's exit code. */
export function runCommand(command: string, args: string[], timeoutMs = 120_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
      resolve({ code, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

export async function sha256OfFile(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex')
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Runs `tasks` with at most `limit` in flight; results keep the tasks' order. */
export async function runLimited<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const index = next++
      results[index] = await tasks[index]!()
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker))
  return results
}

export async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const handle = await open(file, 'w')
  try {
    for (let written = 0; written < bytes; ) {
      const chunk = randomBytes(Math.min(4 * 1024 * 1024, bytes - written))
      await handle.write(chunk)
      written += chunk.length
    }
  } finally {
    await handle.close()
  }
}

export interface TftpFixture {
  base: string
  ipxeDir: string
  root: string
  outside: string
  downloads: string
  /** sha256 of every servable name (relative to the server) */
  expected: Map<string, string>
  cleanup(): Promise<void>
}

/**
 * ipxeDir: real Debian iPXE binaries + generated files; root: its own files, a link inside it and
 * links escaping it; outside: a secret the links point at.
 */
export async function createTftpFixture(options: { bigFileMiB?: number } = {}): Promise<TftpFixture> {
  const base = await mkdtemp(path.join(tmpdir(), 'slipway-tftp-'))
  const ipxeDir = path.join(base, 'ipxe')
  const root = path.join(base, 'root')
  const outside = path.join(base, 'outside')
  const downloads = path.join(base, 'downloads')
  for (const folder of [ipxeDir, root, path.join(root, 'sub'), outside, downloads]) await mkdir(folder, { recursive: true })

  for (const binary of ['undionly.kpxe', 'ipxe.efi', 'snponly.efi']) {
    await copyFile(path.join('/usr/lib/ipxe', binary), path.join(ipxeDir, binary))
  }
  await writeRandomFile(path.join(ipxeDir, 'one-mib.bin'), 1024 * 1024)
  await writeRandomFile(path.join(ipxeDir, 'big.bin'), (options.bigFileMiB ?? 40) * 1024 * 1024)
  await writeRandomFile(path.join(ipxeDir, 'exact-1024.bin'), 1024)
  await writeFile(path.join(ipxeDir, 'empty.bin'), '')
  await writeFile(path.join(ipxeDir, 'shadowed.txt'), 'from ipxeDir\n')

  await writeFile(path.join(root, 'shadowed.txt'), 'from root\n')
  await writeFile(path.join(root, 'sub', 'inside.txt'), 'inside the root\n')
  await writeFile(path.join(outside, 'secret.txt'), 'SECRET outside the root\n')
  await symlink(path.join(root, 'sub', 'inside.txt'), path.join(root, 'inside-link.txt'))
  await symlink(path.join(outside, 'secret.txt'), path.join(root, 'escape-link.txt'))
  await symlink(outside, path.join(root, 'escape-dir'))
  await symlink('../outside/secret.txt', path.join(root, 'relative-escape.txt'))

  const expected = new Map<string, string>()
  for (const name of ['undionly.kpxe', 'ipxe.efi', 'snponly.efi', 'one-mib.bin', 'big.bin', 'exact-1024.bin', 'empty.bin']) {
    expected.set(name, await sha256OfFile(path.join(ipxeDir, name)))
  }
  expected.set('shadowed.txt', await sha256OfFile(path.join(root, 'shadowed.txt')))
  expected.set('inside-link.txt', await sha256OfFile(path.join(root, 'sub', 'inside.txt')))
  expected.set('sub/inside.txt', await sha256OfFile(path.join(root, 'sub', 'inside.txt')))

  return { base, ipxeDir, root, outside, downloads, expected, cleanup: () => rm(base, { recursive: true, force: true }) }
}

export interface CapturedLogs {
  logger: Logger
  records: Record<string, unknown>[]
}

/** A pino logger whose JSON lines are kept in memory for assertions. */
export function captureLogs(level = 'info'): CapturedLogs {
  const records: Record<string, unknown>[] = []
  const logger = pino({ level }, { write: (line: string) => records.push(JSON.parse(line) as Record<string, unknown>) })
  return { logger, records }
}

// Raw TFTP packets (RFC 1350 / 2347) for the raw client and the fuzzer.
export function requestPacket(opcode: 1 | 2, file: string, mode = 'octet', options: Record<string, string> = {}): Buffer {
  const fields = [file, mode, ...Object.entries(options).flat()]
  return Buffer.concat([Buffer.from([0, opcode]), ...fields.map((field) => Buffer.from(`${field}\0`, 'latin1'))])
}
export function ackPacket(block: number): Buffer {
  const packet = Buffer.alloc(4)
  packet.writeUInt16BE(4, 0)
  packet.writeUInt16BE(block & 0xffff, 2)
  return packet
}
export function errorPacket(code: number, message: string): Buffer {
  return Buffer.concat([Buffer.from([0, 5, code >> 8, code & 0xff]), Buffer.from(`${message}\0`, 'latin1')])
}
export function parseOptions(packet: Buffer, offset = 2): Record<string, string> {
  const strings = packet.toString('latin1', offset).split('\0')
  const options: Record<string, string> = {}
  for (let index = 0; index + 1 < strings.length; index += 2) options[strings[index]!] = strings[index + 1]!
  return options
}

export interface Datagram {
  data: Buffer
  from: RemoteInfo
}

/** A UDP socket on a loopback address (127.0.0.1 unless told) with an awaitable receive queue. */
export class RawTftpClient {
  readonly socket: Socket
  private readonly queue: Datagram[] = []
  private waiter: ((datagram: Datagram | undefined) => void) | undefined

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('message', (data, from) => {
      const waiter = this.waiter
      if (waiter) {
        this.waiter = undefined
        waiter({ data, from })
      } else this.queue.push({ data, from })
    })
  }

  /** Bound to `port` when given (to stand for a new client that reuses a closed client's port). */
  static async open(address = '127.0.0.1', port = 0): Promise<RawTftpClient> {
    const socket = createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(port, address, resolve))
    return new RawTftpClient(socket)
  }

  send(packet: Buffer, port: number): void {
    this.socket.send(packet, port, '127.0.0.1')
  }

  /** Next datagram, or undefined after `timeoutMs`. */
  receive(timeoutMs = 3000): Promise<Datagram | undefined> {
    const queued = this.queue.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        resolve(undefined)
      }, timeoutMs)
      this.waiter = (datagram) => {
        clearTimeout(timer)
        resolve(datagram)
      }
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()))
  }
}

/**
 * Downloads `file` the RFC 7440 way: ACKs only the last block of each window (and the final block).
 * Returns the OACK options, the data, and the distinct transfer ports seen.
 */
export async function windowedDownload(
  client: RawTftpClient,
  serverPort: number,
  file: string,
  options: { blksize: number; windowsize: number },
): Promise<{ oack: Record<string, string>; data: Buffer }> {
  client.send(
    requestPacket(1, file, 'octet', { blksize: String(options.blksize), tsize: '0', windowsize: String(options.windowsize) }),
    serverPort,
  )
  const first = await client.receive()
  if (!first) throw new Error('no answer to the RRQ')
  if (first.data.readUInt16BE(0) !== 6) throw new Error(`expected OACK, got opcode ${first.data.readUInt16BE(0)}`)
  const oack = parseOptions(first.data)
  const transferPort = first.from.port
  const blockSize = Number(oack.blksize ?? 512)
  const windowSize = Number(oack.windowsize ?? 1)
  client.send(ackPacket(0), transferPort)
  const blocks: Buffer[] = []
  let expectedBlock = 1
  for (;;) {
    const datagram = await client.receive()
    if (!datagram) throw new Error(`timed out waiting for block ${expectedBlock}`)
    if (datagram.data.readUInt16BE(0) !== 3) throw new Error(`expected DATA, got opcode ${datagram.data.readUInt16BE(0)}`)
    const block = datagram.data.readUInt16BE(2)
    if (block !== (expectedBlock & 0xffff)) continue // duplicate from a retransmission
    const payload = datagram.data.subarray(4)
    blocks.push(payload)
    const last = payload.length < blockSize
    if (last || expectedBlock % windowSize === 0) client.send(ackPacket(block), transferPort)
    expectedBlock += 1
    if (last) break
  }
  return { oack, data: Buffer.concat(blocks) }
}
