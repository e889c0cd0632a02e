import { sql, type Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('machine_drift')
    .addColumn('uuid', 'text', (column) => column.primaryKey().references('machines.uuid').onDelete('cascade'))
    .addColumn('state', 'text', (column) => column.notNull().check(sql`state in ('up_to_date', 'outdated', 'unknown')`))
    .addColumn('reported_sha256', 'text', (column) => column.notNull())
    .addColumn('expected_sha256', 'text')
    .addColumn('reason', 'text')
    .addColumn('engine_url', 'text', (column) => column.notNull())
    .addColumn('reported_at', 'text', (column) => column.notNull())
    .addColumn('state_changed_at', 'text', (column) => column.notNull())
    .addColumn('checked_at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('machine_drift').execute()
}
