import { PostgresAdapter, type Kysely } from 'kysely'

// Tenants and the audit log. A token may belong to a tenant (null: the whole fleet's); clusters
// (their registry entry, provisioned or added by hand) and releases carry the tenant that owns them
// (null: the fleet's). Machines have no column: they belong to a tenant through their cluster.
// The audit log keeps every mutating call on the admin surface: who, what, when, and the result.
// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('api_tokens').addColumn('tenant', 'text').execute()
  await db.schema.alterTable('api_tokens').addColumn('last_used_at', 'text').execute()
  await db.schema.alterTable('cluster_registry').addColumn('tenant', 'text').execute()
  await db.schema.alterTable('releases').addColumn('tenant', 'text').execute()
  await db.schema.createIndex('cluster_registry_tenant').on('cluster_registry').column('tenant').execute()
  await db.schema.createIndex('releases_tenant').on('releases').column('tenant').execute()

  // SQLite's INTEGER PRIMARY KEY AUTOINCREMENT and PostgreSQL's bigserial both give increasing ids (the cursor).
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter
  await db.schema
    .createTable('audit_log')
    .addColumn('id', postgres ? 'bigserial' : 'integer', (column) => (postgres ? column.primaryKey() : column.primaryKey().autoIncrement()))
    .addColumn('at', 'text', (column) => column.notNull())
    // Null when the caller presented no valid token (the call was answered 401).
    .addColumn('principal', 'text')
    .addColumn('role', 'text')
    .addColumn('tenant', 'text')
    .addColumn('source_ip', 'text', (column) => column.notNull())
    .addColumn('method', 'text', (column) => column.notNull())
    .addColumn('route', 'text', (column) => column.notNull())
    .addColumn('target', 'text')
    .addColumn('summary', 'text', (column) => column.notNull())
    .addColumn('status', 'integer', (column) => column.notNull())
    .addColumn('error_code', 'text')
    .addColumn('request_id', 'text', (column) => column.notNull())
    .execute()
  await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute()
  await db.schema.createIndex('audit_log_principal').on('audit_log').columns(['principal', 'id']).execute()
  await db.schema.createIndex('audit_log_tenant').on('audit_log').columns(['tenant', 'id']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_log').execute()
  await db.schema.dropIndex('releases_tenant').execute()
  await db.schema.dropIndex('cluster_registry_tenant').execute()
  await db.schema.alterTable('releases').dropColumn('tenant').execute()
  await db.schema.alterTable('cluster_registry').dropColumn('tenant').execute()
  await db.schema.alterTable('api_tokens').dropColumn('last_used_at').execute()
  await db.schema.alterTable('api_tokens').dropColumn('tenant').execute()
}
