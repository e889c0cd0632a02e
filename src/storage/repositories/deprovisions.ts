import type { Selectable } from 'kysely'
import type { Deprovision, DeprovisionState, DeprovisionStore } from '../../core/power/machine-flows.ts'
import type { Db, MachineDeprovisionsTable } from '../database.ts'

const deprovisionOf = (row: Selectable<MachineDeprovisionsTable>): Deprovision => ({
  machineUuid: row.machine_uuid,
  state: row.state as DeprovisionState,
  requestedBy: row.requested_by,
  requestedAt: row.requested_at,
  wipedAt: row.wiped_at,
  poweredOffAt: row.powered_off_at,
  message: row.message,
})

/** Machines being taken out of service, over kysely. */
export function deprovisionRepository(db: Db): DeprovisionStore {
  return {
    find: async (uuid) => {
      const row = await db.selectFrom('machine_deprovisions').selectAll().where('machine_uuid', '=', uuid).executeTakeFirst()
      return row && deprovisionOf(row)
    },
    list: async () => (await db.selectFrom('machine_deprovisions').selectAll().orderBy('requested_at').orderBy('machine_uuid').execute()).map(deprovisionOf),
    save: async (deprovision) => {
      const values = {
        state: deprovision.state,
        requested_by: deprovision.requestedBy,
        requested_at: deprovision.requestedAt,
        wiped_at: deprovision.wipedAt,
        powered_off_at: deprovision.poweredOffAt,
        message: deprovision.message,
      }
      await db
        .insertInto('machine_deprovisions')
        .values({ machine_uuid: deprovision.machineUuid, ...values })
        .onConflict((conflict) => conflict.column('machine_uuid').doUpdateSet(values))
        .execute()
    },
    remove: async (uuid) => {
      const result = await db.deleteFrom('machine_deprovisions').where('machine_uuid', '=', uuid).executeTakeFirst()
      return Number(result.numDeletedRows) > 0
    },
  }
}
