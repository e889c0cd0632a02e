import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { ProxyRouteService } from '../core/proxy/proxy-route-service.ts'
import { defaultReplicaId, JobLeases } from '../jobs/job-lease.ts'
import { registerJobLeaseMetrics } from '../jobs/job-lease-metrics.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { isPostgres } from '../storage/db.ts'
import type { Db } from '../storage/database.ts'
import { jobLeaseRepository } from '../storage/repositories/job-leases.ts'
import { proxyRouteRepository } from '../storage/repositories/proxy-routes.ts'
import type { EngineMetrics } from '../transports/metrics.ts'
import type { Capability, WiringBasics } from './capability.ts'

/**
 * The leases of the singleton jobs (scheduler, rollout runner, cluster health, release reconciler):
 * each runs on the replica holding its lease (README "Replicas on PostgreSQL"). Jobs that keep a
 * replica's own memory current (drift re-checks, DNS refresh, proxy health) run on every replica.
 */
export function replicaJobLeases(config: Config, store: Db, logger: Logger, metrics: EngineMetrics): JobLeases {
  const leases = new JobLeases({
    holder: config.replicas.id || defaultReplicaId(),
    ttlMs: config.replicas.leaseSeconds * 1000,
    // SQLite: one engine per file, so a lease left by a crashed earlier start is taken at once.
    store: jobLeaseRepository(store, { exclusive: !isPostgres(store) }),
    logger,
  })
  registerJobLeaseMetrics(metrics.registry, leases)
  return leases
}

/**
 * Replicas on one PostgreSQL database: boots, the API and the proxy answer from this replica's
 * memory, so what another replica changed (a scheduling pass, content, clusters, routes) is reloaded
 * on a timer.
 */
export function replicaRefresh({ config, store, logger }: WiringBasics, reload: () => Promise<void>, proxyRoutes: ProxyRouteService): Capability {
  const versions = (routes: readonly { id: string; updatedAt: string }[]) => routes.map((route) => `${route.id}@${route.updatedAt}`).sort().join(',')
  const refresh = new SerialJob(
    async () => {
      await reload()
      // Reloading routes re-checks their origins: only when another replica changed them.
      if (versions(await proxyRouteRepository(store).list()) !== versions(proxyRoutes.current())) await proxyRoutes.load()
    },
    { name: 'replica refresh', intervalMs: config.replicas.refreshSeconds * 1000, debounceMs: 0, logger },
  )
  return { jobs: isPostgres(store) && config.replicas.refreshSeconds > 0 ? [refresh] : [], listeners: [] }
}
