import type { Kysely } from 'kysely'

// The authoritative DNS: where each cluster's ingress answers (its addresses), how each release's
// names are answered (policy, TTL, weights, failover order, extra hostnames), and the table that
// places clients (subnet -> site and coordinates) for nearest-cluster answers.
// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('cluster_registry').addColumn('ingress_addresses', 'text', (column) => column.notNull().defaultTo('[]')).execute() // JSON string[]
  await db.schema.alterTable('releases').addColumn('dns', 'text', (column) => column.notNull().defaultTo('{}')).execute() // JSON ReleaseDns
  await db.schema
    .createTable('dns_locations')
    .addColumn('subnet', 'text', (column) => column.primaryKey())
    .addColumn('site', 'text', (column) => column.notNull())
    .addColumn('latitude', 'double precision', (column) => column.notNull())
    .addColumn('longitude', 'double precision', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('dns_locations').execute()
  await db.schema.alterTable('releases').dropColumn('dns').execute()
  await db.schema.alterTable('cluster_registry').dropColumn('ingress_addresses').execute()
}
