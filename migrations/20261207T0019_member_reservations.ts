import type { Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // The cluster whose scheduler made a reservation (null: an operator's). The scheduler reserves each
  // member's boot address in full DHCP mode and removes only its own reservations when the machine
  // leaves the cluster; an operator's reservation is never touched.
  await db.schema.alterTable('dhcp_reservations').addColumn('cluster', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('dhcp_reservations').dropColumn('cluster').execute()
}
