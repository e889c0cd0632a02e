import type { ProxyRoute } from '../../core/proxy/proxy-route.ts'
import type { OriginProbe, ProbeResult } from '../../core/proxy/origin-health.ts'
import type { OriginPools } from './origin-pools.ts'

/**
 * The health check of an origin: a GET through the same pool (and so the same TLS policy) as the
 * proxied traffic. The origin's base URL is up when it answers anything below 500 (an application
 * may well answer 404 at its root); a configured health_check_path must answer 2xx or 3xx.
 */
export class PooledOriginProbe implements OriginProbe {
  constructor(private readonly pools: OriginPools) {}

  async probe(route: ProxyRoute, timeoutMs: number): Promise<ProbeResult> {
    const target = this.pools.targetOf(route)
    const path = route.healthCheckPath ?? (target.origin.basePath || '/')
    try {
      const answer = await target.pool.request({
        method: 'GET',
        path,
        headers: { host: target.origin.hostHeader, 'user-agent': 'slipway-proxy-health-check' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
        ...(target.servername ? { servername: target.servername } : {}),
      })
      await answer.body.dump()
      const limit = route.healthCheckPath ? 400 : 500
      if (answer.statusCode < limit) return { ok: true }
      return { ok: false, error: `health check GET ${path} answered ${answer.statusCode}` }
    } catch (error) {
      const code = (error as { code?: string }).code
      const cause = (error as { cause?: { code?: string } }).cause?.code
      const name = (error as Error).name
      if (name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        return { ok: false, error: `health check GET ${path}: no answer within ${timeoutMs / 1000} s` }
      }
      return { ok: false, error: `health check GET ${path}: ${(error as Error).message}${code ? ` (${code})` : cause ? ` (${cause})` : ''}` }
    }
  }
}
