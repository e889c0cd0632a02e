import { readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import type { Logger } from 'pino'

/**
 * What the governor needs of a socket: a net.Socket, or a test's stand-in. `destroy()` must end in
 * one 'close' event.
 */
export interface GovernableSocket {
  readonly remoteAddress?: string | undefined
  destroy(): void
  once(event: 'close', listener: () => void): unknown
}

/** One listener's bounds. */
export interface ListenerLimits {
  /** Connections the listener holds at most (the governor's process-wide cap may hold it lower). */
  maxConnections: number
  /** Connections one client (an IPv4 address, an IPv6 /64) holds at most on this listener. */
  maxConnectionsPerClient: number
  /** A connection accepted that has not started a request (or query) within this long is closed. */
  idleTimeoutMs: number
}

/** Why the governor closed a connection: a timeout, or a cap (the newcomer evicted an idle one, or was refused). */
export type ShedReason =
  | 'idle_timeout'
  | 'evicted_client_cap'
  | 'evicted_listener_cap'
  | 'evicted_process_cap'
  | 'refused_client_cap'
  | 'refused_listener_cap'
  | 'refused_process_cap'

/** Where the governor reports (EngineMetrics implements it). */
export interface ConnectionMetrics {
  connectionOpened(listener: string): void
  connectionClosed(listener: string): void
  connectionShed(listener: string, reason: ShedReason): void
  connectionLimit(listener: string, limit: number): void
}

export interface GovernorOptions {
  /** Connections across every listener at most: keep it below the descriptor limit (processConnectionCap). */
  maxConnections: number
  metrics?: ConnectionMetrics
  /** Told the process-wide cap, and when a listener's configured cap does not fit under it. */
  logger?: Pick<Logger, 'info'>
}

/** The name under which the process-wide cap is reported. */
export const ALL_LISTENERS = 'all'

/**
 * The one place where the engine's TCP listeners (HTTP API, reverse proxy, DNS over TCP) bound
 * their connections. Each connection is busy (an HTTP request in flight, a DNS query being
 * answered) or idle; idle ones are closed after a timeout, and a connection over a cap (its client's,
 * its listener's, the process's) first evicts the longest-idle connection under that cap and is
 * refused only when every one there is busy. RFC 7766 (6.2.3) allows closing idle DNS connections
 * under load; an idle HTTP keep-alive connection may be closed at any time (RFC 9112 9.5). So an
 * idle flood only ever displaces idle connections, and never keeps a new client out.
 */
export class ConnectionGovernor {
  readonly maxConnections: number
  private open = 0
  /** Idle connections of every listener, longest idle first (a Map keeps insertion order). */
  private readonly idle = new Map<GovernedConnection, true>()

  constructor(private readonly options: GovernorOptions) {
    this.maxConnections = Math.max(1, Math.floor(options.maxConnections))
    options.metrics?.connectionLimit(ALL_LISTENERS, this.maxConnections)
    if (Number.isFinite(this.maxConnections)) {
      options.logger?.info({ maxConnections: this.maxConnections, descriptorLimit: descriptorLimit() }, `the TCP listeners hold at most ${this.maxConnections} connections together, to stay below the file descriptor limit`)
    }
  }

  /** A listener's handle; its connection cap is never above the process-wide one. */
  listener(name: string, limits: ListenerLimits): GovernedListener {
    const effective = { ...limits, maxConnections: Math.max(1, Math.min(limits.maxConnections, this.maxConnections)) }
    if (effective.maxConnections < limits.maxConnections) {
      // Expected at the common soft limit of 1,024 (no action needed); said so that a raised cap is not a mystery.
      this.options.logger?.info(
        { listener: name, configured: limits.maxConnections, effective: effective.maxConnections, descriptorLimit: descriptorLimit() },
        `the ${name} listener holds at most ${effective.maxConnections} connections, not ${limits.maxConnections}: that is what the file descriptor limit leaves (raise it with ulimit -n or systemd LimitNOFILE=)`,
      )
    }
    this.options.metrics?.connectionLimit(name, effective.maxConnections)
    return new GovernedListener(name, effective, this, this.options.metrics)
  }

  get openConnections(): number {
    return this.open
  }

  /** @internal */ hasRoom(): boolean {
    return this.open < this.maxConnections
  }

  /** @internal */ longestIdle(): GovernedConnection | undefined {
    return this.idle.keys().next().value
  }

  /** @internal */ track(connection: GovernedConnection, change: 'opened' | 'closed' | 'idle' | 'busy'): void {
    if (change === 'opened') this.open++
    else if (change === 'closed') this.open--
    if (change === 'idle') this.idle.set(connection, true)
    else this.idle.delete(connection)
  }
}

/** A listener under the governor: admits its new sockets, and knows their clients and state. */
export class GovernedListener {
  private readonly connections = new Set<GovernedConnection>()
  private readonly idle = new Map<GovernedConnection, true>()
  private readonly clients = new Map<string, { connections: Set<GovernedConnection>; idle: Map<GovernedConnection, true> }>()

  constructor(
    readonly name: string,
    readonly limits: ListenerLimits,
    private readonly governor: ConnectionGovernor,
    private readonly metrics: ConnectionMetrics | undefined,
  ) {}

  get openConnections(): number {
    return this.connections.size
  }

  /**
   * Takes a newly accepted socket under the listener's bounds: returns its connection (idle until
   * the protocol says busy), or destroys the socket and returns undefined when it is refused.
   */
  admit(socket: GovernableSocket): GovernedConnection | undefined {
    const client = clientKey(socket.remoteAddress)
    const mine = this.clients.get(client)
    // Each cap in turn, the narrowest first: evicting one of the client's own may already make room everywhere.
    if (mine && mine.connections.size >= this.limits.maxConnectionsPerClient && !this.makeRoom(mine.idle, 'client')) return this.refuse(socket, 'refused_client_cap')
    if (this.connections.size >= this.limits.maxConnections && !this.makeRoom(this.idle, 'listener')) return this.refuse(socket, 'refused_listener_cap')
    if (!this.governor.hasRoom() && !this.makeRoom(undefined, 'process')) return this.refuse(socket, 'refused_process_cap')

    const connection = new GovernedConnection(socket, client, this)
    let entry = this.clients.get(client)
    if (!entry) this.clients.set(client, (entry = { connections: new Set(), idle: new Map() }))
    entry.connections.add(connection)
    this.connections.add(connection)
    this.governor.track(connection, 'opened')
    this.metrics?.connectionOpened(this.name)
    socket.once('close', () => this.forget(connection))
    connection.markIdle(this.limits.idleTimeoutMs)
    return connection
  }

  /** Closes every connection (at shutdown). */
  destroyAll(): void {
    for (const connection of [...this.connections]) connection.destroy()
  }

  private makeRoom(idle: Map<GovernedConnection, true> | undefined, cap: 'client' | 'listener' | 'process'): boolean {
    const victim = idle ? idle.keys().next().value : this.governor.longestIdle()
    if (!victim) return false
    victim.shed(`evicted_${cap}_cap`)
    return true
  }

  private refuse(socket: GovernableSocket, reason: ShedReason): undefined {
    this.metrics?.connectionShed(this.name, reason)
    socket.destroy()
    return undefined
  }

  /** @internal */ report(reason: ShedReason): void {
    this.metrics?.connectionShed(this.name, reason)
  }

  /** @internal */ setIdle(connection: GovernedConnection, idle: boolean): void {
    const entry = this.clients.get(connection.client)
    // Delete then set: the Maps stay ordered by the moment each connection became idle.
    this.idle.delete(connection)
    entry?.idle.delete(connection)
    if (idle) {
      this.idle.set(connection, true)
      entry?.idle.set(connection, true)
    }
    this.governor.track(connection, idle ? 'idle' : 'busy')
  }

  /** @internal Unregisters at once, so that the slot is free before the socket's 'close' event. */
  forget(connection: GovernedConnection): void {
    if (!this.connections.delete(connection)) return
    connection.stopTimer()
    this.idle.delete(connection)
    const entry = this.clients.get(connection.client)
    if (entry) {
      entry.connections.delete(connection)
      entry.idle.delete(connection)
      if (entry.connections.size === 0) this.clients.delete(connection.client)
    }
    this.governor.track(connection, 'closed')
    this.metrics?.connectionClosed(this.name)
  }
}

/** One connection under the governor: the protocol marks it busy while it serves a request. */
export class GovernedConnection {
  private inFlight = 0
  private timer: NodeJS.Timeout | undefined

  constructor(
    readonly socket: GovernableSocket,
    readonly client: string,
    private readonly listener: GovernedListener,
  ) {}

  get busy(): boolean {
    return this.inFlight > 0
  }

  /** A request (or query) started: the connection is neither timed out nor evicted until it ends. */
  requestStarted(): void {
    if (this.inFlight++ > 0) return
    this.stopTimer()
    this.listener.setIdle(this, false)
  }

  /** A request ended; once none is left, the connection is idle and closed after `idleTimeoutMs` (the listener's by default). */
  requestEnded(idleTimeoutMs = this.listener.limits.idleTimeoutMs): void {
    if (this.inFlight === 0) return
    if (--this.inFlight > 0) return
    this.markIdle(idleTimeoutMs)
  }

  destroy(): void {
    this.listener.forget(this)
    this.socket.destroy()
  }

  /** @internal */ markIdle(timeoutMs: number): void {
    this.listener.setIdle(this, true)
    this.stopTimer()
    if (timeoutMs > 0) {
      this.timer = setTimeout(() => this.shed('idle_timeout'), timeoutMs)
      this.timer.unref()
    }
  }

  /** @internal */ shed(reason: ShedReason): void {
    this.listener.report(reason)
    this.destroy()
  }

  /** @internal */ stopTimer(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }
}

/**
 * Who a connection belongs to for the per-client cap: the IPv4 address (also when IPv4-mapped), or
 * the IPv6 /64, since one host is usually given a whole /64 and could otherwise take every slot.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return '?'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return mapped[1]!
  if (!net.isIPv6(address)) return address
  const [head = '', tail = ''] = address.split('%')[0]!.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups
    .slice(0, 4)
    .map((group) => (parseInt(group, 16) || 0).toString(16))
    .join(':')}::/64`
}

/** The process's file descriptor limits, from /proc/self/limits (Linux); undefined elsewhere. */
export function descriptorLimit(limitsFile = '/proc/self/limits'): number | undefined {
  try {
    const soft = /^Max open files\s+(\S+)/m.exec(readFileSync(limitsFile, 'utf8'))?.[1]
    if (soft === undefined) return undefined
    return soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft)
  } catch {
    return undefined
  }
}

/** Descriptors the process has open now (Linux); undefined elsewhere. */
export function openDescriptors(folder = '/proc/self/fd'): number | undefined {
  try {
    return readdirSync(folder).length
  } catch {
    return undefined
  }
}

/**
 * How many connections the listeners may hold together: the descriptor soft limit less what is
 * open now and a reserve (a quarter of the limit, at least 128) for what the engine opens besides
 * its listeners' connections: the database, TFTP transfers, the proxy's and the registry's outgoing
 * connections, helm's pipes. Without the reserve, a flood that reaches the limit makes accept()
 * fail with EMFILE and every new client, /healthz included, is reset.
 */
export function processConnectionCap(limit = descriptorLimit(), open = openDescriptors() ?? 0): number | undefined {
  if (limit === undefined || !Number.isFinite(limit)) return undefined
  const reserve = Math.max(128, Math.ceil(limit / 4))
  return Math.max(16, limit - open - reserve)
}
