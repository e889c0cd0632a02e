/**
 * At most `limit` tasks at once; the others wait their turn, first come first served. A finished task
 * hands its slot straight to the oldest waiter, so a newcomer never overtakes the queue. A task that
 * waits between attempts (a retry, a poll) holds no slot while it waits if it calls `run` per attempt.
 */
export class ConcurrencyLimiter {
  private free: number
  private readonly waiting: (() => void)[] = []

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a concurrency limit is a whole number of at least 1 (got ${limit})`)
    this.free = limit
  }

  /** Tasks running now. */
  get running(): number {
    return this.limit - this.free
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.waiting.length
  }

  /** Runs `task` once a slot is free; its result or failure is the caller's, and the slot is freed either way. */
  async run<T>(task: () => Promise<T> | T): Promise<T> {
    if (this.free > 0) this.free--
    else await new Promise<void>((resolve) => this.waiting.push(resolve))
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.free++
    }
  }
}

/**
 * Runs `work` on every item, at most `limit` at once, started in the items' order. Rejects with the
 * first failure, as Promise.all does; the items already queued still run.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const limiter = new ConcurrencyLimiter(limit)
  await Promise.all(items.map((item) => limiter.run(() => work(item))))
}
