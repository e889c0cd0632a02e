import type { Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // How a control-plane member's etcd joins (core/clusters/cluster.ts, EtcdMembership): null for the
  // members placed before it was recorded, which formed their cluster together (`initial`), and nodes.
  await db.schema.alterTable('cluster_members').addColumn('etcd_membership', 'text').execute()
  // The initial cluster an `initial` member formed etcd with: its config keeps it when members are
  // replaced later (etcd reads it only to bootstrap), so that a replacement does not make it outdated.
  await db.schema.alterTable('cluster_members').addColumn('etcd_initial_cluster', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('cluster_members').dropColumn('etcd_initial_cluster').execute()
  await db.schema.alterTable('cluster_members').dropColumn('etcd_membership').execute()
}
