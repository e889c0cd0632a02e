import { sql, type Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // Where each cluster member is in its kubeadm bootstrap, as it last reported. Goes with the
  // membership: a machine sent back to discovery starts over.
  await db.schema
    .createTable('member_bootstrap')
    .addColumn('machine_uuid', 'text', (column) => column.primaryKey().references('cluster_members.machine_uuid').onDelete('cascade'))
    .addColumn('phase', 'text', (column) => column.notNull().check(sql`phase in ('waiting_for_endpoint', 'running', 'done', 'failed')`))
    .addColumn('command', 'text', (column) => column.notNull())
    .addColumn('message', 'text', (column) => column.notNull())
    .addColumn('log', 'text')
    .addColumn('attempts', 'integer', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('member_bootstrap').execute()
}
