import { createSocket, type RemoteInfo, type Socket, type SocketType } from 'node:dgram'
import { readFile, stat } from 'node:fs/promises'
import net from 'node:net'
import type { Logger } from 'pino'
import type { EngineMetrics } from '../metrics.ts'
import { TransferSlots, type SlotHolder } from './tftp-admission.ts'
import { DEFAULT_CACHE_LIMITS, FileContentCache, type ContentCacheLimits, type TransferContent, type TransferMode } from './tftp-content.ts'
import { negotiateOptions, oackOptions, type OptionLimits } from './tftp-options.ts'
import { ERROR_CODE, MAX_REQUEST_BYTES, OPCODE, encodeError, encodeOack, parseAck, parseError, parseRequest, readOpcode } from './tftp-packets.ts'
import { TFTP_FILE_NOT_FOUND, normalizeRequestedName, resolveServedFile } from './tftp-paths.ts'
import { RefusalBursts, type BurstTiming, type TurnedAway } from './tftp-refusals.ts'
import { ReadTransfer } from './tftp-transfer.ts'

/**
 * The engine's read-only TFTP server: hands PXE firmware the iPXE binaries (and an optional root folder).
 *
 * One listening socket reads requests, decides on them (limits, names, options) and starts a transfer;
 * each transfer has its own socket (its transfer ID, RFC 1350), bound to the configured host and
 * connected to its client (so a client that goes away ends it), and is driven by the ReadTransfer
 * state machine (tftp-transfer.ts) and one retransmission timer. The server is built to survive its
 * network: every socket has an error listener, every handler catches, file and socket descriptors are
 * bounded by the transfer slots (tftp-admission.ts), descriptor exhaustion refuses a request instead
 * of crashing, and refusals are logged once per burst (tftp-refusals.ts).
 *
 * Not done: choosing the reply address per request when bound to 0.0.0.0 (Node has no IP_PKTINFO; the
 * kernel picks the source address of a transfer by route), and writes (WRQ is refused: read-only).
 */

export interface TftpServerOptions {
  host: string
  port: number
  ipxeDir: string
  root?: string
  logger: Logger
  /** Where transfers are counted for /metrics; optional so the server can run alone. */
  metrics?: EngineMetrics
  /** Transfers at once, requests being looked up included (default 128). */
  maxTransfers?: number
  /** Transfers at once from one client address (default 8). */
  maxTransfersPerClient?: number
  /** Wait for an answer before resending, unless the client negotiated `timeout` (default 1000 ms). */
  retransmitTimeoutMs?: number
  /** Resends of the same packet before a transfer is given up (default 5). */
  retries?: number
  /** Largest blksize acknowledged (default 1468). */
  maxBlockSize?: number
  /** Largest windowsize acknowledged (default 16). */
  maxWindowSize?: number
  /** Which files are kept in memory (default: up to 16 MiB each, 64 MiB in all). */
  cacheLimits?: ContentCacheLimits
  /** When a burst of refusals is logged (default: after 1 s without one, and every 10 s while it lasts). */
  refusalLogTiming?: BurstTiming
}

export interface TftpServer {
  port: number
  close(): Promise<void>
}

export const TFTP_DEFAULTS = {
  maxTransfers: 128,
  maxTransfersPerClient: 8,
  retransmitTimeoutMs: 1000,
  retries: 5,
  // Fills an Ethernet frame (1500 MTU) without IP fragmentation.
  maxBlockSize: 1468,
  // EDK2 asks for 4; big windows only hurt on lossy links, and above 64 break tftp-hpa.
  maxWindowSize: 16,
} as const

/** How long close() waits for requests still being looked up. */
const CLOSE_GRACE_MS = 2000
/** Each transfer may hold two descriptors (its socket, a streamed file): TFTP takes at most a quarter of the limit. */
const DESCRIPTORS_PER_TRANSFER = 2
const DESCRIPTOR_SHARE = 4
/** Lines per second for missing or forbidden names before they are only summarized. */
const REFUSED_NAME_LINES_PER_SECOND = 10
/** Absorbs a boot storm's burst of requests while the event loop is busy. */
const LISTENING_RECEIVE_BUFFER_BYTES = 1024 * 1024

type Outcome = 'sent' | 'not-found' | 'access-denied' | 'client-aborted' | 'failed' | 'shutdown' | 'evicted' | 'unanswered'

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

interface Settings extends OptionLimits {
  host: string
  socketType: SocketType
  folders: { ipxeDir: string; root?: string | undefined }
  maxTransfers: number
  maxTransfersPerClient: number
  retransmitTimeoutMs: number
  retries: number
}

const BUSY_TEXT = 'Server busy, try again later'
const noop = (): void => {}
const isDescriptorExhaustion = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code === 'EMFILE' || code === 'ENFILE'
}
const errorText = (error: unknown): string => (error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error))

export async function startTftpServer(options: TftpServerOptions): Promise<TftpServer> {
  const { host, port, ipxeDir, root, logger } = options
  const family = net.isIP(host)
  if (family === 0) throw new Error(`TFTP host must be an IP address, got "${host}"`)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`TFTP port must be 0-65535, got ${port}`)
  await requireFolder(ipxeDir, 'TFTP ipxeDir')
  if (root !== undefined) await requireFolder(root, 'TFTP root')
  const log = logger.child({ component: 'tftp' })

  const positive = (name: keyof typeof TFTP_DEFAULTS): number => {
    const value = options[name] ?? TFTP_DEFAULTS[name]
    if (!Number.isInteger(value) || value < 1) throw new Error(`TFTP ${name} must be a positive integer, got ${value}`)
    return value
  }
  const settings: Settings = {
    host,
    socketType: family === 6 ? 'udp6' : 'udp4',
    folders: { ipxeDir, root },
    maxTransfers: positive('maxTransfers'),
    maxTransfersPerClient: positive('maxTransfersPerClient'),
    retransmitTimeoutMs: positive('retransmitTimeoutMs'),
    retries: positive('retries'),
    maxBlockSize: Math.max(8, Math.min(positive('maxBlockSize'), 65464)),
    maxWindowSize: Math.min(positive('maxWindowSize'), 65535),
  }
  const descriptorLimit = await softDescriptorLimit()
  if (descriptorLimit !== undefined) {
    const affordable = Math.max(1, Math.floor(descriptorLimit / DESCRIPTORS_PER_TRANSFER / DESCRIPTOR_SHARE))
    if (settings.maxTransfers > affordable) {
      log.warn(
        { maxTransfers: settings.maxTransfers, descriptorLimit, applied: affordable },
        `tftp maxTransfers lowered to ${affordable}: the process may open only ${descriptorLimit} files (raise LimitNOFILE / ulimit -n to allow more)`,
      )
      settings.maxTransfers = affordable
    }
  }

  const service = new TftpService(settings, log, options.metrics, options.cacheLimits ?? DEFAULT_CACHE_LIMITS, options.refusalLogTiming)
  const boundPort = await service.listen(port)
  log.info(
    { host, port: boundPort, ipxeDir, root, maxTransfers: settings.maxTransfers, maxTransfersPerClient: settings.maxTransfersPerClient },
    'tftp server listening',
  )
  return { port: boundPort, close: () => service.close() }
}

class TftpService {
  readonly slots: TransferSlots<TransferSession>
  readonly cache: FileContentCache
  readonly bursts: RefusalBursts
  private readonly sessionsByTransferId = new Map<string, TransferSession>()
  private readonly pendingWork = new Set<Promise<void>>()
  private readonly listening: Socket
  private closing = false
  private closed: Promise<void> | undefined
  private boundPort = 0

  constructor(
    readonly settings: Settings,
    readonly log: Logger,
    private readonly metrics: EngineMetrics | undefined,
    cacheLimits: ContentCacheLimits,
    refusalLogTiming: BurstTiming | undefined,
  ) {
    this.slots = new TransferSlots(settings)
    this.cache = new FileContentCache(cacheLimits)
    this.bursts = new RefusalBursts(log, refusalLogTiming)
    this.listening = createSocket({ type: settings.socketType, recvBufferSize: LISTENING_RECEIVE_BUFFER_BYTES, lookup: literalAddress as never })
    // The listening socket survives anything: errors are logged, a handler that throws drops its datagram.
    this.listening.on('error', (error) => log.warn({ err: error }, 'tftp listening socket error'))
    let handlerFailureLogged = false
    this.listening.on('message', (message, remote) => {
      try {
        this.onRequestDatagram(message, remote)
      } catch (error) {
        // A bug, not the client's doing: said once, then only counted, so a packet cannot flood the log.
        this.bursts.record('malformed', `${remote.address}:${remote.port}`)
        if (!handlerFailureLogged) log.warn({ err: error }, 'tftp request handler failed')
        handlerFailureLogged = true
      }
    })
  }

  listen(port: number): Promise<number> {
    const { host } = this.settings
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new Error(`TFTP server cannot listen on ${host}:${port}: ${error.code ?? error.message}`))
      }
      this.listening.once('error', onError)
      this.listening.bind({ port, address: host, exclusive: true }, () => {
        this.listening.off('error', onError)
        this.boundPort = this.listening.address().port
        resolve(this.boundPort)
      })
    })
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true
      await new Promise<void>((resolve) => {
        try {
          this.listening.close(() => resolve())
        } catch {
          resolve()
        }
      })
      for (const session of this.slots.all()) session.shutdown()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.allSettled([...this.pendingWork]),
        new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS))),
      ])
      clearTimeout(timer)
      this.bursts.flush()
      this.log.info({ port: this.boundPort }, 'tftp server closed')
    })()
    return this.closed
  }

  private onRequestDatagram(message: Buffer, remote: RemoteInfo): void {
    if (this.closing || remote.port === 0) return
    const opcode = readOpcode(message)
    if (opcode === OPCODE.WRQ) {
      const request = parseRequest(message)
      this.refuse(remote, 'write-request', request.ok ? request.filename : undefined, ERROR_CODE.ACCESS_VIOLATION, 'Access violation: this TFTP server is read-only')
      return
    }
    // Stray DATA/ACK/ERROR or noise on the listening port: no request to answer, stay silent.
    if (opcode !== OPCODE.RRQ) return
    if (message.length > MAX_REQUEST_BYTES) {
      this.refuse(remote, 'malformed', undefined, ERROR_CODE.ILLEGAL_OPERATION, `Illegal TFTP operation: request over ${MAX_REQUEST_BYTES} bytes`)
      return
    }
    const request = parseRequest(message)
    if (!request.ok) {
      this.refuse(remote, 'malformed', undefined, ERROR_CODE.ILLEGAL_OPERATION, `Illegal TFTP operation: ${request.reason}`)
      return
    }
    if (request.mode !== 'octet' && request.mode !== 'netascii') {
      this.refuse(remote, 'unsupported-mode', request.filename, ERROR_CODE.ILLEGAL_OPERATION, `Illegal TFTP operation: unsupported mode "${request.mode}"`)
      return
    }
    const client = `${remote.address}:${remote.port}`
    const name = normalizeRequestedName(request.filename)
    if (!name.ok) {
      const notFound = name.errorCode === TFTP_FILE_NOT_FOUND
      this.replyFromListening(remote, encodeError(name.errorCode, notFound ? 'File not found' : `Access violation: ${name.reason}`))
      this.report({ client, file: request.filename, outcome: notFound ? 'not-found' : 'access-denied', bytes: 0, ms: 0, reason: name.reason })
      return
    }

    const existing = this.sessionsByTransferId.get(client)
    if (existing !== undefined) {
      // A repeated request from the same port while the first is unanswered is a retransmission: the
      // transfer already running answers it. After an answer, the client has started over.
      if (!existing.answered) return
      existing.finish('client-aborted', 'the client sent a new request from the same port')
    }
    // Lookups of evicted requests still run to their end: they are bounded here, not by the slots.
    if (this.pendingWork.size >= this.settings.maxTransfers) {
      this.refuse(remote, 'server-busy', request.filename, ERROR_CODE.NOT_DEFINED, BUSY_TEXT)
      return
    }
    const admission = this.slots.decide(remote.address)
    if (!admission.admitted) {
      this.refuse(remote, admission.reason, request.filename, ERROR_CODE.NOT_DEFINED, BUSY_TEXT)
      return
    }
    admission.evict?.evict()
    const session = new TransferSession(this, remote, request.filename, request.mode, request.options)
    this.slots.add(session)
    this.sessionsByTransferId.set(client, session)
    this.metrics?.setTftpActiveTransfers(this.slots.size)
    const work = session.run()
    this.pendingWork.add(work)
    void work.then(() => this.pendingWork.delete(work))
  }

  /** Answers a request with an ERROR from the listening port, counts it and adds it to the burst log. */
  refuse(remote: RemoteInfo, reason: TurnedAway, file: string | undefined, code: number, text: string): void {
    this.metrics?.countTftpRefusal(reason)
    this.bursts.record(reason, `${remote.address}:${remote.port}`, file)
    this.replyFromListening(remote, encodeError(code, text))
  }

  replyFromListening(remote: RemoteInfo, packet: Buffer): void {
    if (this.closing) return
    // A failed reply is worth no more than the request's own record.
    try {
      this.listening.send(packet, remote.port, remote.address, noop)
    } catch {
      // the socket is closing
    }
  }

  /** Frees a session's slot; called once, when it ends. */
  release(session: TransferSession): void {
    this.slots.remove(session)
    if (this.sessionsByTransferId.get(session.transferId) === session) this.sessionsByTransferId.delete(session.transferId)
    this.metrics?.setTftpActiveTransfers(this.slots.size)
  }

  /**
   * A transfer's end: one log line each, except the unanswered ones and, over a rate, refused names
   * (anyone can send those by the thousand), which go to the burst log.
   */
  report(entry: TransferLog): void {
    this.metrics?.countTftpTransfer(entry.outcome, entry.bytes)
    const { outcome } = entry
    const overBudget = (): boolean => !this.bursts.lineBudget(REFUSED_NAME_LINES_PER_SECOND)
    if (outcome === 'evicted' || outcome === 'unanswered' || ((outcome === 'not-found' || outcome === 'access-denied') && overBudget())) {
      this.bursts.record(outcome, entry.client, entry.file)
      return
    }
    const level = entry.outcome === 'access-denied' || entry.outcome === 'failed' ? 'warn' : 'info'
    this.log[level](entry, `tftp ${entry.file}: ${entry.outcome}`)
  }

  /**
   * Runs `open` (a file or a socket for `requester`). When descriptors run out, the oldest unanswered
   * transfer that holds a socket gives it up at once and `open` is tried once more; undefined when that
   * cannot help.
   */
  async withDescriptor<T>(requester: TransferSession, open: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await open()
      } catch (error) {
        if (!isDescriptorExhaustion(error)) throw error
        const victim = attempt === 0 ? this.slots.oldestUnanswered(requester, (holder) => holder.holdsSocket) : undefined
        if (victim === undefined) return undefined
        victim.evict({ freeNow: true })
      }
    }
  }
}

class TransferSession implements SlotHolder {
  readonly clientAddress: string
  readonly clientPort: number
  readonly transferId: string
  answered = false
  private ended = false
  private socket: Socket | undefined
  private content: TransferContent | undefined
  private transfer: ReadTransfer | undefined
  private oack: Buffer | undefined
  private timer: NodeJS.Timeout | undefined
  private retriesLeft: number
  private waitingForContent = false
  private readonly startedAt = performance.now()

  constructor(
    private readonly service: TftpService,
    remote: RemoteInfo,
    readonly file: string,
    private readonly mode: TransferMode,
    private readonly requestedOptions: Map<string, string>,
  ) {
    this.clientAddress = remote.address
    this.clientPort = remote.port
    this.transferId = `${remote.address}:${remote.port}`
    this.retriesLeft = service.settings.retries
  }

  /** Looks the file up and starts sending; never rejects. */
  async run(): Promise<void> {
    try {
      await this.start()
    } catch (error) {
      this.failSafely(error)
    }
  }

  /**
   * Runs an event handler (socket, timer, file read) so that nothing it throws escapes to the event
   * loop, where it would end the process: the transfer fails instead.
   */
  private guarded(handler: () => void): void {
    try {
      handler()
    } catch (error) {
      this.failSafely(error)
    }
  }

  private failSafely(error: unknown): void {
    try {
      this.finish('failed', errorText(error), encodeError(ERROR_CODE.NOT_DEFINED, 'Server error'))
    } catch (inner) {
      this.service.log.warn({ err: inner, cause: errorText(error) }, 'tftp transfer cleanup failed')
    }
  }

  get holdsSocket(): boolean {
    return this.socket !== undefined && !this.ended
  }

  /**
   * Ends the transfer to make room for a newer request (its client never answered). With `freeNow`
   * its socket is closed at once (the notice then leaves from the listening port), so the descriptor
   * can be reused by the caller right away.
   */
  evict(options: { freeNow?: boolean } = {}): void {
    this.finish('evicted', undefined, encodeError(ERROR_CODE.NOT_DEFINED, BUSY_TEXT), options.freeNow === true)
  }

  shutdown(): void {
    this.finish('shutdown', undefined, encodeError(ERROR_CODE.NOT_DEFINED, 'Server shutting down'))
  }

  private async start(): Promise<void> {
    const { settings } = this.service
    const served = await resolveServedFile(this.file, settings.folders)
    if (this.ended) return
    if (!served.ok) {
      const notFound = served.errorCode === TFTP_FILE_NOT_FOUND
      this.finish(notFound ? 'not-found' : 'access-denied', served.reason, encodeError(served.errorCode, notFound ? 'File not found' : `Access violation: ${served.reason}`))
      return
    }

    const content = await this.service.withDescriptor(this, () => this.service.cache.open(served.realPath, this.mode)).catch((error: unknown) => {
      throw new Error(`cannot read the file: ${errorText(error)}`)
    })
    if (content === undefined) return this.refuseForDescriptors()
    if (this.ended) return content.close()
    this.content = content

    const socket = await this.service.withDescriptor(this, () => openTransferSocket(settings.socketType, settings.host, this.clientPort, this.clientAddress)).catch((error: unknown) => {
      throw new Error(`cannot open a transfer socket: ${errorText(error)}`)
    })
    if (socket === undefined) return this.refuseForDescriptors()
    if (this.ended) return closeQuietly(socket)
    this.socket = socket
    socket.on('error', (error: NodeJS.ErrnoException) => this.guarded(() => this.onSocketError(error)))

    const negotiated = negotiateOptions(this.requestedOptions, settings)
    const oack = oackOptions(negotiated, content.size)
    this.transfer = new ReadTransfer(content, negotiated.blockSize, negotiated.windowSize, oack.length > 0)
    socket.on('message', (message, remote) => this.guarded(() => this.onDatagram(message, remote)))
    this.timer = setTimeout(() => this.guarded(() => this.onTimeout()), negotiated.timeoutMs ?? settings.retransmitTimeoutMs)
    this.timer.unref()
    if (oack.length > 0) {
      this.oack = encodeOack(oack)
      socket.send(this.oack)
    } else this.sendWindow()
  }

  private onDatagram(message: Buffer, remote: RemoteInfo): void {
    if (this.ended) return
    // The socket is connected: the kernel drops other transfer IDs' packets (RFC 1350's error 5 to
    // them is not sent, as tftpd-hpa does not). Checked here too, for what a kernel might let through.
    if (remote.port !== this.clientPort || remote.address !== this.clientAddress) return
    const ack = parseAck(message)
    if (ack !== undefined) {
      this.answered = true
      const effect = this.transfer!.onAck(ack)
      if (effect === 'next-window') {
        this.retriesLeft = this.service.settings.retries
        if (!this.waitingForContent) this.sendWindow()
      } else if (effect === 'complete') this.finish('sent')
      return
    }
    const error = parseError(message)
    if (error !== undefined) {
      this.answered = true
      this.finish('client-aborted', `client sent error ${error.code}: ${error.message}`)
    }
    // Anything else from the client (short datagrams, other opcodes) is ignored.
  }

  private onSocketError(error: NodeJS.ErrnoException): void {
    if (error.code === 'ECONNREFUSED') {
      // The client's port is closed: it went away (or never listened, as a flood's senders do).
      this.finish(this.answered ? 'client-aborted' : 'unanswered', "the client's port is closed (ICMP port unreachable)")
      return
    }
    this.finish('failed', `transfer socket: ${errorText(error)}`)
  }

  private sendWindow(): void {
    if (this.ended) return
    const [start, end] = this.transfer!.windowBytes()
    const loading = this.content!.load(start, end)
    if (loading === undefined) {
      this.sendLoadedWindow()
      return
    }
    this.waitingForContent = true
    loading.then(
      () =>
        this.guarded(() => {
          this.waitingForContent = false
          this.sendWindow() // the window may have moved meanwhile: check again what it needs
        }),
      (error: unknown) => this.guarded(() => this.finish('failed', `read error: ${errorText(error)}`, encodeError(ERROR_CODE.NOT_DEFINED, 'Read error'))),
    )
  }

  private sendLoadedWindow(): void {
    const socket = this.socket!
    for (const packet of this.transfer!.windowPackets()) socket.send(packet)
    this.timer!.refresh()
  }

  private onTimeout(): void {
    if (this.ended) return
    if (this.waitingForContent) {
      this.timer!.refresh()
      return
    }
    if (this.retriesLeft <= 0) {
      const reason = `no answer after ${this.service.settings.retries} retransmissions`
      this.finish(this.answered ? 'failed' : 'unanswered', reason, encodeError(ERROR_CODE.NOT_DEFINED, 'Timed out'))
      return
    }
    this.retriesLeft -= 1
    if (this.transfer!.awaitingOackAck) this.socket!.send(this.oack!)
    else this.sendLoadedWindow()
    this.timer!.refresh()
  }

  private refuseForDescriptors(): void {
    if (this.ended) return
    this.end()
    const remote = { address: this.clientAddress, port: this.clientPort } as RemoteInfo
    this.service.refuse(remote, 'no-file-descriptor', this.file, ERROR_CODE.NOT_DEFINED, BUSY_TEXT)
  }

  /**
   * Ends the transfer once: tells the client when `notice` is given (from the transfer socket, which
   * closes once it is sent, unless `closeNow`), frees everything, reports.
   */
  finish(outcome: Outcome, reason?: string, notice?: Buffer, closeNow = false): void {
    if (this.ended) return
    const socket = this.socket
    const noticeFromSocket = notice !== undefined && socket !== undefined && !closeNow
    this.end(!noticeFromSocket)
    if (notice !== undefined) {
      if (!noticeFromSocket) this.service.replyFromListening({ address: this.clientAddress, port: this.clientPort } as RemoteInfo, notice)
      else {
        try {
          socket.send(notice, () => closeQuietly(socket))
        } catch {
          closeQuietly(socket)
        }
      }
    }
    const entry: TransferLog = {
      client: this.transferId,
      file: this.file,
      outcome,
      bytes: this.transfer?.bytesAcknowledged ?? 0,
      ms: Math.round(performance.now() - this.startedAt),
    }
    if (reason !== undefined) entry.reason = reason
    if (this.transfer !== undefined) {
      entry.blksize = this.transfer.blockSize
      entry.windowsize = this.transfer.windowSize
    }
    this.service.report(entry)
  }

  private end(closeSocket = true): void {
    this.ended = true
    clearTimeout(this.timer)
    if (closeSocket && this.socket !== undefined) closeQuietly(this.socket)
    this.content?.close()
    this.service.release(this)
  }
}


function closeQuietly(socket: Socket): void {
  try {
    socket.close()
  } catch {
    // already closed
  }
}

/**
 * Every address this server sends to is the IP literal a datagram came from: resolving it through
 * dns.lookup (dgram's default) only defers each send by a tick, which costs per block.
 */
function literalAddress(address: string, _family: unknown, callback: (error: null, address: string) => void): void {
  callback(null, address)
}

/**
 * A transfer's own socket, bound to the server's host and connected to its client, as tftpd-hpa's
 * are: the kernel then reports the client's port closing (ICMP port unreachable) as ECONNREFUSED, and
 * the transfer ends instead of resending to a port the next program may be given. Clients such as
 * curl accept DATA from any sender once they have their first packet, so those resends would become
 * that program's file.
 */
function openTransferSocket(type: SocketType, host: string, clientPort: number, clientAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type, lookup: literalAddress as never })
    const onError = (error: Error): void => {
      closeQuietly(socket)
      reject(error)
    }
    socket.once('error', onError)
    socket.bind({ port: 0, address: host, exclusive: true }, () => {
      socket.connect(clientPort, clientAddress, () => {
        socket.off('error', onError)
        resolve(socket)
      })
    })
  })
}

async function requireFolder(folder: string, label: string): Promise<void> {
  const stats = await stat(folder).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`${label} ${folder} is not readable: ${error.code ?? error.message}`)
  })
  if (!stats.isDirectory()) throw new Error(`${label} ${folder} is not a folder`)
}

/** The process's soft limit on open files (Linux /proc), or undefined where it cannot be read. */
async function softDescriptorLimit(): Promise<number | undefined> {
  const limits = await readFile('/proc/self/limits', 'utf8').catch(() => undefined)
  const soft = limits?.match(/^Max open files\s+(\d+)/m)?.[1]
  return soft === undefined ? undefined : Number(soft)
}
