import type { Kysely } from 'kysely'

// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  // A flavor's cluster network: kubeadm's Service and pod subnets and DNS domain (existing flavors keep
  // kubeadm's defaults, which is what their clusters were rendered with), the control plane's virtual
  // IP held by kube-vip (null: none), and whether members keep their boot address statically (null:
  // only in proxy DHCP mode).
  await db.schema.alterTable('flavors').addColumn('service_subnet', 'text', (column) => column.notNull().defaultTo('10.96.0.0/12')).execute()
  await db.schema.alterTable('flavors').addColumn('pod_subnet', 'text', (column) => column.notNull().defaultTo('10.244.0.0/16')).execute()
  await db.schema.alterTable('flavors').addColumn('dns_domain', 'text', (column) => column.notNull().defaultTo('cluster.local')).execute()
  await db.schema.alterTable('flavors').addColumn('control_plane_vip', 'text').execute()
  await db.schema.alterTable('flavors').addColumn('static_network', 'integer').execute()
  // The OS members install: flatcar (every flavor so far) or fedora-coreos.
  await db.schema.alterTable('flavors').addColumn('os', 'text', (column) => column.notNull().defaultTo('flatcar')).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const column of ['os', 'static_network', 'control_plane_vip', 'dns_domain', 'pod_subnet', 'service_subnet']) {
    await db.schema.alterTable('flavors').dropColumn(column).execute()
  }
}
