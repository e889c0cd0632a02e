import type { Kysely } from 'kysely'
import { autoIncrementKey } from './lib/portable-columns.ts'

// Machine identity. A machine's credential has a generation: raising it revokes the credential
// (at once, or after a grace period for a rotation, during which the previous generation still
// counts); the first generation (0) is the credential engines issued before generations existed.
// `reprovision_until`: an operator's window during which the machine is served its secret-bearing
// config again without an install slot. `machine_conflicts`: discovery reports that claimed another
// machine's MAC, uuid or address, kept for an operator instead of applied; repeats of one claim
// update one row.
// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('machines').addColumn('credential_generation', 'integer', (column) => column.notNull().defaultTo(0)).execute()
  await db.schema.alterTable('machines').addColumn('credential_previous_generation', 'integer').execute()
  await db.schema.alterTable('machines').addColumn('credential_previous_valid_until', 'text').execute()
  await db.schema.alterTable('machines').addColumn('reprovision_until', 'text').execute()
  await db.schema
    .createTable('machine_conflicts')
    .addColumn('id', 'integer', autoIncrementKey(db))
    .addColumn('kind', 'text', (column) => column.notNull())
    // The known machine whose identity the report claimed.
    .addColumn('machine_uuid', 'text', (column) => column.notNull())
    .addColumn('claimed_uuid', 'text', (column) => column.notNull())
    .addColumn('claimed_mac', 'text', (column) => column.notNull())
    .addColumn('claimed_ipv4', 'text')
    .addColumn('source_ip', 'text', (column) => column.notNull())
    // The last report as received (parsed and bounded by the discovery schema), to apply on accept.
    .addColumn('report', 'text', (column) => column.notNull())
    .addColumn('reports', 'integer', (column) => column.notNull())
    .addColumn('first_seen_at', 'text', (column) => column.notNull())
    .addColumn('last_seen_at', 'text', (column) => column.notNull())
    .addColumn('state', 'text', (column) => column.notNull())
    .addColumn('resolved_at', 'text')
    .addColumn('resolved_by', 'text')
    .execute()
  await db.schema.createIndex('machine_conflicts_open').on('machine_conflicts').columns(['state', 'kind', 'machine_uuid', 'claimed_uuid', 'claimed_mac']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('machine_conflicts').execute()
  for (const column of ['reprovision_until', 'credential_previous_valid_until', 'credential_previous_generation', 'credential_generation']) {
    await db.schema.alterTable('machines').dropColumn(column).execute()
  }
}
