import { sql, type Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('lock_groups')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('slots', 'integer', (column) => column.notNull().check(sql`slots >= 0`))
    .addColumn('ttl_seconds', 'integer', (column) => column.check(sql`ttl_seconds is null or ttl_seconds > 0`))
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()

  // (group, holder) is the key: a holder has at most one slot per group, whatever callers do concurrently.
  await db.schema
    .createTable('lock_holders')
    .addColumn('lock_group', 'text', (column) => column.notNull().references('lock_groups.name').onDelete('cascade'))
    .addColumn('holder', 'text', (column) => column.notNull())
    .addColumn('acquired_at', 'text', (column) => column.notNull())
    .addColumn('expires_at', 'text')
    .addPrimaryKeyConstraint('lock_holders_pk', ['lock_group', 'holder'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['lock_holders', 'lock_groups']) await db.schema.dropTable(table).execute()
}
