import type { Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // The last time a machine's rolling agent declined to restart into its new config (it could not
  // drain its node, or fetch the config): what an operator must act on, kept until the machine takes
  // a reboot slot again or reports itself up to date.
  await db.schema
    .createTable('machine_rolling_refusals')
    .addColumn('machine_uuid', 'text', (column) => column.primaryKey().references('machines.uuid').onDelete('cascade'))
    .addColumn('reason', 'text', (column) => column.notNull())
    .addColumn('message', 'text', (column) => column.notNull())
    .addColumn('at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('machine_rolling_refusals').execute()
}
