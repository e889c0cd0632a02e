/**
 * Tools of the listener attack tests (HTTP, reverse proxy, DNS over TCP): floods of idle TCP
 * connections from loopback sources, timed probes, slow senders, and a ramp that records how many
 * idle connections it took before a probe failed or got slow. Everything is bounded in count and
 * time, and every socket opened here is destroyed by `close()`.
 */
import http from 'node:http'
import net from 'node:net'
import { performance } from 'node:perf_hooks'

/** 127.0.0.1 and then 127.0.0.2, 127.0.0.3, ...: distinct clients to the listener, all on loopback. */
export function loopbackSources(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `127.0.0.${index + 1}`)
}

export interface IdleFlood {
  /** Connections still open on our side (the server has not closed them). */
  readonly open: number
  /** Connections the server closed (evicted, timed out or refused). */
  readonly closedByServer: number
  /** Connections that never connected (refused by the kernel, timed out). */
  readonly failed: number
  /** Opens `count` more connections that never send a byte, in batches; resolves when each connected or failed. */
  add(count: number): Promise<void>
  /** Destroys every socket of the flood. */
  close(): Promise<void>
}

/** Idle TCP connections to host:port, each from the next of `sources` in turn. */
export function idleFlood(port: number, options: { host?: string; sources?: string[]; batch?: number; connectTimeoutMs?: number } = {}): IdleFlood {
  const host = options.host ?? '127.0.0.1'
  const sources = options.sources ?? ['127.0.0.1']
  const batch = options.batch ?? 100
  const connectTimeoutMs = options.connectTimeoutMs ?? 3_000
  const sockets = new Set<net.Socket>()
  let next = 0
  let closedByServer = 0
  let failed = 0
  let closing = false
  const connectOne = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ host, port, localAddress: sources[next++ % sources.length] })
      sockets.add(socket)
      let connected = false
      const timer = setTimeout(() => {
        failed++
        socket.destroy()
        resolve()
      }, connectTimeoutMs)
      socket.once('connect', () => {
        connected = true
        clearTimeout(timer)
        resolve()
      })
      socket.on('error', () => {})
      // Reading is what lets a close by the server be seen at all.
      socket.resume()
      socket.once('close', () => {
        sockets.delete(socket)
        clearTimeout(timer)
        if (!connected) {
          failed++
          resolve()
        } else if (!closing) closedByServer++
      })
    })
  return {
    get open() {
      return sockets.size
    },
    get closedByServer() {
      return closedByServer
    },
    get failed() {
      return failed
    },
    async add(count: number) {
      for (let done = 0; done < count; done += batch) {
        await Promise.all(Array.from({ length: Math.min(batch, count - done) }, connectOne))
      }
    },
    async close() {
      closing = true
      const closed = [...sockets].map((socket) => new Promise((resolve) => (socket.destroyed ? resolve(undefined) : socket.once('close', resolve))))
      for (const socket of sockets) socket.destroy()
      await Promise.all(closed)
    },
  }
}

export interface Probe {
  ok: boolean
  ms: number
  detail: string
}

/** One GET on a fresh connection (no pooling), timed; any HTTP status counts as answered unless `expect` says otherwise. */
export function timedGet(port: number, path: string, options: { host?: string; timeoutMs?: number; expect?: number; localAddress?: string } = {}): Promise<Probe> {
  const started = performance.now()
  return new Promise((resolve) => {
    const done = (ok: boolean, detail: string) => resolve({ ok, ms: performance.now() - started, detail })
    const request = http.get({ host: options.host ?? '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (response) => {
      response.resume()
      response.once('end', () => done(options.expect === undefined || response.statusCode === options.expect, `HTTP ${response.statusCode}`))
      response.once('error', (error) => done(false, error.message))
    })
    request.setTimeout(options.timeoutMs ?? 2_000, () => request.destroy(new Error('no answer in time')))
    request.once('error', (error) => done(false, (error as NodeJS.ErrnoException).code ?? error.message))
  })
}

export interface RampResult {
  /** Idle connections opened when a probe failed or took longer than the limit twice in a row; undefined when none did. */
  firstBadAt: number | undefined
  firstBad: Probe | undefined
  /** The worst probe that counted (the second of a pair). */
  worst: Probe
  /** Probes that were bad once and fine when repeated. */
  repeated: number
  probes: { connections: number; probe: Probe }[]
}

/**
 * Opens idle connections `step` at a time up to `total`, probing after each step. A bad probe is
 * repeated once at once: a denial of service fails both, while a scheduling hiccup of a loaded
 * 2-core machine (other test files run beside this one) does not count.
 */
export async function rampIdleFlood(flood: IdleFlood, options: { total: number; step: number; limitMs: number; probe: () => Promise<Probe> }): Promise<RampResult> {
  const probes: { connections: number; probe: Probe }[] = []
  let firstBadAt: number | undefined
  let firstBad: Probe | undefined
  let worst: Probe = { ok: true, ms: 0, detail: 'none' }
  let repeated = 0
  const bad = (probe: Probe) => !probe.ok || probe.ms > options.limitMs
  for (let opened = 0; opened < options.total; ) {
    const count = Math.min(options.step, options.total - opened)
    await flood.add(count)
    opened += count
    let probe = await options.probe()
    if (bad(probe)) {
      const again = await options.probe()
      if (!bad(again)) repeated++
      probe = bad(again) ? (probe.ok ? again : probe) : again
    }
    probes.push({ connections: opened, probe })
    if (!probe.ok || (worst.ok && probe.ms > worst.ms)) worst = probe
    if (firstBadAt === undefined && bad(probe)) {
      firstBadAt = opened
      firstBad = probe
    }
  }
  return { firstBadAt, firstBad, worst, repeated, probes }
}

export function describeRamp(what: string, ramp: RampResult, flood: IdleFlood): string {
  const bad = ramp.firstBadAt === undefined ? 'never failed or exceeded the limit' : `first failed/slow at ${ramp.firstBadAt} idle connections (${ramp.firstBad!.detail}, ${ramp.firstBad!.ms.toFixed(1)} ms)`
  return `${what}: ${bad}; worst probe ${ramp.worst.ms.toFixed(1)} ms (${ramp.worst.detail}), ${ramp.repeated} probe(s) slow once and fine when repeated; flood still open ${flood.open}, closed by the server ${flood.closedByServer}, failed to connect ${flood.failed}`
}

/** What happened to a slow sender: closed by the server after `closedAfterMs`, or still open when we gave up. */
export interface SlowSenderOutcome {
  closedAfterMs: number | undefined
  /** What the server wrote before closing (an HTTP 408, for example). */
  received: string
}

/**
 * Connects and writes `head` at once, then one byte of `trickle` every `everyMs`, until the server
 * closes the connection or `giveUpMs` passes; the trickle wraps around, so it never runs out.
 */
export function slowSender(port: number, options: { head: string; trickle: string; everyMs: number; giveUpMs: number; host?: string }): Promise<SlowSenderOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port })
    let received = ''
    let started = 0
    let index = 0
    let timer: NodeJS.Timeout | undefined
    const finish = (closedAfterMs: number | undefined) => {
      clearInterval(timer)
      clearTimeout(giveUp)
      socket.destroy()
      resolve({ closedAfterMs, received })
    }
    const giveUp = setTimeout(() => finish(undefined), options.giveUpMs)
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
    socket.on('error', () => {})
    socket.once('close', () => finish(performance.now() - started))
    socket.once('connect', () => {
      started = performance.now()
      if (options.head) socket.write(options.head)
      timer = setInterval(() => {
        if (socket.destroyed || !socket.writable) return
        socket.write(options.trickle[index++ % options.trickle.length]!)
      }, options.everyMs)
    })
  })
}

/** A metric's value from a Prometheus text page (0 when absent). */
export function metricValue(page: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0
  for (const line of page.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-z_:]+)(\{([^}]*)\})? ([0-9.e+-]+|NaN)$/i.exec(line)
    if (!match || match[1] !== name) continue
    const present = Object.fromEntries([...(match[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((pair) => [pair[1], pair[2]]))
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) total += Number(match[4])
  }
  return total
}
