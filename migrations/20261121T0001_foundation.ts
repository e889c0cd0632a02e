import { sql, type Kysely } from 'kysely'
import { autoIncrementKey } from './lib/portable-columns.ts'

// Migrations are typed Kysely<any> on purpose: they must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('profiles')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('name', 'text', (column) => column.notNull())
    .addColumn('ignition_id', 'text')
    .addColumn('generic_id', 'text')
    .addColumn('boot', 'text') // JSON {kernel, initrd[], args[]} or NULL
    .addColumn('source', 'text', (column) => column.notNull().check(sql`source in ('file', 'api')`))
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()

  await db.schema
    .createTable('groups')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('name', 'text', (column) => column.notNull())
    .addColumn('profile', 'text', (column) => column.notNull().references('profiles.id').onDelete('restrict'))
    .addColumn('selector', 'text', (column) => column.notNull()) // JSON object of label -> value
    .addColumn('metadata', 'text', (column) => column.notNull()) // JSON object
    .addColumn('source', 'text', (column) => column.notNull().check(sql`source in ('file', 'api')`))
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()
  await db.schema.createIndex('groups_profile').on('groups').column('profile').execute()

  await db.schema
    .createTable('templates')
    .addColumn('kind', 'text', (column) => column.notNull().check(sql`kind in ('ignition', 'generic', 'ipxe')`))
    .addColumn('id', 'text', (column) => column.notNull())
    .addColumn('body', 'text', (column) => column.notNull())
    .addColumn('source', 'text', (column) => column.notNull().check(sql`source in ('file', 'api')`))
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('templates_pk', ['kind', 'id'])
    .execute()

  await db.schema
    .createTable('api_tokens')
    .addColumn('id', 'integer', autoIncrementKey(db))
    .addColumn('name', 'text', (column) => column.notNull().unique())
    .addColumn('token_sha256', 'text', (column) => column.notNull().unique())
    .addColumn('role', 'text', (column) => column.notNull().check(sql`role in ('admin', 'operator', 'viewer')`))
    .addColumn('created_at', 'text', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['api_tokens', 'templates', 'groups', 'profiles']) await db.schema.dropTable(table).execute()
}
