import type { Kysely } from 'kysely'
import { binaryType } from './lib/portable-columns.ts'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // A machine's BMC: how to reach it, the password sealed (AES-256-GCM, storage/secret-box.ts) and
  // bound to the machine, the protocol's options as JSON, and what the last call saw (the power state
  // is kept when a call fails: it is the last thing the BMC said). Keyed by the machine's SMBIOS UUID
  // with no reference to machines: a rack is enrolled by its BMCs before its machines first boot, and
  // a machine that is forgotten keeps its BMC.
  await db.schema
    .createTable('bmcs')
    .addColumn('machine_uuid', 'text', (column) => column.primaryKey())
    .addColumn('protocol', 'text', (column) => column.notNull())
    .addColumn('host', 'text', (column) => column.notNull())
    .addColumn('port', 'integer', (column) => column.notNull())
    .addColumn('username', 'text', (column) => column.notNull())
    .addColumn('password_sealed', binaryType(db), (column) => column.notNull())
    .addColumn('options', 'text', (column) => column.notNull())
    .addColumn('power', 'text', (column) => column.notNull().defaultTo('unknown'))
    .addColumn('power_checked_at', 'text')
    .addColumn('last_error_code', 'text')
    .addColumn('last_error_message', 'text')
    .addColumn('last_error_at', 'text')
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('bmcs').execute()
}
