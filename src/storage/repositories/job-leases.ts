import { sql, type RawBuilder } from 'kysely'
import type { JobLeaseClaim, JobLeaseStore } from '../../core/replicas/job-lease-store.ts'
import type { Db } from '../database.ts'
import { isPostgres } from '../db.ts'

export interface JobLeaseRecord {
  name: string
  holder: string
  acquiredAt: number
  renewedAt: number
  expiresAt: number
  requestedAt: number | null
  /** The database's clock when this was read: whether the lease is live is `expiresAt > now`. */
  now: number
}

/**
 * Now in epoch milliseconds by the database's clock, so that replicas whose clocks differ agree on
 * when a lease expired. Stable within one statement on both databases.
 */
function databaseNow(db: Db): RawBuilder<number> {
  return isPostgres(db)
    ? sql<number>`floor(extract(epoch from statement_timestamp()) * 1000)::bigint`
    : sql<number>`cast((julianday('now') - 2440587.5) * 86400000 as integer)`
}

export interface JobLeaseRepositoryOptions {
  /**
   * Only one engine uses this database (SQLite): a lease another holder left is this engine's own
   * from before a restart (a crash), taken at once instead of after its TTL.
   */
  exclusive?: boolean
}

/** The job leases over kysely: every change is one statement, atomic on SQLite and PostgreSQL alike. */
export function jobLeaseRepository(db: Db, options: JobLeaseRepositoryOptions = {}): JobLeaseStore & { list(): Promise<JobLeaseRecord[]> } {
  const now = databaseNow(db)
  const claimable = options.exclusive ? sql<boolean>`1 = 1` : sql<boolean>`job_leases.holder = excluded.holder or job_leases.expires_at <= excluded.renewed_at`
  return {
    /**
     * Takes the lease when it is free or expired, renews it when `holder` has it: one upsert whose
     * update only applies under that condition (PostgreSQL evaluates it on the locked, latest row),
     * so two replicas can never both come out holding it.
     */
    claim: async (name, holder, ttlMs): Promise<JobLeaseClaim> => {
      const ttl = Math.max(1, Math.round(ttlMs))
      const taken = await db
        .insertInto('job_leases')
        .values({ name, holder, acquired_at: now, renewed_at: now, expires_at: sql<number>`${now} + ${ttl}` })
        .onConflict((conflict) =>
          conflict
            .column('name')
            .doUpdateSet({
              holder: (eb) => eb.ref('excluded.holder'),
              // A renewal keeps the time it was first taken; a take-over (or a retake after expiry) starts anew.
              acquired_at: sql<number>`case when job_leases.holder = excluded.holder and job_leases.expires_at > excluded.renewed_at then job_leases.acquired_at else excluded.acquired_at end`,
              renewed_at: (eb) => eb.ref('excluded.renewed_at'),
              expires_at: (eb) => eb.ref('excluded.expires_at'),
            })
            .where(claimable),
        )
        .returning(['holder', 'expires_at', 'requested_at'])
        .executeTakeFirst()
      if (taken) return { held: true, holder, expiresAt: Number(taken.expires_at), requestedAt: taken.requested_at === null ? null : Number(taken.requested_at) }
      const current = await db.selectFrom('job_leases').select(['holder', 'expires_at']).where('name', '=', name).executeTakeFirst()
      return { held: false, holder: current?.holder, expiresAt: current ? Number(current.expires_at) : undefined, requestedAt: null }
    },
    release: async (name, holder) => {
      const result = await db.deleteFrom('job_leases').where('name', '=', name).where('holder', '=', holder).executeTakeFirst()
      return Number(result.numDeletedRows) > 0
    },
    request: async (name) => {
      await db.updateTable('job_leases').set({ requested_at: now }).where('name', '=', name).execute()
    },
    list: async () => {
      const rows = await db.selectFrom('job_leases').selectAll().select(now.as('now')).orderBy('name').execute()
      return rows.map((row) => ({
        name: row.name,
        holder: row.holder,
        acquiredAt: Number(row.acquired_at),
        renewedAt: Number(row.renewed_at),
        expiresAt: Number(row.expires_at),
        requestedAt: row.requested_at === null ? null : Number(row.requested_at),
        now: Number(row.now),
      }))
    },
  }
}
