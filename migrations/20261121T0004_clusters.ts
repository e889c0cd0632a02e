import { sql, type Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('flavors')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('control_plane_count', 'integer', (column) => column.notNull().check(sql`control_plane_count in (1, 3, 5)`))
    .addColumn('nodes_min', 'integer', (column) => column.notNull().check(sql`nodes_min >= 0`))
    .addColumn('nodes_max', 'integer', (column) => column.notNull())
    .addColumn('selector', 'text', (column) => column.notNull()) // JSON object of label -> value
    .addColumn('min_cpu_cores', 'integer', (column) => column.notNull().check(sql`min_cpu_cores >= 0`))
    .addColumn('min_memory_bytes', 'bigint', (column) => column.notNull().check(sql`min_memory_bytes >= 0`))
    .addColumn('min_disk_bytes', 'bigint', (column) => column.notNull().check(sql`min_disk_bytes >= 0`))
    .addColumn('kubernetes_version', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addCheckConstraint('flavors_nodes_range', sql`nodes_max >= nodes_min`)
    .execute()

  await db.schema
    .createTable('clusters')
    .addColumn('name', 'text', (column) => column.primaryKey())
    // restrict: a flavor in use cannot vanish under its clusters.
    .addColumn('flavor', 'text', (column) => column.notNull().references('flavors.name').onDelete('restrict'))
    .addColumn('labels', 'text', (column) => column.notNull()) // JSON object
    .addColumn('latitude', 'double precision')
    .addColumn('longitude', 'double precision')
    .addColumn('state', 'text', (column) => column.notNull().check(sql`state in ('pending', 'scheduled')`))
    .addColumn('created_at', 'text', (column) => column.notNull())
    .execute()

  // machine_uuid is the primary key: a machine can never be a member of two clusters, whatever
  // the callers do concurrently (the scheduler's transaction fails instead).
  await db.schema
    .createTable('cluster_members')
    .addColumn('machine_uuid', 'text', (column) => column.primaryKey().references('machines.uuid').onDelete('restrict'))
    .addColumn('cluster', 'text', (column) => column.notNull().references('clusters.name').onDelete('restrict'))
    .addColumn('role', 'text', (column) => column.notNull().check(sql`role in ('control-plane', 'node')`))
    .addColumn('ordinal', 'integer', (column) => column.notNull())
    .addColumn('hostname', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addUniqueConstraint('cluster_members_role_ordinal', ['cluster', 'role', 'ordinal'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['cluster_members', 'clusters', 'flavors']) await db.schema.dropTable(table).execute()
}
