import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Kysely } from 'kysely'
import Type from 'typebox'
import { invalid } from '../../../../core/errors.ts'
import type { Database } from '../../../../storage/database.ts'
import { queryAudit, type AuditRecord } from '../../../../storage/repositories/audit-log.ts'
import { adminErrors } from '../../schemas/common.ts'
import { tenancyOf } from '../../auth.ts'
import { administer } from '../../../../core/access/route-policy.ts'
import type { AuditTrail } from '../../../../core/access/audit-trail.ts'

const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const EntryResponse = Type.Object({
  id: Type.Integer(),
  at: Type.String(),
  principal: nullable(Type.String({ description: 'The token name; null when no valid token was presented (401).' })),
  role: nullable(Type.String()),
  tenant: nullable(Type.String()),
  source_ip: Type.String(),
  method: Type.String(),
  route: Type.String({ description: 'The route pattern, e.g. /api/v1/clusters/:name.' }),
  target: nullable(Type.String({ description: "The object acted on: the route's parameters, or the name of the object created." })),
  summary: Type.String(),
  status: Type.Integer(),
  error_code: nullable(Type.String()),
  request_id: Type.String(),
})
const Query = Type.Object(
  {
    since: Type.Optional(Type.String({ maxLength: 40, description: 'ISO 8601 time: entries at or after it.' })),
    principal: Type.Optional(Type.String({ maxLength: 63, description: 'Only the calls of this token name.' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$', description: 'At most this many entries (1-1000, default 100), newest first.' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: "The previous page's next_cursor." })),
  },
  { additionalProperties: false },
)

const toResponse = (entry: AuditRecord) => ({
  id: entry.id,
  at: entry.at,
  principal: entry.principal,
  role: entry.role,
  tenant: entry.tenant,
  source_ip: entry.sourceIp,
  method: entry.method,
  route: entry.route,
  target: entry.target,
  summary: entry.summary,
  status: entry.status,
  error_code: entry.errorCode,
  request_id: entry.requestId,
})

/** The audit log: every mutating call on the admin surface. A tenant's admin reads its tenant's entries only. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ store: Kysely<Database>; trail: AuditTrail }> = async (app, { store, trail }) => {
  app.get(
    '/audit',
    {
      config: { access: administer('tenant') },
      schema: {
        tags: ['audit'],
        summary: 'Mutating calls, newest first: who (token, role, tenant, address), what (method, route, target), when, and the result (status, error code)',
        querystring: Query,
        response: { 200: Type.Object({ entries: Type.Array(EntryResponse), next_cursor: nullable(Type.String({ description: 'Pass as ?cursor= for the next (older) page.' })) }), ...adminErrors },
      },
    },
    async (request) => {
      const { since, principal, limit, cursor } = request.query
      if (since !== undefined && Number.isNaN(Date.parse(since))) throw invalid('INVALID_AUDIT_QUERY', `since: "${since}" is not an ISO 8601 time (e.g. 2026-11-21T08:00:00Z)`)
      const pageSize = limit === undefined ? 100 : Number(limit)
      if (pageSize < 1 || pageSize > 1000) throw invalid('INVALID_AUDIT_QUERY', `limit: ${limit} is outside 1-1000`)
      const tenant = tenancyOf(request).tenant
      // A reader sees the refusals counted so far, not only those of the last summary interval.
      await trail.flush()
      const page = await queryAudit(store, {
        ...(since !== undefined ? { since: new Date(since).toISOString() } : {}),
        ...(principal !== undefined ? { principal } : {}),
        ...(tenant !== null ? { tenant } : {}),
        ...(cursor !== undefined ? { before: Number(cursor) } : {}),
        limit: pageSize,
      })
      return { entries: page.entries.map(toResponse), next_cursor: page.nextCursor === null ? null : String(page.nextCursor) }
    },
  )
}
