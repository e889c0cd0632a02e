import type { Selectable } from 'kysely'
import type { AuditEntry } from '../../core/access/audit-entry.ts'
import type { AuditStore } from '../../core/access/audit-trail.ts'
import type { AuditLogTable, Db } from '../database.ts'

export type { AuditEntry }

export interface AuditRecord extends AuditEntry {
  id: number
}

export interface AuditQuery {
  /** ISO 8601: entries at or after. */
  since?: string
  principal?: string
  /** Only this tenant's entries (a tenant admin's view). */
  tenant?: string
  /** Entries older than this id (the previous page's next_cursor). */
  before?: number
  limit: number
}

const toRecord = (row: Selectable<AuditLogTable>): AuditRecord => ({
  id: Number(row.id),
  at: row.at,
  principal: row.principal,
  role: row.role,
  tenant: row.tenant,
  sourceIp: row.source_ip,
  method: row.method,
  route: row.route,
  target: row.target,
  summary: row.summary,
  status: row.status,
  errorCode: row.error_code,
  requestId: row.request_id,
})

export async function appendAudit(db: Db, entry: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
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
    .execute()
}

/** Newest first; one more row than `limit` is read to know whether another page follows. */
export async function queryAudit(db: Db, query: AuditQuery): Promise<{ entries: AuditRecord[]; nextCursor: number | null }> {
  let select = db.selectFrom('audit_log').selectAll()
  if (query.since !== undefined) select = select.where('at', '>=', query.since)
  if (query.principal !== undefined) select = select.where('principal', '=', query.principal)
  if (query.tenant !== undefined) select = select.where('tenant', '=', query.tenant)
  if (query.before !== undefined) select = select.where('id', '<', query.before)
  const rows = (await select.orderBy('id', 'desc').limit(query.limit + 1).execute()).map(toRecord)
  const entries = rows.slice(0, query.limit)
  return { entries, nextCursor: rows.length > query.limit ? entries[entries.length - 1]!.id : null }
}

/** The audit trail's store (core/access/audit-trail.ts) over kysely. */
export function auditStore(db: Db): AuditStore {
  return {
    append: (entry) => appendAudit(db, entry),
    prune: async ({ before, keepRows }) => {
      let removed = 0
      if (before !== null) removed += Number((await db.deleteFrom('audit_log').where('at', '<', before).executeTakeFirst()).numDeletedRows)
      if (keepRows > 0) {
        // The id of the newest entry past the limit: it and everything older go.
        const cut = await db.selectFrom('audit_log').select('id').orderBy('id', 'desc').offset(keepRows).limit(1).executeTakeFirst()
        if (cut) removed += Number((await db.deleteFrom('audit_log').where('id', '<=', cut.id).executeTakeFirst()).numDeletedRows)
      }
      return removed
    },
  }
}
