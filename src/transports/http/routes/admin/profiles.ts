import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ContentService } from '../../../../core/content/content-service.ts'
import { ProfileDocument } from '../../../../core/selection/documents.ts'
import { adminErrors } from '../../schemas/common.ts'
import { IdParams, ProfileResponse } from '../../schemas/content.ts'
import { administer, read } from '../../../../core/access/route-policy.ts'

const tags = ['profiles']

export const profileRoutes: FastifyPluginAsyncTypebox<{ content: ContentService }> = async (app, { content }) => {
  app.get('/profiles', { config: { access: read() }, schema: { tags, summary: 'List profiles', response: { 200: Type.Array(ProfileResponse), ...adminErrors } } }, async () =>
    content.listProfiles(),
  )

  app.get(
    '/profiles/:id',
    { config: { access: read() }, schema: { tags, summary: 'Get a profile', params: IdParams, response: { 200: ProfileResponse, ...adminErrors } } },
    async (request) => content.getProfile(request.params.id),
  )

  app.post(
    '/profiles',
    { config: { access: administer() }, schema: { tags, summary: 'Create a profile (matchbox JSON)', body: ProfileDocument, response: { 201: ProfileResponse, ...adminErrors } } },
    async (request, reply) => reply.status(201).send({ ...(await content.putProfile(request.body, 'create')), source: 'api' as const }),
  )

  app.put(
    '/profiles/:id',
    {
      config: { access: administer() },
      schema: { tags, summary: 'Create or replace a profile', params: IdParams, body: ProfileDocument, response: { 200: ProfileResponse, ...adminErrors } },
    },
    async (request) => ({ ...(await content.putProfile(request.body, 'replace', request.params.id)), source: 'api' as const }),
  )

  app.delete(
    '/profiles/:id',
    { config: { access: administer() }, schema: { tags, summary: 'Delete a profile no group uses', params: IdParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await content.deleteProfile(request.params.id)
      return reply.status(204).send(null)
    },
  )
}
