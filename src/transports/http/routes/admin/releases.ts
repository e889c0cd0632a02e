import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ChartService, StoredChart } from '../../../../core/releases/chart-service.ts'
import { CLUSTER_PHASES, RELEASE_STATES, ReleaseDocument, UpgradeDocument } from '../../../../core/releases/release.ts'
import type { ReleaseDetail, ReleaseService, ReleaseView } from '../../../../core/releases/release-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { readChartUpload } from '../chart-upload.ts'
import { tenancyOf } from '../../auth.ts'
import { operate, read, releaseOwner } from '../../../../core/access/route-policy.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

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
const ReleaseDetailResponse = Type.Object({
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
const toDetailResponse = (detail: ReleaseDetail) => ({
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

const ReleaseParams = Type.Object({ namespace: Type.String({ maxLength: 63 }), name: Type.String({ maxLength: 53 }) })
const SelectorQuery = Type.Object({ labels: Type.Optional(Type.String({ maxLength: 4096, description: 'Kubernetes label selector over cluster labels.' })) })

export interface ReleaseRouteOptions {
  charts: ChartService
  releases: ReleaseService
}

/** Charts (the engine's Helm repository) and releases fanned out to clusters, under /api/v1. */
export const releaseRoutes: FastifyPluginAsyncTypebox<ReleaseRouteOptions> = async (app, { charts, releases }) => {
  app.get('/charts', { config: { access: read('tenant') }, schema: { tags: ['releases'], summary: 'Every stored chart version', response: { 200: Type.Array(ChartResponse), ...adminErrors } } }, async () =>
    (await charts.list()).map(toChartResponse),
  )
  app.post(
    '/charts',
    {
      config: { access: operate('tenant') },
      schema: {
        tags: ['releases'],
        summary: 'Store a chart: a .tgz (multipart field `chart` or `chartTar`, or an application/gzip body), or {repository, chart, version} to pull from a Helm repository',
        response: { 201: ChartResponse, ...adminErrors },
      },
    },
    async (request, reply) => {
      const upload = await readChartUpload(request)
      const chart = upload.kind === 'archive' ? await charts.upload(upload.archive) : await charts.pull(upload.repository, upload.chart, upload.version)
      return reply.status(201).send(toChartResponse(chart))
    },
  )
  app.delete(
    '/charts/:name/:version',
    { config: { access: operate() }, schema: { tags: ['releases'], summary: 'Delete a chart version', params: Type.Object({ name: Type.String({ maxLength: 253 }), version: Type.String({ maxLength: 128 }) }), response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await charts.remove(request.params.name, request.params.version)
      return reply.status(204).send(null)
    },
  )

  app.get(
    '/releases',
    { config: { access: read('tenant') }, schema: { tags: ['releases'], summary: 'Every release, or those on clusters matching ?labels=', querystring: SelectorQuery, response: { 200: Type.Array(ReleaseResponse), ...adminErrors } } },
    async (request) => tenancyOf(request).releases(await releases.list(request.query.labels)).map(toReleaseResponse),
  )
  app.post(
    '/releases',
    {
      config: { access: operate('tenant') },
      schema: {
        tags: ['releases'],
        summary: 'Install a chart on every cluster matching a selector (rendered by helm first: 400 CHART_RENDER_FAILED with its message)',
        body: Type.Unknown({ description: 'ReleaseDocument: name, namespace, chart {name, version}, selector, values, cluster_values, rollout {max_parallel, canary_selector, max_failures, ready_timeout_seconds}.' }),
        response: { 201: ReleaseDetailResponse, ...adminErrors },
      },
    },
    async (request, reply) => {
      // `tenant`: a tenant token's releases are its tenant's; a fleet token may name one.
      const { body, tenant } = tenancyOf(request).claim(request.body)
      return reply.status(201).send(toDetailResponse(await releases.install(body, tenant)))
    },
  )
  app.get(
    '/releases/:namespace/:name',
    { config: { access: read('tenant', releaseOwner) }, schema: { tags: ['releases'], summary: 'A release with its per-cluster status, revisions and events', params: ReleaseParams, response: { 200: ReleaseDetailResponse, ...adminErrors } } },
    async (request) => toDetailResponse(await releases.get(request.params.namespace, request.params.name)),
  )
  app.put(
    '/releases/:namespace/:name',
    {
      config: { access: operate('tenant', releaseOwner) },
      schema: {
        tags: ['releases'],
        summary: 'Upgrade: a new revision (chart version, values, selector, rollout settings; what is left out is kept)',
        params: ReleaseParams,
        body: Type.Unknown({ description: 'UpgradeDocument.' }),
        response: { 200: ReleaseDetailResponse, ...adminErrors },
      },
    },
    async (request) => toDetailResponse(await releases.upgrade(request.params.namespace, request.params.name, request.body)),
  )
  app.post(
    '/releases/:namespace/:name/rollback',
    {
      config: { access: operate('tenant', releaseOwner) },
      schema: {
        tags: ['releases'],
        summary: "Roll back: a new revision with an earlier revision's chart and values",
        params: ReleaseParams,
        body: Type.Object({ revision: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
        response: { 200: ReleaseDetailResponse, ...adminErrors },
      },
    },
    async (request) => toDetailResponse(await releases.rollback(request.params.namespace, request.params.name, request.body.revision)),
  )
  for (const action of ['pause', 'resume', 'retry'] as const) {
    app.post(
      `/releases/:namespace/:name/${action}`,
      {
        config: { access: operate('tenant', releaseOwner) },
        schema: {
          tags: ['releases'],
          summary: { pause: 'Pause the rollout (clusters applying finish)', resume: 'Resume a paused or halted rollout', retry: 'Try failed clusters again now' }[action],
          params: ReleaseParams,
          response: { 200: ReleaseDetailResponse, ...adminErrors },
        },
      },
      async (request) => toDetailResponse(await releases[action](request.params.namespace, request.params.name)),
    )
  }
  app.delete(
    '/releases/:namespace/:name',
    {
      config: { access: operate('tenant', releaseOwner) },
      schema: {
        tags: ['releases'],
        summary: 'Uninstall from every cluster, or with ?labels= from the clusters the selector matches',
        params: ReleaseParams,
        querystring: SelectorQuery,
        response: { 202: Type.Object({ clusters: Type.Array(Type.String()), whole: Type.Boolean() }), ...adminErrors },
      },
    },
    async (request, reply) => reply.status(202).send(await releases.remove(request.params.namespace, request.params.name, request.query.labels)),
  )
}

export { ReleaseDocument, UpgradeDocument }
