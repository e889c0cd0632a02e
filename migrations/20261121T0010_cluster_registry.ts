import { sql, type Kysely } from 'kysely'
import { autoIncrementKey, binaryType } from './lib/portable-columns.ts'

// The cluster registry: every cluster the engine knows, provisioned here or added by hand, with its
// labels, location, API server and (sealed) credentials; its last health and the history of its
// health changes. Labels and location of provisioned clusters move here, so that there is one place
// for them. Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('cluster_registry')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('display_name', 'text', (column) => column.notNull().defaultTo(''))
    .addColumn('labels', 'text', (column) => column.notNull().defaultTo('{}')) // JSON object
    .addColumn('latitude', 'double precision')
    .addColumn('longitude', 'double precision')
    .addColumn('region', 'text')
    .addColumn('site', 'text')
    .addColumn('source', 'text', (column) => column.notNull().check(sql`source in ('manual', 'provisioned')`))
    // null until a provisioned cluster's API server first answers (then Joined).
    .addColumn('server', 'text')
    .addColumn('ca_bundle', 'text')
    .addColumn('credential_kind', 'text', (column) => column.notNull().check(sql`credential_kind in ('cluster_pki', 'token', 'client_certificate', 'kubeconfig')`))
    // AES-256-GCM (storage/secret-box.ts); null for cluster_pki, whose admin key is sealed with the PKI.
    .addColumn('credential_sealed', binaryType(db))
    .addColumn('properties', 'text', (column) => column.notNull().defaultTo('{}')) // JSON object name -> value
    .addColumn('joined_at', 'text')
    .addColumn('join_message', 'text')
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()

  await db.schema
    .createTable('cluster_health')
    .addColumn('cluster', 'text', (column) => column.primaryKey().references('cluster_registry.name').onDelete('cascade'))
    .addColumn('status', 'text', (column) => column.notNull().check(sql`status in ('Healthy', 'Degraded', 'Unreachable')`))
    .addColumn('reason', 'text', (column) => column.notNull())
    .addColumn('message', 'text', (column) => column.notNull())
    .addColumn('api_ready', 'integer', (column) => column.notNull())
    .addColumn('nodes_ready', 'integer')
    .addColumn('nodes_total', 'integer')
    .addColumn('pods_running', 'integer')
    .addColumn('pods_total', 'integer')
    .addColumn('kubernetes_version', 'text')
    .addColumn('checked_at', 'text', (column) => column.notNull())
    .addColumn('duration_ms', 'integer', (column) => column.notNull())
    .addColumn('status_since', 'text', (column) => column.notNull())
    .execute()

  await db.schema
    .createTable('cluster_health_events')
    .addColumn('id', 'integer', autoIncrementKey(db))
    .addColumn('cluster', 'text', (column) => column.notNull().references('cluster_registry.name').onDelete('cascade'))
    .addColumn('at', 'text', (column) => column.notNull())
    .addColumn('from_status', 'text')
    .addColumn('to_status', 'text', (column) => column.notNull())
    .addColumn('reason', 'text', (column) => column.notNull())
    .addColumn('message', 'text', (column) => column.notNull())
    .execute()
  await db.schema.createIndex('cluster_health_events_cluster').on('cluster_health_events').columns(['cluster', 'id']).execute()

  // A flavor's labels go to every cluster of that flavor; its API server port is where registration
  // and rolling updates reach the control plane.
  await db.schema.alterTable('flavors').addColumn('labels', 'text', (column) => column.notNull().defaultTo('{}')).execute()
  await db.schema.alterTable('flavors').addColumn('api_server_port', 'integer', (column) => column.notNull().defaultTo(6443)).execute()

  for (const cluster of await db.selectFrom('clusters').selectAll().execute()) {
    await db
      .insertInto('cluster_registry')
      .values({
        name: cluster.name,
        labels: cluster.labels,
        latitude: cluster.latitude,
        longitude: cluster.longitude,
        source: 'provisioned',
        credential_kind: 'cluster_pki',
        created_at: cluster.created_at,
        updated_at: cluster.created_at,
      })
      .execute()
  }
  for (const column of ['labels', 'latitude', 'longitude']) await db.schema.alterTable('clusters').dropColumn(column).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('clusters').addColumn('labels', 'text', (column) => column.notNull().defaultTo('{}')).execute()
  await db.schema.alterTable('clusters').addColumn('latitude', 'double precision').execute()
  await db.schema.alterTable('clusters').addColumn('longitude', 'double precision').execute()
  for (const entry of await db.selectFrom('cluster_registry').selectAll().where('source', '=', 'provisioned').execute()) {
    await db.updateTable('clusters').set({ labels: entry.labels, latitude: entry.latitude, longitude: entry.longitude }).where('name', '=', entry.name).execute()
  }
  await db.schema.alterTable('flavors').dropColumn('api_server_port').execute()
  await db.schema.alterTable('flavors').dropColumn('labels').execute()
  for (const table of ['cluster_health_events', 'cluster_health', 'cluster_registry']) await db.schema.dropTable(table).execute()
}
