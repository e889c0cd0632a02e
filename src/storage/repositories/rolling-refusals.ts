import type { RefusalReason, RollingRefusalStore } from '../../core/lifecycle/rolling-refusals.ts'
import type { Db } from '../database.ts'

/** Rolling agents' last refusals, over kysely. */
export function rollingRefusalRepository(db: Db): RollingRefusalStore {
  return {
    save: async (refusal) => {
      const values = { reason: refusal.reason, message: refusal.message, at: refusal.at }
      await db
        .insertInto('machine_rolling_refusals')
        .values({ machine_uuid: refusal.uuid, ...values })
        .onConflict((conflict) => conflict.column('machine_uuid').doUpdateSet(values))
        .execute()
    },
    remove: async (uuid) => {
      const result = await db.deleteFrom('machine_rolling_refusals').where('machine_uuid', '=', uuid).executeTakeFirst()
      return Number(result.numDeletedRows) > 0
    },
    list: async () =>
      (await db.selectFrom('machine_rolling_refusals').selectAll().orderBy('at').orderBy('machine_uuid').execute()).map((row) => ({
        uuid: row.machine_uuid,
        reason: row.reason as RefusalReason,
        message: row.message,
        at: row.at,
      })),
  }
}
