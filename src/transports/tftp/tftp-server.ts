import { type RemoteInfo, type Socket } from 'node:dgram'
import { createReadStream, constants as fsConstants } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import net from 'node:net'
import type { Logger } from 'pino'
import type { EngineMetrics } from '../metrics.ts'
import tftp, { type MessageListener, type TftpRequest, type TftpResponse } from 'tftp'
import {
  TFTP_ACCESS_VIOLATION,
  TFTP_FILE_NOT_FOUND,
  normalizeRequestedName,
  resolveServedFile,
} from './tftp-paths.ts'

/**
 * The engine's read-only TFTP server: hands PXE firmware the iPXE binaries (and an optional root folder).
 *
 * Transfers are run by node-tftp 0.1.2 (fast, windowsize-capable), but Slipway owns everything in front
 * of them, because the library alone is unsafe for a network service:
 * - it binds its own listening socket and cannot bind port 0 (0 becomes 69): Slipway binds the library's
 *   socket itself and reads the chosen port back;
 * - a refused WRQ gets code 0 "Cannot PUT files", `..` gets code 0 "Invalid filename" and bad option
 *   values get code 8, none of which reach the request listener (so they could not be logged): every
 *   datagram on the listening port is checked here first; requests are answered here when refused, or
 *   rewritten into a canonical RRQ (known options only, values clamped, invalid ones dropped as RFC 2347
 *   allows) that the library cannot reject;
 * - its per-transfer socket reads the opcode of any datagram without a length check (a 1-byte datagram
 *   throws inside the `message` event and kills the process) and accepts packets from any address
 *   (an ERROR from a stranger aborts the transfer): Slipway wraps that socket's listener to drop short
 *   datagrams and answer strangers with error 5 (RFC 1350 "Unknown transfer ID");
 * - it follows symlinks out of its root: names are resolved with realpath and contained (tftp-paths.ts);
 * - an `error` event without a listener on a request crashes the process: every request gets one.
 * Not supported by the library, so not acknowledged: the `timeout` option (RFC 2349) is ignored and the
 * server retransmits after a fixed 3 s, 3 times.
 */

export interface TftpServerOptions {
  host: string
  port: number
  ipxeDir: string
  root?: string
  logger: Logger
  /** Where transfers are counted for /metrics; optional so the server can run alone. */
  metrics?: EngineMetrics
}

export interface TftpServer {
  port: number
  close(): Promise<void>
}

/** Largest block acknowledged: fills an Ethernet frame (1500 MTU) without IP fragmentation. */
const MAX_BLOCK_SIZE = 1468
/** Largest RFC 7440 window acknowledged. EDK2 asks for 4; big windows only hurt on lossy links. */
const MAX_WINDOW_SIZE = 16
/** RFC 2347: a request, options included, fits in 512 bytes. */
const MAX_REQUEST_BYTES = 512
/** How long close() waits for in-flight transfers to acknowledge their abort. */
const CLOSE_GRACE_MS = 2000

const OPCODE_RRQ = 1
const OPCODE_WRQ = 2
const OPCODE_ERROR = 5
const ERROR_NOT_DEFINED = 0
const ERROR_ILLEGAL_OPERATION = 4
const ERROR_UNKNOWN_TRANSFER_ID = 5

type Outcome = 'sent' | 'not-found' | 'access-denied' | 'client-aborted' | 'failed' | 'refused' | 'shutdown'

interface TransferLog {
  client: string
  file: string
  outcome: Outcome
  bytes: number
  ms: number
  reason?: string
  blksize?: number
  windowsize?: number
}

export async function startTftpServer(options: TftpServerOptions): Promise<TftpServer> {
  const { host, port, ipxeDir, root, logger } = options
  const family = net.isIP(host)
  if (family === 0) throw new Error(`TFTP host must be an IP address, got "${host}"`)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`TFTP port must be 0-65535, got ${port}`)
  await requireFolder(ipxeDir, 'TFTP ipxeDir')
  if (root !== undefined) await requireFolder(root, 'TFTP root')

  const log = logger.child({ component: 'tftp' })
  const activeTransfers = new Set<TftpRequest>()
  let requestsAwaitingLibrary = 0
  let closing = false

  const logTransfer = (entry: TransferLog): void => {
    const level = entry.outcome === 'access-denied' || entry.outcome === 'failed' || entry.outcome === 'refused'
      ? 'warn'
      : 'info'
    log[level](entry, `tftp ${entry.file}: ${entry.outcome}`)
    options.metrics?.countTftpTransfer(entry.outcome, entry.bytes)
  }

  const handleTransfer = (req: TftpRequest, res: TftpResponse): void => {
    requestsAwaitingLibrary = Math.max(0, requestsAwaitingLibrary - 1)
    const startedAt = performance.now()
    const client = `${req.stats.remoteAddress}:${req.stats.remotePort}`
    const entry: TransferLog = {
      client,
      file: req.file,
      outcome: 'sent',
      bytes: 0,
      ms: 0,
      blksize: req.stats.blockSize,
      windowsize: req.stats.windowSize,
    }
    let finished = false
    let outcomeDecided = false
    let fileStream: ReturnType<typeof createReadStream> | undefined
    const decide = (outcome: Outcome, reason?: string): void => {
      if (outcomeDecided) return
      outcomeDecided = true
      entry.outcome = outcome
      if (reason !== undefined) entry.reason = reason
    }
    const clientError = guardTransferSocket(res._writer._socket, req.stats.remoteAddress, req.stats.remotePort)

    activeTransfers.add(req)
    // node-tftp emits `close`, then `error` or `abort` synchronously: settle the outcome a microtask later.
    req.on('error', (error: Error) => {
      if (clientError.code !== undefined) decide('client-aborted', `client sent error ${clientError.code}: ${clientError.message}`)
      else decide('failed', error.message)
    })
    req.on('abort', () => (closing ? decide('shutdown') : decide('failed', 'aborted')))
    req.on('close', () => {
      queueMicrotask(() => {
        if (finished) return
        finished = true
        activeTransfers.delete(req)
        fileStream?.destroy()
        entry.ms = Math.round(performance.now() - startedAt)
        logTransfer(entry)
      })
    })

    if (closing) {
      decide('shutdown')
      req.abort('Server shutting down')
      return
    }

    void (async () => {
      const served = await resolveServedFile(req.file, { ipxeDir, root })
      if (finished) return
      if (!served.ok) {
        const notFound = served.errorCode === TFTP_FILE_NOT_FOUND
        decide(notFound ? 'not-found' : 'access-denied', served.reason)
        req.abort(notFound ? tftp.ENOENT : tftp.EACCESS)
        return
      }
      // O_NONBLOCK: opening a FIFO someone left in the folder must not hang; size comes from the open fd.
      const handle = await open(served.realPath, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK)
      const size = (await handle.stat()).size
      if (finished) {
        await handle.close()
        return
      }
      fileStream = createReadStream('', { fd: handle, highWaterMark: 64 * 1024 })
      fileStream.on('data', (chunk) => {
        entry.bytes += chunk.length
      })
      fileStream.on('error', (error) => {
        decide('failed', `read error: ${error.message}`)
        req.abort(tftp.EIO)
      })
      res.setSize(size)
      fileStream.pipe(res)
    })().catch((error: unknown) => {
      decide('failed', error instanceof Error ? error.message : String(error))
      req.abort(tftp.EIO)
    })
  }

  const library = tftp.createServer(
    { host, port: port === 0 ? 69 : port, root: ipxeDir, denyPUT: true, blockSize: MAX_BLOCK_SIZE, windowSize: MAX_WINDOW_SIZE },
    handleTransfer,
  )
  library.on('error', (error: Error) => log.warn({ err: error }, 'tftp listening socket error'))

  const listeningSocket = library._socket
  const [forwardToLibrary] = listeningSocket.listeners('message') as MessageListener[]
  if (forwardToLibrary === undefined) throw new Error('node-tftp internals changed: no message listener on its socket')
  listeningSocket.removeAllListeners('message')

  const reply = (remote: RemoteInfo, packet: Buffer): void => {
    listeningSocket.send(packet, remote.port, remote.address, () => {
      // A failed reply to a refused request is not worth more than the request log line.
    })
  }

  listeningSocket.on('message', (message: Buffer, remote: RemoteInfo) => {
    if (closing || remote.port === 0) return
    const client = `${remote.address}:${remote.port}`
    const refuse = (file: string, code: number, text: string): void => {
      logTransfer({ client, file, outcome: 'refused', bytes: 0, ms: 0, reason: text })
      reply(remote, errorPacket(code, text))
    }

    const opcode = message.length >= 2 ? message.readUInt16BE(0) : -1
    if (opcode === OPCODE_WRQ) {
      const request = parseRequest(message)
      refuse(request.ok ? request.filename : '(unparsable)', TFTP_ACCESS_VIOLATION, 'Access violation: this TFTP server is read-only')
      return
    }
    // Stray DATA/ACK/ERROR or noise on the listening port: no request to answer, stay silent.
    if (opcode !== OPCODE_RRQ) return

    if (message.length > MAX_REQUEST_BYTES) {
      refuse('(oversized request)', ERROR_ILLEGAL_OPERATION, `Illegal TFTP operation: request over ${MAX_REQUEST_BYTES} bytes`)
      return
    }
    const request = parseRequest(message)
    if (!request.ok) {
      refuse('(unparsable)', ERROR_ILLEGAL_OPERATION, `Illegal TFTP operation: ${request.reason}`)
      return
    }
    if (request.mode !== 'octet' && request.mode !== 'netascii') {
      refuse(request.filename, ERROR_ILLEGAL_OPERATION, `Illegal TFTP operation: unsupported mode "${request.mode}"`)
      return
    }
    const name = normalizeRequestedName(request.filename)
    if (!name.ok) {
      const text = name.errorCode === TFTP_FILE_NOT_FOUND ? 'File not found' : `Access violation: ${name.reason}`
      logTransfer({
        client,
        file: request.filename,
        outcome: name.errorCode === TFTP_FILE_NOT_FOUND ? 'not-found' : 'access-denied',
        bytes: 0,
        ms: 0,
        reason: name.reason,
      })
      reply(remote, errorPacket(name.errorCode, text))
      return
    }
    const canonical = canonicalReadRequest(name.relativePath, request.options)
    if (canonical.length > MAX_REQUEST_BYTES) {
      refuse(request.filename, ERROR_ILLEGAL_OPERATION, 'Illegal TFTP operation: request too long')
      return
    }
    requestsAwaitingLibrary += 1
    forwardToLibrary(canonical, remote)
  })

  const boundPort = await bindSocket(listeningSocket, port, host)
  log.info({ host, port: boundPort, ipxeDir, root }, 'tftp server listening')

  let closed: Promise<void> | undefined
  return {
    port: boundPort,
    close() {
      closed ??= (async () => {
        closing = true
        await new Promise<void>((resolve) => {
          listeningSocket.once('close', resolve)
          library.close()
        })
        // Requests the library accepted just before closing still reach handleTransfer (and are aborted).
        const deadline = Date.now() + CLOSE_GRACE_MS
        for (const transfer of activeTransfers) transfer.abort('Server shutting down')
        while ((activeTransfers.size > 0 || requestsAwaitingLibrary > 0) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10))
          for (const transfer of activeTransfers) transfer.abort('Server shutting down')
        }
        log.info({ port: boundPort }, 'tftp server closed')
      })()
      return closed
    },
  }
}

async function requireFolder(folder: string, label: string): Promise<void> {
  const stats = await stat(folder).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`${label} ${folder} is not readable: ${error.code ?? error.message}`)
  })
  if (!stats.isDirectory()) throw new Error(`${label} ${folder} is not a folder`)
}

function bindSocket(socket: Socket, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(new Error(`TFTP server cannot listen on ${host}:${port}: ${error.code ?? error.message}`))
    }
    socket.once('error', onError)
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.off('error', onError)
      resolve(socket.address().port)
    })
  })
}

/**
 * Wraps the library's per-transfer socket listener so that junk cannot crash the process and strangers
 * cannot disturb the transfer; records an ERROR sent by the client (the library keeps only its text).
 */
function guardTransferSocket(
  socket: Socket,
  clientAddress: string,
  clientPort: number,
): { code?: number; message?: string } {
  const clientError: { code?: number; message?: string } = {}
  const libraryListeners = socket.listeners('message') as MessageListener[]
  socket.removeAllListeners('message')
  socket.on('message', (message: Buffer, remote: RemoteInfo) => {
    if (remote.address !== clientAddress || remote.port !== clientPort) {
      if (remote.port !== 0) {
        const packet = errorPacket(ERROR_UNKNOWN_TRANSFER_ID, 'Unknown transfer ID')
        socket.send(packet, remote.port, remote.address, () => {})
      }
      return
    }
    if (message.length < 4) return
    if (message.readUInt16BE(0) === OPCODE_ERROR) {
      clientError.code = message.readUInt16BE(2)
      clientError.message = readCString(message, 4)
    }
    for (const listener of libraryListeners) listener(message, remote)
  })
  return clientError
}

type ParsedRequest =
  | { ok: true; filename: string; mode: string; options: Map<string, string> }
  | { ok: false; reason: string }

/** Parses an RRQ/WRQ body: filename, mode, then option name/value pairs (RFC 1350, RFC 2347). */
function parseRequest(message: Buffer): ParsedRequest {
  const strings: string[] = []
  let offset = 2
  while (offset < message.length) {
    const end = message.indexOf(0, offset)
    if (end === -1) break // an unterminated tail is ignored (after filename and mode it can only be an option)
    strings.push(message.toString('latin1', offset, end))
    offset = end + 1
  }
  const [filename, mode, ...optionStrings] = strings
  if (filename === undefined || mode === undefined) return { ok: false, reason: 'missing filename or mode' }
  if (filename === '') return { ok: false, reason: 'empty filename' }
  const options = new Map<string, string>()
  for (let index = 0; index + 1 < optionStrings.length; index += 2) {
    const optionName = optionStrings[index]!.toLowerCase()
    if (optionName === '') break // some ROMs pad the request with NULs
    if (!options.has(optionName)) options.set(optionName, optionStrings[index + 1]!)
  }
  return { ok: true, filename, mode: mode.toLowerCase(), options }
}

/**
 * Rebuilds the RRQ with only the options the library implements, with values it accepts: invalid values
 * are dropped (no OACK for them, RFC 2347) instead of failing the request, too-large ones are clamped.
 */
function canonicalReadRequest(relativePath: string, requested: Map<string, string>): Buffer {
  const negotiated: [string, string][] = []
  const numeric = (name: string): number | undefined => {
    const value = requested.get(name)
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined
  }
  const blksize = numeric('blksize')
  if (blksize !== undefined && blksize >= 8) negotiated.push(['blksize', String(Math.min(blksize, 65464))])
  if (numeric('tsize') !== undefined) negotiated.push(['tsize', '0']) // in an RRQ, tsize asks for the size
  const windowsize = numeric('windowsize')
  if (windowsize !== undefined && windowsize >= 1) negotiated.push(['windowsize', String(Math.min(windowsize, 65535))])

  const parts = [Buffer.from([0, OPCODE_RRQ]), Buffer.from(`${relativePath}\0octet\0`, 'latin1')]
  for (const [name, value] of negotiated) parts.push(Buffer.from(`${name}\0${value}\0`, 'latin1'))
  return Buffer.concat(parts)
}

function errorPacket(code: number, message: string): Buffer {
  const text = Buffer.from(message.replace(/[^\x20-\x7e]/g, '?'), 'latin1')
  const packet = Buffer.alloc(5 + text.length)
  packet.writeUInt16BE(OPCODE_ERROR, 0)
  packet.writeUInt16BE(code >= 0 && code <= 8 ? code : ERROR_NOT_DEFINED, 2)
  text.copy(packet, 4)
  return packet
}

function readCString(buffer: Buffer, offset: number): string {
  const end = buffer.indexOf(0, offset)
  return buffer.toString('latin1', offset, end === -1 ? buffer.length : end)
}
