import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { invalid } from '../../../../core/errors.ts'
import type { Db } from '../../../../storage/database.ts'
import { queryAudit } from '../../../../storage/repositories/audit-log.ts'
import { adminErrors } from '../../schemas/common.ts'
import { AuditPageResponse, AuditQuery, toAuditEntryResponse } from '../../schemas/audit.ts'
import { tenancyOf } from '../../auth.ts'
import { administer } from '../../../../core/access/route-policy.ts'
import type { AuditTrail } from '../../../../core/access/audit-trail.ts'

/** The audit log: every mutating call on the admin surface. A tenant's admin reads its tenant's entries only. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ store: Db; trail: AuditTrail }> = async (app, { store, trail }) => {
  app.get(
    '/audit',
    {
      config: { access: administer('tenant') },
      schema: {
        tags: ['audit'],
        summary: 'Mutating calls, newest first: who (token, role, tenant, address), what (method, route, target), when, and the result (status, error code)',
        querystring: AuditQuery,
        response: { 200: AuditPageResponse, ...adminErrors },
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
      return { entries: page.entries.map(toAuditEntryResponse), next_cursor: page.nextCursor === null ? null : String(page.nextCursor) }
    },
  )
}
