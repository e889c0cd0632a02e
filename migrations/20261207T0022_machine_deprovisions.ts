import type { Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // A machine being taken out of service (core/power/machine-flows.ts): its disks are wiped on its next
  // discovery boot, then the engine powers it off through its BMC. While a row exists the scheduler
  // leaves the machine alone; deleting the row returns it to the pool. The machine's own row is kept
  // (its history, its BMC), so the reference cascades only when the machine itself is forgotten.
  await db.schema
    .createTable('machine_deprovisions')
    .addColumn('machine_uuid', 'text', (column) => column.primaryKey().references('machines.uuid').onDelete('cascade'))
    .addColumn('state', 'text', (column) => column.notNull())
    .addColumn('requested_by', 'text', (column) => column.notNull())
    .addColumn('requested_at', 'text', (column) => column.notNull())
    .addColumn('wiped_at', 'text')
    .addColumn('powered_off_at', 'text')
    .addColumn('message', 'text')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('machine_deprovisions').execute()
}
