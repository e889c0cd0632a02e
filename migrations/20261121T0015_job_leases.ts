import type { Kysely } from 'kysely'

// Which engine replica runs each singleton job (scheduler, rollout runner, health sweep, release
// reconciler). Times are epoch milliseconds of the database's own clock, so that replicas whose
// clocks differ still agree on when a lease expired. `requested_at` is when a replica that does not
// hold the lease last asked for a pass (its trigger is run by the holder at its next renewal).
// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('job_leases')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('holder', 'text', (column) => column.notNull())
    .addColumn('acquired_at', 'bigint', (column) => column.notNull())
    .addColumn('renewed_at', 'bigint', (column) => column.notNull())
    .addColumn('expires_at', 'bigint', (column) => column.notNull())
    .addColumn('requested_at', 'bigint')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('job_leases').execute()
}
