import Type from 'typebox'
import type { AuditRecord } from '../../../storage/repositories/audit-log.ts'
import { Nullable } from '../../../lib/nullable.ts'

const AuditEntryResponse = Type.Object({
  id: Type.Integer(),
  at: Type.String(),
  principal: Nullable(Type.String({ description: 'The token name; null when no valid token was presented (401).' })),
  role: Nullable(Type.String()),
  tenant: Nullable(Type.String()),
  source_ip: Type.String(),
  method: Type.String(),
  route: Type.String({ description: 'The route pattern, e.g. /api/v1/clusters/:name.' }),
  target: Nullable(Type.String({ description: "The object acted on: the route's parameters, or the name of the object created." })),
  summary: Type.String(),
  status: Type.Integer(),
  error_code: Nullable(Type.String()),
  request_id: Type.String(),
})
export const AuditQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ maxLength: 40, description: 'ISO 8601 time: entries at or after it.' })),
    principal: Type.Optional(Type.String({ maxLength: 63, description: 'Only the calls of this token name.' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$', description: 'At most this many entries (1-1000, default 100), newest first.' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: "The previous page's next_cursor." })),
  },
  { additionalProperties: false },
)

export const toAuditEntryResponse = (entry: AuditRecord) => ({
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

export const AuditPageResponse = Type.Object({ entries: Type.Array(AuditEntryResponse), next_cursor: Nullable(Type.String({ description: 'Pass as ?cursor= for the next (older) page.' })) })
