import type { Selectable } from 'kysely'
import type { Role } from '../../core/clusters/cluster.ts'
import type { Phase, RolloutSpec } from '../../core/lifecycle/rollout-plan.ts'
import type { RolloutMachine, RolloutRepository, RolloutRun } from '../../core/lifecycle/rollout-service.ts'
import type { Db, RolloutMachinesTable, RolloutRunsTable } from '../database.ts'
import { inTransaction } from '../transactions.ts'

const toRun = (row: Selectable<RolloutRunsTable>): RolloutRun => ({
  id: row.id,
  clusters: JSON.parse(row.clusters) as string[],
  spec: JSON.parse(row.spec) as RolloutSpec,
  state: row.state,
  failures: row.failures,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  finishedAt: row.finished_at,
})

const toMachine = (row: Selectable<RolloutMachinesTable>): RolloutMachine => ({
  runId: row.run_id,
  uuid: row.uuid,
  cluster: row.cluster,
  role: row.role as Role,
  hostname: row.hostname,
  phase: row.phase as Phase,
  error: row.error,
  restartIssuedAt: row.restart_issued_at,
  powerCycledAt: row.power_cycled_at,
  startedAt: row.started_at,
  finishedAt: row.finished_at,
  phaseChangedAt: row.phase_changed_at,
})

const machineColumns = (machine: RolloutMachine) => ({
  role: machine.role,
  hostname: machine.hostname,
  phase: machine.phase,
  error: machine.error,
  restart_issued_at: machine.restartIssuedAt,
  power_cycled_at: machine.powerCycledAt ?? null,
  started_at: machine.startedAt,
  finished_at: machine.finishedAt,
  phase_changed_at: machine.phaseChangedAt,
})

/** The core's rollout port over kysely. */
export function rolloutRepository(db: Db): RolloutRepository {
  return {
    insertRun: async (run, machines) => {
      await db
        .insertInto('rollout_runs')
        .values({ id: run.id, clusters: JSON.stringify(run.clusters), spec: JSON.stringify(run.spec), state: run.state, failures: run.failures, created_at: run.createdAt, updated_at: run.updatedAt, finished_at: run.finishedAt })
        .execute()
      if (machines.length) await db.insertInto('rollout_machines').values(machines.map((machine) => ({ run_id: run.id, uuid: machine.uuid, cluster: machine.cluster, ...machineColumns(machine) }))).execute()
    },
    findRun: async (id) => {
      const row = await db.selectFrom('rollout_runs').selectAll().where('id', '=', id).executeTakeFirst()
      return row ? toRun(row) : undefined
    },
    listRuns: async () => (await db.selectFrom('rollout_runs').selectAll().orderBy('created_at').orderBy('id').execute()).map(toRun),
    saveRun: async (run) => {
      await db.updateTable('rollout_runs').set({ state: run.state, failures: run.failures, updated_at: run.updatedAt, finished_at: run.finishedAt }).where('id', '=', run.id).execute()
    },
    listMachines: async (runId) => (await db.selectFrom('rollout_machines').selectAll().where('run_id', '=', runId).execute()).map(toMachine),
    saveMachine: async (machine) => {
      await db.updateTable('rollout_machines').set(machineColumns(machine)).where('run_id', '=', machine.runId).where('uuid', '=', machine.uuid).execute()
    },
    startMachine: (machine) =>
      inTransaction(db, async (trx) => {
        const run = await trx.selectFrom('rollout_runs').select(['state', 'failures', 'spec']).where('id', '=', machine.runId).executeTakeFirst()
        if (!run || run.state !== 'running' || run.failures >= (JSON.parse(run.spec) as RolloutSpec).max_failures) return false
        // The run's row was read in this transaction: a pause, cancel or failure that commits beside it
        // is serialized before (then seen above) or after this start (SQLite: one writer; PostgreSQL:
        // SERIALIZABLE aborts and inTransaction retries whichever would break that order).
        const result = await trx
          .updateTable('rollout_machines')
          .set(machineColumns(machine))
          .where('run_id', '=', machine.runId)
          .where('uuid', '=', machine.uuid)
          .where('phase', '=', 'waiting')
          .executeTakeFirst()
        return result.numUpdatedRows > 0n
      }),
    appendEvent: async (runId, event) => {
      await db.insertInto('rollout_events').values({ run_id: runId, uuid: event.uuid, at: event.at, message: event.message }).execute()
    },
    listEvents: async (runId, limit) =>
      (await db.selectFrom('rollout_events').select(['at', 'uuid', 'message', 'id']).where('run_id', '=', runId).orderBy('id', 'desc').limit(limit).execute())
        .reverse()
        .map((row) => ({ at: row.at, uuid: row.uuid, message: row.message })),
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(rolloutRepository(trx))),
  }
}
