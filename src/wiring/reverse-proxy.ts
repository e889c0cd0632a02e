import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Config } from './config.ts'
import { openListener } from './lib/listener-error.ts'
import { OriginHealthBoard } from './core/proxy/origin-health.ts'
import { ProxyRouteService } from './core/proxy/proxy-route-service.ts'
import { checkOrigins } from './jobs/proxy-health-loop.ts'
import { SerialJob } from './jobs/serial-job.ts'
import type { Store } from './storage/db.ts'
import { proxyRouteRepository } from './storage/repositories/proxy-routes.ts'
import type { ConnectionGovernor } from './transports/connection-governor.ts'
import type { EngineMetrics } from './transports/metrics.ts'
import { PooledOriginProbe } from './transports/proxy/origin-probe.ts'
import { OriginPools } from './transports/proxy/origin-pools.ts'
import { ProxyMetrics } from './transports/proxy/proxy-metrics.ts'
import { startProxyServer, type ProxyServer } from './transports/proxy/proxy-server.ts'

export interface ReverseProxyWiring {
  /** The routes, for the admin API. */
  routes: ProxyRouteService
  /** Listens (when proxy.enabled), its connections bounded by `governor`, and starts the origin health checks; returns the proxy's URL. */
  start(governor: ConnectionGovernor): Promise<string | undefined>
  url(): string | undefined
  close(): Promise<void>
}

/**
 * Wires the reverse proxy (part of engine.ts, kept apart for size): the stored routes, loaded now so
 * that the proxy serves after a restart what it served before; the origins' health in memory; one
 * connection pool per origin; the health check job; the listener.
 */
export async function wireReverseProxy(settings: Config['proxy'], store: Store, logger: Logger, metrics: EngineMetrics): Promise<ReverseProxyWiring> {
  const log = logger.child({ component: 'proxy' })
  const health = new OriginHealthBoard(Date.now, (change) => {
    const entry = { route: change.routeId, from: change.from, to: change.to, ...(change.error ? { error: change.error } : {}) }
    if (change.to === 'unhealthy') log.warn(entry, `origin of proxy route ${change.routeId} is unhealthy: ${change.error}`)
    else log.info(entry, `origin of proxy route ${change.routeId} is ${change.to}`)
  })
  const pools = new OriginPools({ connectTimeoutMs: settings.connectTimeoutSeconds * 1000, maxConnectionsPerOrigin: settings.maxConnectionsPerOrigin })
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
  const routes = new ProxyRouteService(proxyRouteRepository(store), health, {
    changed: (current) => {
      pools.retain(current)
      health.retain(current.map((route) => route.id))
      // A new or changed route shows its origin's health within moments, not at the next interval.
      if (settings.healthIntervalSeconds > 0) healthChecks.trigger('routes changed')
    },
  })
  const restored = await routes.load()
  if (restored.length > 0) log.info({ routes: restored.length }, 'proxy routes restored')

  let server: ProxyServer | undefined
  return {
    routes,
    url: () => server?.url,
    start: async (governor) => {
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
          governor,
        }),
      )
      if (settings.healthIntervalSeconds > 0) healthChecks.start()
      log.info({ url: server.url, routes: routes.current().length }, 'reverse proxy is serving')
      return server.url
    },
    close: async () => {
      await healthChecks.stop()
      await server?.close()
      await pools.close()
    },
  }
}

function readPem(file: string, key: string): Buffer {
  try {
    return readFileSync(file)
  } catch (error) {
    throw new Error(`${key}: cannot read ${file}: ${(error as Error).message}`)
  }
}
