import { sql, type Kysely } from 'kysely'
import { autoIncrementKey } from './lib/portable-columns.ts'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('machines')
    .addColumn('uuid', 'text', (column) => column.primaryKey()) // SMBIOS product UUID, lowercase
    .addColumn('boot_mac', 'text', (column) => column.notNull())
    .addColumn('boot_random_id', 'text')
    .addColumn('state', 'text', (column) =>
      column.notNull().check(sql`state in ('booting', 'discovered', 'scheduled', 'installing', 'installed', 'install_failed')`),
    )
    .addColumn('state_changed_at', 'text', (column) => column.notNull())
    .addColumn('facts', 'text', (column) => column.notNull()) // JSON: cpu, memory, firmware, dmi, lldp
    .addColumn('first_seen_at', 'text', (column) => column.notNull())
    .addColumn('last_seen_at', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute()
  // The admin filters: ?state= and the boot path's lookup by boot MAC.
  await db.schema.createIndex('machines_state').on('machines').column('state').execute()
  await db.schema.createIndex('machines_boot_mac').on('machines').column('boot_mac').execute()

  await db.schema
    .createTable('machine_interfaces')
    .addColumn('uuid', 'text', (column) => column.notNull().references('machines.uuid').onDelete('cascade'))
    .addColumn('position', 'integer', (column) => column.notNull()) // order as reported
    .addColumn('name', 'text', (column) => column.notNull())
    .addColumn('mac', 'text', (column) => column.notNull())
    .addColumn('ipv4', 'text')
    .addColumn('cidr', 'text')
    .addColumn('gateway', 'text')
    .addColumn('fqdn', 'text', (column) => column.notNull()) // JSON array of names
    .addColumn('is_boot', 'integer', (column) => column.notNull())
    .addPrimaryKeyConstraint('machine_interfaces_pk', ['uuid', 'position'])
    .execute()
  // ?mac= matches any interface of a machine.
  await db.schema.createIndex('machine_interfaces_mac').on('machine_interfaces').column('mac').execute()

  await db.schema
    .createTable('machine_disks')
    .addColumn('uuid', 'text', (column) => column.notNull().references('machines.uuid').onDelete('cascade'))
    .addColumn('path', 'text', (column) => column.notNull())
    .addColumn('size_bytes', 'bigint', (column) => column.notNull())
    .addColumn('model', 'text')
    .addColumn('serial', 'text')
    .addPrimaryKeyConstraint('machine_disks_pk', ['uuid', 'path'])
    .execute()

  await db.schema
    .createTable('machine_labels')
    .addColumn('uuid', 'text', (column) => column.notNull().references('machines.uuid').onDelete('cascade'))
    .addColumn('key', 'text', (column) => column.notNull())
    .addColumn('value', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('machine_labels_pk', ['uuid', 'key'])
    .execute()
  // ?label=key=value
  await db.schema.createIndex('machine_labels_key_value').on('machine_labels').columns(['key', 'value']).execute()

  await db.schema
    .createTable('machine_events')
    .addColumn('id', 'integer', autoIncrementKey(db))
    .addColumn('uuid', 'text', (column) => column.notNull().references('machines.uuid').onDelete('cascade'))
    .addColumn('from_state', 'text') // null for the event that created the machine
    .addColumn('to_state', 'text', (column) => column.notNull())
    .addColumn('reason', 'text', (column) => column.notNull())
    .addColumn('at', 'text', (column) => column.notNull())
    .execute()
  await db.schema.createIndex('machine_events_uuid').on('machine_events').columns(['uuid', 'id']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['machine_events', 'machine_labels', 'machine_disks', 'machine_interfaces', 'machines']) {
    await db.schema.dropTable(table).execute()
  }
}
