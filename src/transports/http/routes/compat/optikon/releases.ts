import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { invalid } from '../../../../../core/errors.ts'
import type { ChartService } from '../../../../../core/releases/chart-service.ts'
import type { ReleaseService } from '../../../../../core/releases/release-service.ts'
import { parseLabelSelector } from '../../../../../core/selection/label-selector.ts'
import { adminErrors } from '../../../schemas/common.ts'
import { OptikonReleaseParams, OptikonSelectorQuery, ReleaseResponse, RemovalResponse, toReleaseResponse } from '../../../schemas/releases.ts'
import { readChartUpload } from '../../../chart-upload.ts'
import { jsonDepth, MAX_JSON_DEPTH } from '../../../request-limits.ts'
import { tenancyOf } from '../../../auth.ts'
import { operate, optikonReleaseOwner, read } from '../../../../../core/access/route-policy.ts'

/** The form fields optikon's clients send beside `chartTar`. */
function formRelease(fields: Record<string, string>) {
  if (!fields.name) throw invalid('INVALID_RELEASE', 'the form needs a "name" field (the release name)')
  let values: unknown = {}
  if (fields.values) {
    // A form field is parsed here, not by the JSON body parser: the same depth limit applies.
    if (jsonDepth(fields.values, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw invalid('TOO_DEEP', `the "values" field nests deeper than ${MAX_JSON_DEPTH} levels; no chart's values do`)
    try {
      values = JSON.parse(fields.values)
    } catch {
      throw invalid('INVALID_RELEASE', 'the "values" field is not JSON')
    }
  }
  return { name: fields.name, namespace: fields.namespace || 'default', values }
}

/**
 * optikon's release routes, for its users and tools: `POST /releases?labels=` and `PUT /releases?labels=`
 * with a multipart form (`chartTar`, `name`, `namespace`), `GET /releases?labels=`, `DELETE
 * /releases/{name}?labels=`. Behind the admin token (app.ts).
 */
export const optikonReleaseRoutes: FastifyPluginAsyncTypebox<{ charts: ChartService; releases: ReleaseService }> = async (app, { charts, releases }) => {
  const tags = ['optikon']
  app.get('/releases', { config: { access: read('tenant') }, schema: { tags, summary: 'Releases on clusters matching ?labels=', querystring: OptikonSelectorQuery, response: { 200: Type.Array(ReleaseResponse), ...adminErrors } } }, async (request) =>
    tenancyOf(request).releases(await releases.list(request.query.labels)).map(toReleaseResponse),
  )
  app.post(
    '/releases',
    { config: { access: operate('tenant') }, schema: { tags, summary: 'Install the chart in `chartTar` on every cluster matching ?labels=', querystring: OptikonSelectorQuery, response: { 201: ReleaseResponse, ...adminErrors } } },
    async (request, reply) => {
      const upload = await readChartUpload(request)
      if (upload.kind !== 'archive') throw invalid('INVALID_CHART_UPLOAD', 'send the chart as the multipart file field "chartTar"')
      const form = formRelease(upload.fields)
      // Checked before the chart is stored, so that a bad selector stores nothing.
      parseLabelSelector(request.query.labels ?? '')
      const tenant = tenancyOf(request).ownerForCreate(upload.fields.tenant)
      const chart = await charts.upload(upload.archive)
      const release = await releases.install({ ...form, chart: { name: chart.name, version: chart.version }, selector: request.query.labels ?? '' }, tenant)
      return reply.status(201).send(toReleaseResponse(release))
    },
  )
  app.put(
    '/releases',
    { config: { access: operate('tenant') }, schema: { tags, summary: 'Upgrade a release to the chart in `chartTar` (and ?labels= as its selector)', querystring: OptikonSelectorQuery, response: { 200: ReleaseResponse, ...adminErrors } } },
    async (request) => {
      const upload = await readChartUpload(request)
      if (upload.kind !== 'archive') throw invalid('INVALID_CHART_UPLOAD', 'send the chart as the multipart file field "chartTar"')
      const form = formRelease(upload.fields)
      parseLabelSelector(request.query.labels ?? '')
      // The form names the release: another tenant's answers 404 before the chart is stored.
      await tenancyOf(request).require({ kind: 'release', namespace: form.namespace, name: form.name })
      const chart = await charts.upload(upload.archive)
      return toReleaseResponse(
        await releases.upgrade(form.namespace, form.name, {
          chart: { name: chart.name, version: chart.version },
          ...(upload.fields.values ? { values: form.values } : {}),
          ...(request.query.labels !== undefined ? { selector: request.query.labels } : {}),
        }),
      )
    },
  )
  app.delete(
    '/releases/:name',
    {
      config: { access: operate('tenant', optikonReleaseOwner) },
      schema: {
        tags,
        summary: 'Delete a release from the clusters matching ?labels= (all of them without)',
        params: OptikonReleaseParams,
        querystring: OptikonSelectorQuery,
        response: { 202: RemovalResponse, ...adminErrors },
      },
    },
    async (request, reply) => reply.status(202).send(await releases.remove(request.query.namespace ?? 'default', request.params.name, request.query.labels)),
  )
}
