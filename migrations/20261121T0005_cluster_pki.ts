import type { Kysely } from 'kysely'
import { binaryType } from './lib/portable-columns.ts'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // One row per cluster: the public certificates in clear (the admin API shows them), every private
  // key and token sealed (AES-256-GCM, storage/secret-box.ts) in one value bound to the cluster name.
  await db.schema
    .createTable('cluster_pki')
    .addColumn('cluster', 'text', (column) => column.primaryKey().references('clusters.name').onDelete('cascade'))
    .addColumn('certificates', 'text', (column) => column.notNull()) // JSON, public parts only
    .addColumn('sealed', binaryType(db), (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('cluster_pki').execute()
}
