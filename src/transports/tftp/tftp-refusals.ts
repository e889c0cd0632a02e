import type { Logger } from 'pino'

/**
 * One log line per burst of turned-away traffic instead of one per packet: a flood would otherwise
 * write a line per datagram, filling the disk and hiding everything else. Requests for missing or
 * forbidden names are logged one by one up to a rate (`lineBudget`), then summarized here too. A burst ends after `quietMs`
 * without a refusal; a burst that goes on is reported every `maxMs`, so a long flood stays visible.
 * Each line carries the counts by reason and a sample of clients and files, enough to tell a flood
 * from a misconfigured firewall (transfers that are never answered) or a boot storm over the limits.
 */

/**
 * Why a request was turned away, how a transfer ended without its client ever answering, or (over the
 * line budget) which refused name lookup was not logged on its own line.
 */
export type TurnedAway =
  | 'not-found'
  | 'access-denied'
  | 'server-busy'
  | 'client-busy'
  | 'no-file-descriptor'
  | 'malformed'
  | 'write-request'
  | 'unsupported-mode'
  | 'evicted'
  | 'unanswered'

export interface BurstTiming {
  quietMs: number
  maxMs: number
}

const SAMPLE_SIZE = 5

interface Burst {
  startedAt: number
  lastAt: number
  total: number
  reasons: Map<TurnedAway, number>
  clients: Set<string>
  files: Set<string>
}

export class RefusalBursts {
  private burst: Burst | undefined
  private timer: NodeJS.Timeout | undefined
  private lineTokens = Number.POSITIVE_INFINITY
  private lineTokensAt = Date.now()

  constructor(
    private readonly log: Logger,
    private readonly timing: BurstTiming = { quietMs: 1000, maxMs: 10_000 },
  ) {}

  record(reason: TurnedAway, client: string, file?: string): void {
    const now = Date.now()
    let burst = this.burst
    if (burst === undefined) {
      burst = { startedAt: now, lastAt: now, total: 0, reasons: new Map(), clients: new Set(), files: new Set() }
      this.burst = burst
      this.schedule(this.timing.quietMs)
    }
    burst.total += 1
    burst.lastAt = now
    burst.reasons.set(reason, (burst.reasons.get(reason) ?? 0) + 1)
    if (burst.clients.size < SAMPLE_SIZE) burst.clients.add(client)
    if (file !== undefined && burst.files.size < SAMPLE_SIZE) burst.files.add(file)
  }

  /** Writes the current burst's line now (at shutdown). */
  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const burst = this.burst
    this.burst = undefined
    if (burst === undefined) return
    const reasons = Object.fromEntries(burst.reasons)
    const summary = Object.entries(reasons).map(([reason, count]) => `${reason} ${count}`).join(', ')
    this.log.warn(
      { turnedAway: burst.total, reasons, clients: [...burst.clients], files: [...burst.files], ms: burst.lastAt - burst.startedAt },
      `tftp burst of ${burst.total} requests turned away or unanswered: ${summary}`,
    )
  }

  /** True while per-request lines are within `perSecond` (a token bucket holding one second's worth). */
  lineBudget(perSecond: number): boolean {
    const now = Date.now()
    this.lineTokens = Math.min(perSecond, this.lineTokens + ((now - this.lineTokensAt) * perSecond) / 1000)
    this.lineTokensAt = now
    if (this.lineTokens < 1) return false
    this.lineTokens -= 1
    return true
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => this.check(), Math.max(delayMs, 1))
    this.timer.unref()
  }

  private check(): void {
    const burst = this.burst
    if (burst === undefined) return
    const now = Date.now()
    const quietFor = now - burst.lastAt
    const lasted = now - burst.startedAt
    if (quietFor >= this.timing.quietMs || lasted >= this.timing.maxMs) this.flush()
    else this.schedule(Math.min(this.timing.quietMs - quietFor, this.timing.maxMs - lasted))
  }
}
