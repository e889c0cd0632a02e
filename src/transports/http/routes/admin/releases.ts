import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ChartService } from '../../../../core/releases/chart-service.ts'
import { ReleaseDocument, UpgradeDocument } from '../../../../core/releases/release.ts'
import type { ReleaseService } from '../../../../core/releases/release-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import {
  ChartParams,
  ChartResponse,
  ReleaseDetailResponse,
  ReleaseParams,
  ReleaseResponse,
  ReleaseSelectorQuery,
  RemovalResponse,
  RollbackBody,
  toChartResponse,
  toReleaseDetailResponse,
  toReleaseResponse,
} from '../../schemas/releases.ts'
import { readChartUpload } from '../../chart-upload.ts'
import { tenancyOf } from '../../auth.ts'
import { operate, read, releaseOwner } from '../../../../core/access/route-policy.ts'

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
    { config: { access: operate() }, schema: { tags: ['releases'], summary: 'Delete a chart version', params: ChartParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await charts.remove(request.params.name, request.params.version)
      return reply.status(204).send(null)
    },
  )

  app.get(
    '/releases',
    { config: { access: read('tenant') }, schema: { tags: ['releases'], summary: 'Every release, or those on clusters matching ?labels=', querystring: ReleaseSelectorQuery, response: { 200: Type.Array(ReleaseResponse), ...adminErrors } } },
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
      return reply.status(201).send(toReleaseDetailResponse(await releases.install(body, tenant)))
    },
  )
  app.get(
    '/releases/:namespace/:name',
    { config: { access: read('tenant', releaseOwner) }, schema: { tags: ['releases'], summary: 'A release with its per-cluster status, revisions and events', params: ReleaseParams, response: { 200: ReleaseDetailResponse, ...adminErrors } } },
    async (request) => toReleaseDetailResponse(await releases.get(request.params.namespace, request.params.name)),
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
    async (request) => toReleaseDetailResponse(await releases.upgrade(request.params.namespace, request.params.name, request.body)),
  )
  app.post(
    '/releases/:namespace/:name/rollback',
    {
      config: { access: operate('tenant', releaseOwner) },
      schema: {
        tags: ['releases'],
        summary: "Roll back: a new revision with an earlier revision's chart and values",
        params: ReleaseParams,
        body: RollbackBody,
        response: { 200: ReleaseDetailResponse, ...adminErrors },
      },
    },
    async (request) => toReleaseDetailResponse(await releases.rollback(request.params.namespace, request.params.name, request.body.revision)),
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
      async (request) => toReleaseDetailResponse(await releases[action](request.params.namespace, request.params.name)),
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
        querystring: ReleaseSelectorQuery,
        response: { 202: RemovalResponse, ...adminErrors },
      },
    },
    async (request, reply) => reply.status(202).send(await releases.remove(request.params.namespace, request.params.name, request.query.labels)),
  )
}

export { ReleaseDocument, UpgradeDocument }
