import type { AuditEntry } from './audit-entry.ts'

/** Where audit entries are kept; storage implements it. */
export interface AuditStore {
  append(entry: AuditEntry): Promise<void>
  /** Removes entries older than `before`, then the oldest beyond `keepRows` (0: no row limit); returns how many went. */
  prune(retention: { before: string | null; keepRows: number }): Promise<number>
}

export interface AuditRetention {
  /** Entries older than this go (0: kept for ever). */
  retentionDays: number
  /** At most this many entries are kept, the newest (0: no limit). */
  maxRows: number
}

/** Distinct (source, method, route) summaries held between flushes; past it, one catch-all summary. */
export const MAX_PENDING_SUMMARIES = 10_000

interface Summary {
  entry: AuditEntry
  first: string
  count: number
}

/**
 * The audit log's writer. Every call made with a credential is recorded as it happens. Calls refused
 * for having none (401) are what a scanner or a flood sends by the million, so they are counted per
 * source address, method and route and written as one summary entry per flush ("N unauthenticated
 * calls refused between ... and ..."): the log keeps saying who knocked, and stays bounded. Retention
 * removes entries by age and by count.
 */
export class AuditTrail {
  private pending = new Map<string, Summary>()

  constructor(
    private readonly store: AuditStore,
    private readonly retention: AuditRetention,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async record(entry: AuditEntry): Promise<void> {
    if (entry.principal !== null || entry.status !== 401) return this.store.append(entry)
    let key = `${entry.sourceIp}\0${entry.method}\0${entry.route}`
    if (!this.pending.has(key) && this.pending.size >= MAX_PENDING_SUMMARIES) key = '*'
    const summary = this.pending.get(key)
    if (summary) {
      summary.count++
      summary.entry = key === '*' ? { ...entry, sourceIp: '*', route: '*', method: '*' } : entry
    } else {
      this.pending.set(key, { entry: key === '*' ? { ...entry, sourceIp: '*', route: '*', method: '*' } : entry, first: entry.at, count: 1 })
    }
  }

  /** Writes the pending summaries (the last refusal of each, with the count and the time span). */
  async flush(): Promise<void> {
    const summaries = [...this.pending.values()]
    this.pending = new Map()
    for (const { entry, first, count } of summaries) {
      const span = count === 1 ? `at ${first}` : `between ${first} and ${entry.at}`
      await this.store.append({ ...entry, target: null, requestId: '-', summary: `${count} unauthenticated call${count === 1 ? '' : 's'} refused (401) ${span}` })
    }
  }

  /** Applies the retention; returns how many entries went. */
  prune(): Promise<number> {
    const before = this.retention.retentionDays > 0 ? new Date(this.clock().getTime() - this.retention.retentionDays * 86_400_000).toISOString() : null
    return this.store.prune({ before, keepRows: this.retention.maxRows })
  }
}
