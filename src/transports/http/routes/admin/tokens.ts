import { randomBytes } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Kysely } from 'kysely'
import Type from 'typebox'
import { ROLES } from '../../../../core/access/roles.ts'
import { absent, TENANT_PATTERN } from '../../../../core/access/tenancy.ts'
import { conflict } from '../../../../core/errors.ts'
import type { Database } from '../../../../storage/database.ts'
import { deleteToken, findTokenByName, insertToken, listTokens, type TokenInfo } from '../../../../storage/repositories/api-tokens.ts'
import { adminErrors } from '../../schemas/common.ts'
import { tenancyOf } from '../../auth.ts'
import { administer, tokenOwner } from '../../../../core/access/route-policy.ts'

/** Tokens start with this, so that a leaked one is recognised by secret scanners and people. */
export const TOKEN_PREFIX = 'slw_'
/** The token auth.adminToken configures: re-registered at every start, so it is changed there, not here. */
export const CONFIGURED_ADMIN_TOKEN = 'configured-admin'

const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const TokenName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$', description: 'Letters, digits, ".", "_", "-"; at most 63.' })
const TokenResponse = Type.Object({
  name: Type.String(),
  role: Type.Enum([...ROLES]),
  tenant: nullable(Type.String()),
  created_at: Type.String(),
  last_used_at: nullable(Type.String({ description: 'Recorded at most once a minute.' })),
})
const CreateBody = Type.Object(
  {
    name: TokenName,
    role: Type.Enum([...ROLES], { description: 'viewer: reads; operator: also changes machines, clusters, releases, charts, rollouts, locks, DNS, proxy routes; admin: everything.' }),
    tenant: Type.Optional(nullable(Type.String({ pattern: TENANT_PATTERN, description: "The tenant the token acts for: it sees and changes that tenant's clusters, machines and releases only. Absent or null: the whole fleet." }))),
  },
  { additionalProperties: false },
)

const toResponse = (token: TokenInfo) => ({ name: token.name, role: token.role, tenant: token.tenant, created_at: token.createdAt, last_used_at: token.lastUsedAt })

/**
 * API tokens: created with a role and an optional tenant, shown once, stored as SHA-256 only; a
 * revoked token stops working at its next request. A tenant's admin manages its tenant's tokens only.
 */
export const tokenRoutes: FastifyPluginAsyncTypebox<{ store: Kysely<Database> }> = async (app, { store }) => {
  const tags = ['tokens']
  app.get('/tokens', { config: { access: administer('tenant') }, schema: { tags, summary: 'Every token (name, role, tenant, created, last used; never the token itself)', response: { 200: Type.Array(TokenResponse), ...adminErrors } } }, async (request) => {
    const tenant = tenancyOf(request).tenant
    return (await listTokens(store, tenant ?? undefined)).map(toResponse)
  })

  app.post(
    '/tokens',
    {
      config: { access: administer('tenant') },
      schema: {
        tags,
        summary: 'Create a token; the answer is the only time it is shown (409 TOKEN_EXISTS)',
        body: CreateBody,
        response: { 201: Type.Object({ ...TokenResponse.properties, token: Type.String({ description: 'Shown once; store it now.' }) }), ...adminErrors },
      },
    },
    async (request, reply) => {
      const tenant = tenancyOf(request).ownerForCreate(request.body.tenant)
      const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`
      await insertToken(store, request.body.name, token, request.body.role, new Date().toISOString(), tenant)
      const created = (await findTokenByName(store, request.body.name))!
      return reply.status(201).send({ ...toResponse(created), token })
    },
  )

  app.delete(
    '/tokens/:name',
    { config: { access: administer('tenant', tokenOwner) }, schema: { tags, summary: 'Revoke a token: it stops working at once (UI sessions opened with it end too)', params: Type.Object({ name: Type.String({ maxLength: 63 }) }), response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      const { name } = request.params
      if (name === CONFIGURED_ADMIN_TOKEN) {
        throw conflict('TOKEN_CONFIGURED', `token "${name}" comes from auth.adminToken and is registered again at every start; change or empty that setting instead`)
      }
      if (!(await deleteToken(store, name))) throw absent({ kind: 'token', name })
      return reply.status(204).send(null)
    },
  )
}
