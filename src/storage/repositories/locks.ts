import type { LockRepository } from '../../core/lifecycle/lock-service.ts'
import type { LockGroup } from '../../core/lifecycle/semaphore.ts'
import type { Db } from '../database.ts'
import { isPostgres } from '../db.ts'

/**
 * The core's lock port over kysely. A lock operation is one transaction that starts by holding its
 * group: on SQLite the store has one connection and one writer, so transactions are serial already;
 * on PostgreSQL `select ... for update` on the group's row makes every other transaction on that
 * group wait until this one commits, and then read what it wrote (READ COMMITTED takes a new snapshot
 * per statement). Row locks and not SERIALIZABLE: a thousand lockers on one group would mostly fail
 * their serialization and retry; behind a row lock they queue and each succeeds or sees the group full.
 */
export function lockRepository(db: Db, clock: () => Date = () => new Date()): LockRepository {
  const holdRows = db.isTransaction && isPostgres(db)
  const load = async (names?: string[]): Promise<LockGroup[]> => {
    let groups = db.selectFrom('lock_groups').selectAll().orderBy('name')
    let holders = db.selectFrom('lock_holders').selectAll().orderBy('acquired_at').orderBy('holder')
    if (names) {
      groups = groups.where('name', 'in', names)
      holders = holders.where('lock_group', 'in', names)
    }
    // The holders are read after the group's row lock was granted, so they are the last committed ones.
    const groupRows = await (holdRows && names ? groups.forUpdate() : groups).execute()
    const holderRows = await holders.execute()
    return groupRows.map((row) => ({
      name: row.name,
      slots: row.slots,
      ttlSeconds: row.ttl_seconds,
      holders: holderRows.filter((holder) => holder.lock_group === row.name).map((holder) => ({ id: holder.holder, acquiredAt: holder.acquired_at, expiresAt: holder.expires_at })),
    }))
  }
  const findGroup = async (name: string) => (await load([name]))[0]
  return {
    findGroup,
    createGroup: async (group) => {
      // Two first uses at once: PostgreSQL makes the second insert wait for the first and then do nothing.
      await db
        .insertInto('lock_groups')
        .values({ name: group.name, slots: group.slots, ttl_seconds: group.ttlSeconds, updated_at: clock().toISOString() })
        .onConflict((conflict) => conflict.column('name').doNothing())
        .execute()
      return (await findGroup(group.name))!
    },
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
    // A transaction inside a transaction joins it. PostgreSQL's default READ COMMITTED is what the
    // row lock needs (under SERIALIZABLE the waiter would fail instead of reading the new row).
    transaction: (work) => (db.isTransaction ? work(lockRepository(db, clock)) : db.transaction().execute((trx) => work(lockRepository(trx, clock)))),
  }
}
