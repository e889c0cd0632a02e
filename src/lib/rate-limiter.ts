/**
 * A token bucket per key (a client address): `perMinute` tokens a minute, up to `burst` saved. Keys
 * are forgotten once their bucket is full again, and at most `maxKeys` are kept (the oldest go
 * first), so a flood from many addresses costs bounded memory.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  /** Takes a token for `key`: allowed, or the seconds until the next one. */
  take(key: string, now = Date.now()): { allowed: true } | { allowed: false; retryAfterSeconds: number } {
    const perMs = this.perMinute / 60_000
    const bucket = this.buckets.get(key)
    const tokens = bucket ? Math.min(this.burst, bucket.tokens + (now - bucket.at) * perMs) : this.burst
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now })
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)) }
    }
    this.buckets.delete(key)
    if (tokens - 1 < this.burst) this.buckets.set(key, { tokens: tokens - 1, at: now })
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!)
    return { allowed: true }
  }
}
