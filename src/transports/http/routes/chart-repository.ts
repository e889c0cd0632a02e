import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { stringify } from 'yaml'
import { notFound } from '../../../core/errors.ts'
import type { ChartService } from '../../../core/releases/chart-service.ts'
import { read } from '../../../core/access/route-policy.ts'
import { chartArchiveName, ChartFileParams, toHelmIndexEntry } from '../schemas/releases.ts'

/**
 * The engine's charts as a Helm chart repository (`helm repo add slipway <engine>/charts --username
 * any --password <token>`): `index.yaml` in Helm's format, archives beside it with relative URLs.
 * Behind the admin token like the rest of the admin surface (app.ts); Helm sends it as Basic auth.
 */
export const chartRepositoryRoutes: FastifyPluginAsyncTypebox<{ charts: ChartService }> = async (app, { charts }) => {
  app.get('/charts/index.yaml', { config: { access: read('tenant') }, schema: { tags: ['releases'], summary: 'Helm repository index of the stored charts' } }, async (_request, reply) => {
    const entries: Record<string, unknown[]> = {}
    for (const chart of await charts.list()) (entries[chart.name] ??= []).push(toHelmIndexEntry(chart))
    return reply.type('application/x-yaml').send(stringify({ apiVersion: 'v1', entries, generated: new Date().toISOString() }, { lineWidth: 0 }))
  })

  app.get(
    '/charts/:file',
    { config: { access: read('tenant') }, schema: { tags: ['releases'], summary: 'A chart archive of the repository', params: ChartFileParams } },
    async (request, reply) => {
      const chart = (await charts.list()).find((candidate) => chartArchiveName(candidate) === request.params.file)
      if (!chart) throw notFound('CHART_NOT_FOUND', `no chart archive ${request.params.file} in the repository`)
      return reply.type('application/gzip').send(await charts.archive(chart.name, chart.version))
    },
  )
}
