import { sql, type Kysely } from 'kysely'
import { autoIncrementKey, binaryType } from './lib/portable-columns.ts'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('rollout_runs')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('cluster', 'text', (column) => column.notNull())
    .addColumn('spec', 'text', (column) => column.notNull()) // JSON RolloutSpec
    .addColumn('state', 'text', (column) => column.notNull().check(sql`state in ('running', 'paused', 'completed', 'failed', 'cancelled')`))
    .addColumn('failures', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addColumn('finished_at', 'text')
    .execute()

  // Each machine's phase is written before the phase's action starts: after a crash the runner
  // resumes every machine from the phase it was in, and every phase's action is safe to repeat.
  await db.schema
    .createTable('rollout_machines')
    .addColumn('run_id', 'text', (column) => column.notNull().references('rollout_runs.id').onDelete('cascade'))
    .addColumn('uuid', 'text', (column) => column.notNull())
    .addColumn('role', 'text', (column) => column.notNull())
    .addColumn('hostname', 'text', (column) => column.notNull())
    .addColumn('phase', 'text', (column) => column.notNull())
    .addColumn('error', 'text')
    .addColumn('restart_issued_at', 'text')
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addColumn('phase_changed_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('rollout_machines_pk', ['run_id', 'uuid'])
    .execute()

  await db.schema
    .createTable('rollout_events')
    .addColumn('id', 'integer', autoIncrementKey(db))
    .addColumn('run_id', 'text', (column) => column.notNull().references('rollout_runs.id').onDelete('cascade'))
    .addColumn('uuid', 'text')
    .addColumn('at', 'text', (column) => column.notNull())
    .addColumn('message', 'text', (column) => column.notNull())
    .execute()
  await db.schema.createIndex('rollout_events_run').on('rollout_events').columns(['run_id', 'id']).execute()

  // Trust on first use: the host key a machine showed the first time, refused if it ever changes.
  await db.schema
    .createTable('machine_host_keys')
    .addColumn('uuid', 'text', (column) => column.primaryKey().references('machines.uuid').onDelete('cascade'))
    .addColumn('host_key', 'text', (column) => column.notNull())
    .addColumn('pinned_at', 'text', (column) => column.notNull())
    .execute()

  // Engine-wide secrets (the engine's SSH key), sealed like the cluster PKI.
  await db.schema
    .createTable('engine_secrets')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('public_part', 'text')
    .addColumn('sealed', binaryType(db), (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['engine_secrets', 'machine_host_keys', 'rollout_events', 'rollout_machines', 'rollout_runs']) await db.schema.dropTable(table).execute()
}
