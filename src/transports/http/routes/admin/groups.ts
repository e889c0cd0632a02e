import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ContentService } from '../../../../core/content/content-service.ts'
import { GroupDocument } from '../../../../core/selection/documents.ts'
import { adminErrors } from '../../schemas/common.ts'
import { GroupResponse, IdParams } from '../../schemas/content.ts'
import { administer, read } from '../../../../core/access/route-policy.ts'

const tags = ['groups']

export const groupRoutes: FastifyPluginAsyncTypebox<{ content: ContentService }> = async (app, { content }) => {
  app.get('/groups', { config: { access: read() }, schema: { tags, summary: 'List groups', response: { 200: Type.Array(GroupResponse), ...adminErrors } } }, async () =>
    content.listGroups(),
  )

  app.get(
    '/groups/:id',
    { config: { access: read() }, schema: { tags, summary: 'Get a group', params: IdParams, response: { 200: GroupResponse, ...adminErrors } } },
    async (request) => content.getGroup(request.params.id),
  )

  app.post(
    '/groups',
    { config: { access: administer() }, schema: { tags, summary: 'Create a group (matchbox JSON)', body: GroupDocument, response: { 201: GroupResponse, ...adminErrors } } },
    async (request, reply) => reply.status(201).send({ ...(await content.putGroup(request.body, 'create')), source: 'api' as const }),
  )

  app.put(
    '/groups/:id',
    {
      config: { access: administer() },
      schema: { tags, summary: 'Create or replace a group', params: IdParams, body: GroupDocument, response: { 200: GroupResponse, ...adminErrors } },
    },
    async (request) => ({ ...(await content.putGroup(request.body, 'replace', request.params.id)), source: 'api' as const }),
  )

  app.delete(
    '/groups/:id',
    { config: { access: administer() }, schema: { tags, summary: 'Delete a group', params: IdParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await content.deleteGroup(request.params.id)
      return reply.status(204).send(null)
    },
  )
}
