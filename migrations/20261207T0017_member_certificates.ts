import type { Kysely } from 'kysely'
import { binaryType } from './lib/portable-columns.ts'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // One row per cluster member: the leaf certificates and kubeconfig credentials the engine issued it
  // as the cluster's CA (kubeadm's external-CA mode). The certificates in clear, the set with its
  // private keys sealed (AES-256-GCM, storage/secret-box.ts) and bound to the machine; `not_after` is
  // the earliest expiry of the set, which the renewal reads without opening anything.
  await db.schema
    .createTable('member_certificates')
    .addColumn('machine_uuid', 'text', (column) => column.primaryKey().references('cluster_members.machine_uuid').onDelete('cascade'))
    .addColumn('cluster', 'text', (column) => column.notNull().references('clusters.name').onDelete('cascade'))
    .addColumn('certificates', 'text', (column) => column.notNull()) // JSON, public parts only
    .addColumn('sealed', binaryType(db), (column) => column.notNull())
    .addColumn('issued_at', 'text', (column) => column.notNull())
    .addColumn('not_after', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('member_certificates').execute()
}
