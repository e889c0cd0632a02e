import type { Kysely } from 'kysely'
import type { LockRepository } from '../../core/lifecycle/lock-service.ts'
import type { LockGroup } from '../../core/lifecycle/semaphore.ts'
import type { Database } from '../database.ts'

type Db = Kysely<Database>

/** The core's lock port over kysely. */
export function lockRepository(db: Db, clock: () => Date = () => new Date()): LockRepository {
  const load = async (names?: string[]): Promise<LockGroup[]> => {
    let groups = db.selectFrom('lock_groups').selectAll().orderBy('name')
    let holders = db.selectFrom('lock_holders').selectAll().orderBy('acquired_at').orderBy('holder')
    if (names) {
      groups = groups.where('name', 'in', names)
      holders = holders.where('lock_group', 'in', names)
    }
    const [groupRows, holderRows] = await Promise.all([groups.execute(), holders.execute()])
    return groupRows.map((row) => ({
      name: row.name,
      slots: row.slots,
      ttlSeconds: row.ttl_seconds,
      holders: holderRows.filter((holder) => holder.lock_group === row.name).map((holder) => ({ id: holder.holder, acquiredAt: holder.acquired_at, expiresAt: holder.expires_at })),
    }))
  }
  return {
    findGroup: async (name) => (await load([name]))[0],
    listGroups: () => load(),
    saveGroup: async (group) => {
      const updated = clock().toISOString()
      await db
        .insertInto('lock_groups')
        .values({ name: group.name, slots: group.slots, ttl_seconds: group.ttlSeconds, updated_at: updated })
        .onConflict((conflict) => conflict.column('name').doUpdateSet({ slots: group.slots, ttl_seconds: group.ttlSeconds, updated_at: updated }))
        .execute()
      await db.deleteFrom('lock_holders').where('lock_group', '=', group.name).execute()
      if (group.holders.length) {
        await db
          .insertInto('lock_holders')
          .values(group.holders.map((holder) => ({ lock_group: group.name, holder: holder.id, acquired_at: holder.acquiredAt, expires_at: holder.expiresAt })))
          .execute()
      }
    },
    deleteGroup: async (name) => {
      await db.deleteFrom('lock_groups').where('name', '=', name).execute()
    },
    // A transaction inside a transaction reuses it: SQLite has one writer anyway.
    transaction: (work) => (db.isTransaction ? work(lockRepository(db, clock)) : db.transaction().execute((trx) => work(lockRepository(trx, clock)))),
  }
}
