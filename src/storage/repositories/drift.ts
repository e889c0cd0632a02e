import type { Selectable } from 'kysely'
import type { DriftRecord, DriftRepository } from '../../core/lifecycle/drift.ts'
import type { Db, MachineDriftTable } from '../database.ts'
import { machineRepository } from './machines.ts'

const toRecord = (row: Selectable<MachineDriftTable>): DriftRecord => ({
  uuid: row.uuid,
  state: row.state,
  reportedSha256: row.reported_sha256,
  expectedSha256: row.expected_sha256,
  reason: row.reason,
  engineUrl: row.engine_url,
  reportedAt: row.reported_at,
  stateChangedAt: row.state_changed_at,
  checkedAt: row.checked_at,
})

/** The core's drift port over kysely. */
export function driftRepository(db: Db): DriftRepository {
  const machines = machineRepository(db)
  return {
    findMachine: (uuid) => machines.findMachine(uuid),
    findDrift: async (uuid) => {
      const row = await db.selectFrom('machine_drift').selectAll().where('uuid', '=', uuid).executeTakeFirst()
      return row ? toRecord(row) : undefined
    },
    listDrift: async () => (await db.selectFrom('machine_drift').selectAll().orderBy('uuid').execute()).map(toRecord),
    saveDrift: async (record) => {
      const columns = {
        state: record.state,
        reported_sha256: record.reportedSha256,
        expected_sha256: record.expectedSha256,
        reason: record.reason,
        engine_url: record.engineUrl,
        reported_at: record.reportedAt,
        state_changed_at: record.stateChangedAt,
        checked_at: record.checkedAt,
      }
      await db
        .insertInto('machine_drift')
        .values({ uuid: record.uuid, ...columns })
        .onConflict((conflict) => conflict.column('uuid').doUpdateSet(columns))
        .execute()
    },
  }
}
