import Type from 'typebox'
import type { StoredChart } from '../../../core/releases/chart-service.ts'
import { CLUSTER_PHASES, RELEASE_STATES } from '../../../core/releases/release.ts'
import type { ReleaseDetail, ReleaseView } from '../../../core/releases/release-service.ts'
import { Nullable } from '../../../lib/nullable.ts'

export const ChartResponse = Type.Object({
  name: Type.String(),
  version: Type.String(),
  app_version: Nullable(Type.String()),
  description: Nullable(Type.String()),
  api_version: Type.String(),
  digest: Type.String({ description: 'sha256 of the archive.' }),
  size_bytes: Type.Integer(),
  source: Type.Enum(['upload', 'repository']),
  source_url: Nullable(Type.String()),
  created_at: Type.String(),
})
export const toChartResponse = (chart: StoredChart) => ({
  name: chart.name,
  version: chart.version,
  app_version: chart.appVersion,
  description: chart.description,
  api_version: chart.apiVersion,
  digest: chart.digest,
  size_bytes: chart.sizeBytes,
  source: chart.source,
  source_url: chart.sourceUrl,
  created_at: chart.createdAt,
})

const ClusterStatus = Type.Object({
  cluster: Type.String(),
  revision: Type.Integer(),
  phase: Type.Enum([...CLUSTER_PHASES]),
  error: Nullable(Type.String()),
  attempts: Type.Integer(),
  retry_at: Nullable(Type.String()),
  objects: Type.Integer({ description: 'Objects the release put on the cluster.' }),
  updated_at: Type.String(),
  ready_at: Nullable(Type.String()),
})
const Revision = Type.Object({
  revision: Type.Integer(),
  chart: Type.Object({ name: Type.String(), version: Type.String() }),
  values: Type.Record(Type.String(), Type.Unknown()),
  cluster_values: Type.Boolean(),
  description: Type.String(),
  created_at: Type.String(),
})
export const ReleaseResponse = Type.Object({
  name: Type.String(),
  namespace: Type.String(),
  selector: Type.String(),
  excluded_clusters: Type.Array(Type.String()),
  revision: Type.Integer(),
  state: Type.Enum([...RELEASE_STATES]),
  rollout: Type.Object({ max_parallel: Type.Integer(), canary_selector: Nullable(Type.String()), max_failures: Type.Integer(), ready_timeout_seconds: Type.Integer() }),
  chart: Type.Object({ name: Type.String(), version: Type.String() }),
  dns: Type.Object({
    hostnames: Type.Array(Type.String()),
    policy: Type.String(),
    ttl_seconds: Nullable(Type.Integer()),
    weights: Type.Record(Type.String(), Type.Integer()),
    failover: Type.Array(Type.String()),
  }),
  summary: Type.Object({ clusters: Type.Integer(), ready: Type.Integer(), applying: Type.Integer(), failed: Type.Integer(), pending: Type.Integer(), removing: Type.Integer() }),
  clusters: Type.Array(ClusterStatus),
  created_at: Type.String(),
  updated_at: Type.String(),
})
export const ReleaseDetailResponse = Type.Object({
  ...ReleaseResponse.properties,
  revisions: Type.Array(Revision),
  events: Type.Array(Type.Object({ at: Type.String(), cluster: Nullable(Type.String()), message: Type.String() })),
})

export const toReleaseResponse = (view: ReleaseView) => {
  const count = (phase: string) => view.clusters.filter((status) => status.phase === phase).length
  return {
    name: view.name,
    namespace: view.namespace,
    selector: view.selector,
    excluded_clusters: view.excludedClusters,
    revision: view.revision,
    state: view.state,
    rollout: { max_parallel: view.rollout.maxParallel, canary_selector: view.rollout.canarySelector, max_failures: view.rollout.maxFailures, ready_timeout_seconds: view.rollout.readyTimeoutSeconds },
    chart: { name: view.current.chartName, version: view.current.chartVersion },
    dns: { hostnames: view.dns.hostnames, policy: view.dns.policy, ttl_seconds: view.dns.ttlSeconds, weights: view.dns.weights, failover: view.dns.failover },
    summary: { clusters: view.clusters.length, ready: count('ready'), applying: count('applying'), failed: count('failed'), pending: count('pending'), removing: count('removing') },
    clusters: view.clusters.map((status) => ({
      cluster: status.cluster,
      revision: status.revision,
      phase: status.phase,
      error: status.error,
      attempts: status.attempts,
      retry_at: status.retryAt,
      objects: status.objects.length,
      updated_at: status.updatedAt,
      ready_at: status.readyAt,
    })),
    created_at: view.createdAt,
    updated_at: view.updatedAt,
  }
}
export const toReleaseDetailResponse = (detail: ReleaseDetail) => ({
  ...toReleaseResponse(detail),
  revisions: detail.revisions.map((revision) => ({
    revision: revision.revision,
    chart: { name: revision.chartName, version: revision.chartVersion },
    values: revision.values,
    cluster_values: revision.clusterValues,
    description: revision.description,
    created_at: revision.createdAt,
  })),
  events: detail.events,
})

export const ReleaseParams = Type.Object({ namespace: Type.String({ maxLength: 63 }), name: Type.String({ maxLength: 53 }) })
export const ReleaseSelectorQuery = Type.Object({ labels: Type.Optional(Type.String({ maxLength: 4096, description: 'Kubernetes label selector over cluster labels.' })) })

export const ChartParams = Type.Object({ name: Type.String({ maxLength: 253 }), version: Type.String({ maxLength: 128 }) })
export const RollbackBody = Type.Object({ revision: Type.Integer({ minimum: 1 }) }, { additionalProperties: false })
export const RemovalResponse = Type.Object({ clusters: Type.Array(Type.String()), whole: Type.Boolean() })

// optikon's release routes name the release in the path and its namespace in the query.
export const OptikonSelectorQuery = Type.Object({ labels: Type.Optional(Type.String({ maxLength: 4096 })), namespace: Type.Optional(Type.String({ maxLength: 63 })) })
export const OptikonReleaseParams = Type.Object({ name: Type.String({ maxLength: 53 }) })

// The engine's charts as a Helm chart repository: index.yaml entries, archives beside it.

/** A chart's archive in the repository, named as `helm package` names it. */
export const chartArchiveName = (chart: StoredChart) => `${chart.name}-${chart.version}.tgz`
export const ChartFileParams = Type.Object({ file: Type.String({ pattern: '\\.tgz$', maxLength: 400 }) })
/** One entry of index.yaml, in Helm's format, its URL relative to the index. */
export const toHelmIndexEntry = (chart: StoredChart) => ({
  apiVersion: chart.apiVersion,
  name: chart.name,
  version: chart.version,
  ...(chart.appVersion ? { appVersion: chart.appVersion } : {}),
  ...(chart.description ? { description: chart.description } : {}),
  created: chart.createdAt,
  digest: chart.digest,
  urls: [chartArchiveName(chart)],
})
