import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { TokenService } from '../../../../core/access/token-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { CreateTokenBody, toTokenResponse, TokenResponse } from '../../schemas/tokens.ts'
import { tenancyOf } from '../../auth.ts'
import { administer, tokenOwner } from '../../../../core/access/route-policy.ts'

/**
 * API tokens: created with a role and an optional tenant, shown once, stored as SHA-256 only; a
 * revoked token stops working at its next request. A tenant's admin manages its tenant's tokens only.
 */
export const tokenRoutes: FastifyPluginAsyncTypebox<{ tokens: TokenService }> = async (app, { tokens }) => {
  const tags = ['tokens']
  app.get('/tokens', { config: { access: administer('tenant') }, schema: { tags, summary: 'Every token (name, role, tenant, created, last used; never the token itself)', response: { 200: Type.Array(TokenResponse), ...adminErrors } } }, async (request) => {
    const tenant = tenancyOf(request).tenant
    return (await tokens.list(tenant ?? undefined)).map(toTokenResponse)
  })

  app.post(
    '/tokens',
    {
      config: { access: administer('tenant') },
      schema: {
        tags,
        summary: 'Create a token; the answer is the only time it is shown (409 TOKEN_EXISTS)',
        body: CreateTokenBody,
        response: { 201: Type.Object({ ...TokenResponse.properties, token: Type.String({ description: 'Shown once; store it now.' }) }), ...adminErrors },
      },
    },
    async (request, reply) => {
      const tenant = tenancyOf(request).ownerForCreate(request.body.tenant)
      const created = await tokens.create({ name: request.body.name, role: request.body.role, tenant })
      return reply.status(201).send({ ...toTokenResponse(created.info), token: created.token })
    },
  )

  app.delete(
    '/tokens/:name',
    { config: { access: administer('tenant', tokenOwner) }, schema: { tags, summary: 'Revoke a token: it stops working at once (UI sessions opened with it end too)', params: Type.Object({ name: Type.String({ maxLength: 63 }) }), response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await tokens.revoke(request.params.name)
      return reply.status(204).send(null)
    },
  )
}
