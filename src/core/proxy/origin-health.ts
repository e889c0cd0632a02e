import type { ProxyRoute } from './proxy-route.ts'

/**
 * What the engine knows of each route's origin: healthy, unhealthy (with the error and when), or
 * unknown (not checked since the route was created or the engine started). Two sources feed it: the
 * periodic health check, and the proxied requests themselves (a refused connection, a timeout or a
 * TLS failure marks the origin unhealthy at once; an answer marks it healthy again). Kept in memory:
 * after a restart the first check tells.
 */
export type OriginStatus = 'unknown' | 'healthy' | 'unhealthy'

export interface OriginHealth {
  status: OriginStatus
  /** When the status last changed (null while unknown). */
  since: string | null
  /** When the origin last answered or failed, by a check or a request (milliseconds; null while unknown). */
  checkedAtMs: number | null
  lastError: string | null
  lastErrorAt: string | null
}

export interface HealthChange {
  routeId: string
  from: OriginStatus
  to: OriginStatus
  error: string | null
}

export type ProbeResult = { ok: true } | { ok: false; error: string }

/** Asks one route's origin whether it is up (the health check's port; transports/proxy/origin-probe.ts implements it). */
export interface OriginProbe {
  probe(route: ProxyRoute, timeoutMs: number): Promise<ProbeResult>
}

const UNKNOWN: OriginHealth = Object.freeze({ status: 'unknown', since: null, checkedAtMs: null, lastError: null, lastErrorAt: null })

export class OriginHealthBoard {
  private readonly states = new Map<string, OriginHealth>()

  constructor(
    private readonly nowMs: () => number = Date.now,
    /** Told when an origin changes status (for the log). */
    private readonly changed: (change: HealthChange) => void = () => {},
  ) {}

  get(routeId: string): OriginHealth {
    return this.states.get(routeId) ?? UNKNOWN
  }

  /** Cheap when nothing changes: called on every proxied answer. */
  recordSuccess(routeId: string): void {
    const now = this.nowMs()
    const state = this.states.get(routeId)
    if (state && state.status === 'healthy') {
      state.checkedAtMs = now
      return
    }
    this.states.set(routeId, { status: 'healthy', since: new Date(now).toISOString(), checkedAtMs: now, lastError: state?.lastError ?? null, lastErrorAt: state?.lastErrorAt ?? null })
    this.changed({ routeId, from: state?.status ?? 'unknown', to: 'healthy', error: null })
  }

  recordFailure(routeId: string, error: string): void {
    const now = this.nowMs()
    const at = new Date(now).toISOString()
    const state = this.states.get(routeId)
    const since = state?.status === 'unhealthy' ? state.since : at
    this.states.set(routeId, { status: 'unhealthy', since, checkedAtMs: now, lastError: error, lastErrorAt: at })
    if (state?.status !== 'unhealthy') this.changed({ routeId, from: state?.status ?? 'unknown', to: 'unhealthy', error })
  }

  /** A route removed or pointed at another origin starts over. */
  forget(routeId: string): void {
    this.states.delete(routeId)
  }

  /** Drops what is known of routes that no longer exist (a request or check that finished after a delete). */
  retain(routeIds: Iterable<string>): void {
    const keep = new Set(routeIds)
    for (const id of [...this.states.keys()]) if (!keep.has(id)) this.states.delete(id)
  }
}
