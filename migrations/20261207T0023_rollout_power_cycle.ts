import type { Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // When a rolling update power-cycled a machine that did not come back (core/lifecycle/rollout-executor.ts):
  // once per machine and run, and a resumed run must know it happened.
  await db.schema.alterTable('rollout_machines').addColumn('power_cycled_at', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('rollout_machines').dropColumn('power_cycled_at').execute()
}
