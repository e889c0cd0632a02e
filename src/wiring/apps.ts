import path from 'node:path'
import { locateHelm } from '../adapters/helm/helm-binary.ts'
import { HelmCli } from '../adapters/helm/helm-cli.ts'
import { KubernetesReleaseApplier } from '../adapters/helm/release-applier.ts'
import { KubernetesClusterApi } from '../adapters/kubernetes/cluster-api-client.ts'
import type { TenantDirectory } from '../core/access/tenancy.ts'
import { ClusterRegistry, type ClusterApi } from '../core/registry/registry-service.ts'
import { ChartService } from '../core/releases/chart-service.ts'
import type { ReleaseApplier, ReleaseClusters } from '../core/releases/ports.ts'
import { ReleaseExecutor } from '../core/releases/release-executor.ts'
import { ReleaseService } from '../core/releases/release-service.ts'
import { ClusterHealthLoop } from '../jobs/cluster-health-loop.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { registryRepository } from '../storage/repositories/registry.ts'
import { chartRepository, releaseRepository } from '../storage/repositories/releases.ts'
import type { Capability, WiringBasics } from './capability.ts'
import type { Provisioning } from './provisioning.ts'

/** The real ones reach clusters' API servers; tests may substitute them. */
export interface AppsAdapters {
  clusterApi?: ClusterApi & { close?(): Promise<void> }
  releaseApplier?: ReleaseApplier & { close?(): Promise<void> }
}

/**
 * Managing clusters centrally: the registry and its health sweep, charts (rendered by the helm
 * binary) and releases fanned out to the clusters their selector matches, applied by the release
 * reconciler (one replica at a time) over each cluster's API server.
 */
export function wireApps(
  { config, store, secrets, logger, metrics, events, jobLeases }: WiringBasics,
  provisioning: Pick<Provisioning, 'clusters' | 'clusterDirectory' | 'endpointLookup'>,
  tenants: TenantDirectory,
  adapters: AppsAdapters,
) {
  // Connections outlive a sweep interval (and a little more), so that each sweep reuses them.
  const clusterApi = adapters.clusterApi ?? new KubernetesClusterApi({ keepAliveMs: Math.max(60_000, config.registry.healthIntervalSeconds * 2_000 + 10_000), lookup: provisioning.endpointLookup })
  const provisioned = { joinTarget: (name: string) => provisioning.clusters.joinTarget(name), destroy: (name: string) => provisioning.clusters.destroyCluster(name) }
  const registry = new ClusterRegistry(registryRepository(store, secrets), clusterApi, provisioned, undefined, async () => {
    // Role templates see `cluster.labels`: the members' configs may have changed; and release
    // selectors may now match the cluster, or no longer.
    await provisioning.clusterDirectory.load()
    events.emit('cluster changed')
  })
  const healthSweep = new ClusterHealthLoop(registry, {
    intervalMs: config.registry.healthIntervalSeconds * 1000,
    concurrency: config.registry.healthConcurrency,
    requestTimeoutMs: config.registry.requestTimeoutSeconds * 1000,
    logger,
    swept: () => events.emit('clusters swept'),
    gate: jobLeases.lease('cluster-health'),
  })
  const helm = new HelmCli({ locate: () => locateHelm(config.helm.binary, path.join(config.dataDir, 'tools')), workDir: path.join(config.dataDir, 'helm'), concurrency: config.releases.helmConcurrency })
  const charts = new ChartService(chartRepository(store), helm, config.releases.maxChartBytes)
  const releases = new ReleaseService(releaseRepository(store), charts, helm, releaseTargets(registry, tenants), undefined, () => events.emit('release changed'))
  const releaseApplier = adapters.releaseApplier ?? new KubernetesReleaseApplier((cluster) => registry.connection(cluster), { requestTimeoutMs: config.releases.requestTimeoutSeconds * 1000, lookup: provisioning.endpointLookup })
  const releaseExecutor = new ReleaseExecutor(
    {
      repository: releaseRepository(store),
      charts,
      renderer: helm,
      applier: releaseApplier,
      service: releases,
      clock: () => new Date(),
      log: ({ level, message, ...fields }) => logger[level]({ component: 'releases', ...fields }, message),
      rendered: () => metrics.countHelmRender(),
    },
    () => events.emit('release cluster finished'),
  )
  const releaseReconciler = new SerialJob(() => releaseExecutor.tick(), {
    name: 'release reconciler',
    intervalMs: config.releases.reconcileIntervalSeconds * 1000,
    debounceMs: 50,
    logger,
    gate: jobLeases.lease('release-reconciler'),
  })
  for (const event of ['cluster changed', 'release changed', 'release cluster finished'] as const) events.on(event, (reason) => releaseReconciler.trigger(reason))

  const capability: Capability = {
    jobs: [
      ...(config.registry.healthIntervalSeconds > 0 ? [healthSweep] : []),
      {
        start: () => releaseReconciler.start(),
        stop: async () => {
          await releaseReconciler.stop()
          await releaseExecutor.stop()
        },
      },
    ],
    listeners: [],
    close: async () => {
      await releaseApplier.close?.()
      await clusterApi.close?.()
    },
  }
  return { registry, healthSweep, charts, releases, ...capability }
}

/** The registry's clusters as release selectors see them; a tenant's release goes to its tenant's clusters only. */
function releaseTargets(registry: ClusterRegistry, tenants: TenantDirectory): ReleaseClusters {
  return {
    list: async () => {
      const tenantOf = await tenants.clusterTenants()
      return (await registry.list()).map((cluster) => ({
        name: cluster.name,
        tenant: tenantOf.get(cluster.name) ?? null,
        labels: cluster.labels,
        latitude: cluster.location.latitude,
        longitude: cluster.location.longitude,
        region: cluster.location.region,
        site: cluster.location.site,
        joined: cluster.joinedAt !== null,
        kubernetesVersion: cluster.health?.kubernetesVersion ?? null,
      }))
    },
  }
}
