import { sql, type Kysely } from 'kysely'

// The reverse proxy's routes (mexosagent's programmable proxy, which kept them in memory only and
// lost them on restart). A path route stores host '' so that (host, path_prefix) is unique for
// both kinds (SQLite's unique indexes treat NULLs as distinct). Origin health is not stored: it is
// live state, re-learnt by the first check after a start.
// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('proxy_routes')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('kind', 'text', (column) => column.notNull().check(sql`kind in ('path', 'host')`))
    .addColumn('host', 'text', (column) => column.notNull())
    .addColumn('path_prefix', 'text', (column) => column.notNull())
    .addColumn('origin', 'text', (column) => column.notNull())
    .addColumn('strip_prefix', 'integer', (column) => column.notNull())
    .addColumn('preserve_host', 'integer', (column) => column.notNull())
    .addColumn('tls_verify', 'integer', (column) => column.notNull().defaultTo(1))
    .addColumn('health_check_path', 'text')
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addCheckConstraint('proxy_routes_kind_host', sql`(kind = 'path') = (host = '')`)
    .execute()
  await db.schema.createIndex('proxy_routes_match').on('proxy_routes').columns(['host', 'path_prefix']).unique().execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('proxy_routes').execute()
}
