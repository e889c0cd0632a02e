import { sql, type Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // One row per address: the primary key makes it impossible to lease one address to two MACs.
  await db.schema
    .createTable('dhcp_leases')
    .addColumn('ip', 'text', (column) => column.primaryKey())
    .addColumn('mac', 'text', (column) => column.notNull())
    .addColumn('client_id', 'text') // option 61 as hex: it is binary
    .addColumn('hostname', 'text')
    .addColumn('state', 'text', (column) => column.notNull().check(sql`state in ('offered', 'bound', 'released', 'declined')`))
    .addColumn('expires_at', 'text', (column) => column.notNull()) // ISO 8601 UTC, compares as text
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()
  // At most one active (offered or bound) lease per MAC; released/declined rows are history.
  await sql`create unique index dhcp_leases_one_active_per_mac on dhcp_leases (mac) where state in ('offered', 'bound')`.execute(db)
  await db.schema.createIndex('dhcp_leases_mac').on('dhcp_leases').column('mac').execute()

  await db.schema
    .createTable('dhcp_reservations')
    .addColumn('mac', 'text', (column) => column.primaryKey())
    .addColumn('ip', 'text', (column) => column.notNull().unique())
    .addColumn('hostname', 'text')
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('dhcp_reservations').execute()
  await db.schema.dropTable('dhcp_leases').execute()
}
