import { readFileSync } from 'node:fs'
import { openListener } from '../lib/listener-error.ts'
import { OriginHealthBoard } from '../core/proxy/origin-health.ts'
import { ProxyRouteService } from '../core/proxy/proxy-route-service.ts'
import { checkOrigins } from '../jobs/proxy-health-loop.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { proxyRouteRepository } from '../storage/repositories/proxy-routes.ts'
import { PooledOriginProbe } from '../transports/proxy/origin-probe.ts'
import { OriginPools } from '../transports/proxy/origin-pools.ts'
import { ProxyMetrics } from '../transports/proxy/proxy-metrics.ts'
import { startProxyServer, type ProxyServer } from '../transports/proxy/proxy-server.ts'
import type { Capability, EngineListener, WiringBasics } from './capability.ts'

/**
 * The reverse proxy: the stored routes, loaded now so that the proxy serves after a restart what it
 * served before; the origins' health in memory and its check job; one connection pool per origin;
 * the listener (when proxy.enabled).
 */
export async function wireReverseProxy({ config, store, logger, metrics, events }: WiringBasics) {
  const settings = config.proxy
  const log = logger.child({ component: 'proxy' })
  const health = new OriginHealthBoard(Date.now, (change) => {
    const entry = { route: change.routeId, from: change.from, to: change.to, ...(change.error ? { error: change.error } : {}) }
    if (change.to === 'unhealthy') log.warn(entry, `origin of proxy route ${change.routeId} is unhealthy: ${change.error}`)
    else log.info(entry, `origin of proxy route ${change.routeId} is ${change.to}`)
  })
  const pools = new OriginPools({ connectTimeoutMs: settings.connectTimeoutSeconds * 1000, maxConnectionsPerOrigin: settings.maxConnectionsPerOrigin })
  const routes = new ProxyRouteService(proxyRouteRepository(store), health, {
    changed: (current) => {
      pools.retain(current)
      health.retain(current.map((route) => route.id))
      events.emit('proxy routes changed')
    },
  })
  const probe = new PooledOriginProbe(pools)
  const healthChecks = new SerialJob(
    () =>
      checkOrigins(routes.current(), probe, health, {
        timeoutMs: settings.healthTimeoutSeconds * 1000,
        concurrency: 32,
        stillCurrent: (route) => routes.current().some((current) => current.id === route.id && current.updatedAt === route.updatedAt),
      }),
    { name: 'proxy health check', intervalMs: settings.healthIntervalSeconds * 1000, debounceMs: 50, logger },
  )
  // A new or changed route shows its origin's health within moments, not at the next interval.
  events.on('proxy routes changed', (reason) => healthChecks.trigger(reason))
  const restored = await routes.load()
  if (restored.length > 0) log.info({ routes: restored.length }, 'proxy routes restored')

  let server: ProxyServer | undefined
  const listener: EngineListener = async ({ connections }) => {
    if (!settings.enabled) return undefined
    const tls = settings.tls.certFile ? { cert: readPem(settings.tls.certFile, 'proxy.tls.certFile'), key: readPem(settings.tls.keyFile, 'proxy.tls.keyFile') } : undefined
    const hint = 'set proxy.host / proxy.port (SLIPWAY_PROXY_HOST, SLIPWAY_PROXY_PORT), or proxy.enabled: false'
    server = await openListener('reverse proxy', settings.host, settings.port, hint, () =>
      startProxyServer({
        host: settings.host,
        port: settings.port,
        ...(tls ? { tls } : {}),
        routes,
        pools,
        health,
        metrics: new ProxyMetrics(metrics.registry),
        logger: log,
        requestTimeoutMs: settings.requestTimeoutSeconds * 1000,
        connectTimeoutMs: settings.connectTimeoutSeconds * 1000,
        listener: {
          headersTimeoutSeconds: settings.headersTimeoutSeconds,
          keepAliveTimeoutSeconds: settings.keepAliveTimeoutSeconds,
          idleTimeoutSeconds: settings.idleTimeoutSeconds,
          maxConnections: settings.maxConnections,
          maxConnectionsPerClient: settings.maxConnectionsPerClient,
        },
        governor: connections,
      }),
    )
    log.info({ url: server.url, routes: routes.current().length }, 'reverse proxy is serving')
    return server
  }
  const checking = settings.enabled && settings.healthIntervalSeconds > 0
  const capability: Capability = { jobs: checking ? [healthChecks] : [], listeners: [listener], close: () => pools.close() }
  return { routes, url: () => server?.url, ...capability }
}

function readPem(file: string, key: string): Buffer {
  try {
    return readFileSync(file)
  } catch (error) {
    throw new Error(`${key}: cannot read ${file}: ${(error as Error).message}`)
  }
}
