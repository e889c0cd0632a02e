import { sql, type Kysely } from 'kysely'
import { autoIncrementKey, binaryType } from './lib/portable-columns.ts'

// Charts (the engine's Helm repository) and releases fanned out to registered clusters: each
// release's revisions (chart version and values, as Helm keeps them), and per cluster the revision
// it has, its phase and the objects put there (what an upgrade prunes and an uninstall deletes).
// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('charts')
    .addColumn('name', 'text', (column) => column.notNull())
    .addColumn('version', 'text', (column) => column.notNull())
    .addColumn('app_version', 'text')
    .addColumn('description', 'text')
    .addColumn('api_version', 'text', (column) => column.notNull())
    .addColumn('digest', 'text', (column) => column.notNull())
    .addColumn('size_bytes', 'bigint', (column) => column.notNull())
    .addColumn('archive', binaryType(db), (column) => column.notNull())
    .addColumn('source', 'text', (column) => column.notNull().check(sql`source in ('upload', 'repository')`))
    .addColumn('source_url', 'text')
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('charts_pk', ['name', 'version'])
    .execute()

  await db.schema
    .createTable('releases')
    .addColumn('namespace', 'text', (column) => column.notNull())
    .addColumn('name', 'text', (column) => column.notNull())
    .addColumn('selector', 'text', (column) => column.notNull())
    .addColumn('excluded_clusters', 'text', (column) => column.notNull().defaultTo('[]')) // JSON string[]
    .addColumn('revision', 'integer', (column) => column.notNull())
    .addColumn('state', 'text', (column) => column.notNull().check(sql`state in ('active', 'paused', 'halted', 'deleting')`))
    .addColumn('rollout', 'text', (column) => column.notNull()) // JSON RolloutSettings
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('releases_pk', ['namespace', 'name'])
    .execute()

  await db.schema
    .createTable('release_revisions')
    .addColumn('namespace', 'text', (column) => column.notNull())
    .addColumn('name', 'text', (column) => column.notNull())
    .addColumn('revision', 'integer', (column) => column.notNull())
    .addColumn('chart_name', 'text', (column) => column.notNull())
    .addColumn('chart_version', 'text', (column) => column.notNull())
    .addColumn('values', 'text', (column) => column.notNull()) // JSON
    .addColumn('cluster_values', 'integer', (column) => column.notNull())
    .addColumn('description', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('release_revisions_pk', ['namespace', 'name', 'revision'])
    .addForeignKeyConstraint('release_revisions_release', ['namespace', 'name'], 'releases', ['namespace', 'name'], (constraint) => constraint.onDelete('cascade'))
    .execute()

  await db.schema
    .createTable('cluster_releases')
    .addColumn('namespace', 'text', (column) => column.notNull())
    .addColumn('name', 'text', (column) => column.notNull())
    // A cluster removed from the registry is no longer managed: its rows go with it.
    .addColumn('cluster', 'text', (column) => column.notNull().references('cluster_registry.name').onDelete('cascade'))
    .addColumn('revision', 'integer', (column) => column.notNull())
    .addColumn('phase', 'text', (column) => column.notNull().check(sql`phase in ('pending', 'applying', 'ready', 'failed', 'removing')`))
    .addColumn('error', 'text')
    .addColumn('attempts', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('retry_at', 'text')
    .addColumn('objects', 'text', (column) => column.notNull().defaultTo('[]')) // JSON ObjectRef[]
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addColumn('ready_at', 'text')
    .addPrimaryKeyConstraint('cluster_releases_pk', ['namespace', 'name', 'cluster'])
    .addForeignKeyConstraint('cluster_releases_release', ['namespace', 'name'], 'releases', ['namespace', 'name'], (constraint) => constraint.onDelete('cascade'))
    .execute()

  await db.schema
    .createTable('release_events')
    .addColumn('id', 'integer', autoIncrementKey(db))
    .addColumn('namespace', 'text', (column) => column.notNull())
    .addColumn('name', 'text', (column) => column.notNull())
    .addColumn('cluster', 'text')
    .addColumn('at', 'text', (column) => column.notNull())
    .addColumn('message', 'text', (column) => column.notNull())
    .addForeignKeyConstraint('release_events_release', ['namespace', 'name'], 'releases', ['namespace', 'name'], (constraint) => constraint.onDelete('cascade'))
    .execute()
  await db.schema.createIndex('release_events_release').on('release_events').columns(['namespace', 'name', 'id']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['release_events', 'cluster_releases', 'release_revisions', 'releases', 'charts']) await db.schema.dropTable(table).execute()
}
