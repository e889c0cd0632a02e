import { isIP } from 'node:net'
import { Pool } from 'undici'
import { parseOrigin, type ParsedOrigin, type ProxyRoute } from '../../core/proxy/proxy-route.ts'

export interface OriginPoolOptions {
  connectTimeoutMs: number
  maxConnectionsPerOrigin: number
  /** Idle keep-alive connections are closed after this long (an origin's own limit may be shorter). */
  keepAliveMs?: number
}

/** A route as the proxy uses it: the route, its parsed origin and the pool that reaches it. */
export interface OriginTarget {
  origin: ParsedOrigin
  pool: Pool
  /** SNI for https origins named by a host name (kept on the origin's name when the Host header is the client's). */
  servername: string | undefined
}

/**
 * One undici connection pool per origin (scheme, host, port) and certificate policy, shared by every
 * route that points there: keep-alive connections are reused across requests and routes. A pool no
 * route uses any more is closed once its requests in flight finish.
 */
export class OriginPools {
  private readonly pools = new Map<string, Pool>()
  /** Route values are immutable (a change makes new ones): the target is worked out once per value. */
  private targets = new WeakMap<ProxyRoute, OriginTarget>()

  constructor(private readonly options: OriginPoolOptions) {}

  targetOf(route: ProxyRoute): OriginTarget {
    let target = this.targets.get(route)
    if (!target) {
      const origin = parseOrigin(route.origin)
      target = { origin, pool: this.poolFor(origin, route.tlsVerify), servername: origin.protocol === 'https:' ? serverName(origin) : undefined }
      this.targets.set(route, target)
    }
    return target
  }

  /** Closes the pools no current route uses (once their requests in flight finish); called after every route change. */
  retain(routes: readonly ProxyRoute[]): void {
    const keep = new Set<string>()
    for (const route of routes) keep.add(poolKey(parseOrigin(route.origin), route.tlsVerify))
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue
      this.pools.delete(key)
      void pool.close().catch(() => undefined)
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()]
    this.pools.clear()
    this.targets = new WeakMap()
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => undefined)))
  }

  private poolFor(origin: ParsedOrigin, tlsVerify: boolean): Pool {
    const key = poolKey(origin, tlsVerify)
    let pool = this.pools.get(key)
    if (!pool) {
      pool = new Pool(origin.base, {
        connections: this.options.maxConnectionsPerOrigin,
        connect: { timeout: this.options.connectTimeoutMs, ...(origin.protocol === 'https:' ? { rejectUnauthorized: tlsVerify } : {}) },
        keepAliveTimeout: this.options.keepAliveMs ?? 4_000,
        keepAliveMaxTimeout: 600_000,
      })
      this.pools.set(key, pool)
    }
    return pool
  }
}

const poolKey = (origin: ParsedOrigin, tlsVerify: boolean) => `${origin.base} ${origin.protocol === 'https:' ? (tlsVerify ? 'verify' : 'no-verify') : ''}`

function serverName(origin: ParsedOrigin): string | undefined {
  const host = new URL(origin.base).hostname
  return host && isIP(host.replace(/^\[|\]$/g, '')) === 0 ? host : undefined
}
