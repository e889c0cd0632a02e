import type { OriginHealthBoard, OriginProbe } from '../core/proxy/origin-health.ts'
import type { ProxyRoute } from '../core/proxy/proxy-route.ts'
import { forEachLimited } from '../lib/concurrency-limiter.ts'

export interface HealthPassReport {
  routes: number
  probes: number
  healthy: number
  unhealthy: number
  durationMs: number
}

/**
 * One health pass over every route's origin, a bounded number at a time. Routes that share an origin,
 * certificate policy and health path share one probe. A pass is run by a SerialJob (engine.ts), so
 * passes never overlap and a slow origin delays only its own answer.
 */
export async function checkOrigins(
  routes: readonly ProxyRoute[],
  probe: OriginProbe,
  board: OriginHealthBoard,
  options: { timeoutMs: number; concurrency: number; stillCurrent?: (route: ProxyRoute) => boolean },
): Promise<HealthPassReport> {
  const started = Date.now()
  const groups = new Map<string, ProxyRoute[]>()
  for (const route of routes) {
    const key = `${route.origin} ${route.tlsVerify} ${route.healthCheckPath ?? ''}`
    groups.set(key, [...(groups.get(key) ?? []), route])
  }
  let healthy = 0
  let unhealthy = 0
  await forEachLimited([...groups.values()], options.concurrency, async (group) => {
    const result = await probe.probe(group[0]!, options.timeoutMs)
    for (const route of group) {
      // A route changed or deleted while its origin was probed: the answer is about an old origin.
      if (options.stillCurrent && !options.stillCurrent(route)) continue
      if (result.ok) {
        board.recordSuccess(route.id)
        healthy++
      } else {
        board.recordFailure(route.id, result.error)
        unhealthy++
      }
    }
  })
  return { routes: routes.length, probes: groups.size, healthy, unhealthy, durationMs: Date.now() - started }
}
