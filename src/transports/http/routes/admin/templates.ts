import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ContentService } from '../../../../core/content/content-service.ts'
import { invalid } from '../../../../core/errors.ts'
import { adminErrors } from '../../schemas/common.ts'
import { TemplateBody, TemplateListQuery, TemplateParams, TemplateResponse, TemplateSummary } from '../../schemas/content.ts'
import { administer, read } from '../../../../core/access/route-policy.ts'

const tags = ['templates']

/**
 * Templates are text, so PUT takes the file itself (`Content-Type: text/plain`, as `curl --data-binary
 * @file` sends it) or, for clients that only speak JSON, `{"body": "..."}`.
 */
export const templateRoutes: FastifyPluginAsyncTypebox<{ content: ContentService }> = async (app, { content }) => {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'string' }, (_request, body, done) => done(null, body))

  app.get(
    '/templates',
    {
      config: { access: read() },
      schema: { tags, summary: 'List templates', querystring: TemplateListQuery, response: { 200: Type.Array(TemplateSummary), ...adminErrors } },
    },
    async (request) => content.listTemplates(request.query.kind),
  )

  app.get(
    '/templates/:kind/*',
    { config: { access: read() }, schema: { tags, summary: 'Get a template', params: TemplateParams, response: { 200: TemplateResponse, ...adminErrors } } },
    async (request) => content.getTemplate(request.params.kind, request.params['*']),
  )

  app.put(
    '/templates/:kind/*',
    {
      config: { access: administer() },
      schema: {
        tags,
        summary: 'Create or replace a template',
        description: 'Body: the template text (text/plain or application/octet-stream), or JSON {"body": "..."}. Syntax is checked; raw .ign files are fully validated.',
        params: TemplateParams,
        body: TemplateBody,
        response: { 200: TemplateResponse, 201: TemplateResponse, ...adminErrors },
      },
    },
    async (request, reply) => {
      const body = typeof request.body === 'string' ? request.body : request.body.body
      if (body.length === 0) throw invalid('EMPTY_TEMPLATE', 'a template may not be empty')
      const { kind, '*': id } = request.params
      const { created } = await content.putTemplate({ kind, id, body })
      return reply.status(created ? 201 : 200).send(await content.getTemplate(kind, id))
    },
  )

  app.delete(
    '/templates/:kind/*',
    { config: { access: administer() }, schema: { tags, summary: 'Delete a template', params: TemplateParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await content.deleteTemplate(request.params.kind, request.params['*'])
      return reply.status(204).send(null)
    },
  )
}
