import type { Selectable } from 'kysely'
import type { Credential, HealthRecord, HealthStatus, RegisteredCluster } from '../../core/registry/registered-cluster.ts'
import type { RegistryEntry, RegistryRepository } from '../../core/registry/registry-service.ts'
import { conflict } from '../../core/errors.ts'
import type { ClusterHealthTable, ClusterRegistryTable, Db } from '../database.ts'
import type { SecretBox } from '../secret-box.ts'
import { inTransaction, uniqueViolation } from '../transactions.ts'

/** A sealed credential is bound to its cluster: copied to another row, it does not open. */
export const credentialContext = (cluster: string) => `cluster_credential:${cluster}`

const entries = (db: Db) =>
  db
    .selectFrom('cluster_registry')
    .leftJoin('clusters', 'clusters.name', 'cluster_registry.name')
    .select([
      'cluster_registry.name',
      'cluster_registry.display_name',
      'cluster_registry.labels',
      'cluster_registry.latitude',
      'cluster_registry.longitude',
      'cluster_registry.region',
      'cluster_registry.site',
      'cluster_registry.source',
      'cluster_registry.server',
      'cluster_registry.ca_bundle',
      'cluster_registry.credential_kind',
      'cluster_registry.properties',
      'cluster_registry.joined_at',
      'cluster_registry.join_message',
      'cluster_registry.created_at',
      'cluster_registry.updated_at',
      'cluster_registry.ingress_addresses',
      'clusters.flavor',
      'clusters.state',
    ])

type EntryRow = Omit<Selectable<ClusterRegistryTable>, 'credential_sealed' | 'tenant'> & { flavor: string | null; state: string | null }

const toEntry = (row: EntryRow): RegistryEntry => ({
  name: row.name,
  displayName: row.display_name,
  labels: JSON.parse(row.labels) as Record<string, string>,
  location: { latitude: row.latitude, longitude: row.longitude, region: row.region, site: row.site },
  source: row.source,
  server: row.server,
  caBundle: row.ca_bundle,
  credentialKind: row.credential_kind,
  properties: JSON.parse(row.properties) as Record<string, string>,
  joinedAt: row.joined_at,
  joinMessage: row.join_message,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  ingressAddresses: JSON.parse(row.ingress_addresses) as string[],
  provisioning: row.flavor && row.state ? { flavor: row.flavor, state: row.state } : null,
})

const columnsOf = (cluster: RegisteredCluster) => ({
  display_name: cluster.displayName,
  labels: JSON.stringify(cluster.labels),
  latitude: cluster.location.latitude,
  longitude: cluster.location.longitude,
  region: cluster.location.region,
  site: cluster.location.site,
  server: cluster.server,
  ca_bundle: cluster.caBundle,
  credential_kind: cluster.credentialKind,
  properties: JSON.stringify(cluster.properties),
  joined_at: cluster.joinedAt,
  join_message: cluster.joinMessage,
  updated_at: cluster.updatedAt,
  ingress_addresses: JSON.stringify(cluster.ingressAddresses),
})

const toHealth = (row: Selectable<ClusterHealthTable>): HealthRecord => ({
  status: row.status,
  reason: row.reason,
  message: row.message,
  apiReady: row.api_ready === 1,
  nodesReady: row.nodes_ready,
  nodesTotal: row.nodes_total,
  podsRunning: row.pods_running,
  podsTotal: row.pods_total,
  kubernetesVersion: row.kubernetes_version,
  checkedAt: row.checked_at,
  durationMs: row.duration_ms,
  statusSince: row.status_since,
})

/** The core's registry port over kysely; credentials are sealed on the way in and opened only by credentialOf. */
export function registryRepository(db: Db, secrets: SecretBox): RegistryRepository {
  const seal = (name: string, credential: Credential) => secrets.seal(JSON.stringify(credential), credentialContext(name))
  return {
    list: async () => (await entries(db).orderBy('cluster_registry.name').execute()).map(toEntry),
    find: async (name) => {
      const row = await entries(db).where('cluster_registry.name', '=', name).executeTakeFirst()
      return row ? toEntry(row) : undefined
    },
    insert: async (cluster, credential) => {
      try {
        await db
          .insertInto('cluster_registry')
          .values({ name: cluster.name, source: cluster.source, created_at: cluster.createdAt, credential_sealed: credential ? seal(cluster.name, credential) : null, ...columnsOf(cluster) })
          .execute()
      } catch (error) {
        if (uniqueViolation(error) === 'primary-key') throw conflict('CLUSTER_EXISTS', `cluster "${cluster.name}" already exists`)
        throw error
      }
    },
    update: async (cluster, credential) => {
      await db
        .updateTable('cluster_registry')
        .set({ ...columnsOf(cluster), ...(credential ? { credential_sealed: seal(cluster.name, credential) } : {}) })
        .where('name', '=', cluster.name)
        .execute()
    },
    delete: async (name) => {
      await db.deleteFrom('cluster_registry').where('name', '=', name).execute()
    },
    credentialOf: async (name) => {
      const row = await db.selectFrom('cluster_registry').select('credential_sealed').where('name', '=', name).executeTakeFirst()
      return row?.credential_sealed ? (JSON.parse(secrets.open(Buffer.from(row.credential_sealed), credentialContext(name))) as Credential) : undefined
    },
    listHealth: async () => new Map((await db.selectFrom('cluster_health').selectAll().execute()).map((row) => [row.cluster, toHealth(row)])),
    findHealth: async (name) => {
      const row = await db.selectFrom('cluster_health').selectAll().where('cluster', '=', name).executeTakeFirst()
      return row ? toHealth(row) : undefined
    },
    saveHealth: async (name, record, transition) => {
      const values = {
        status: record.status,
        reason: record.reason,
        message: record.message,
        api_ready: record.apiReady ? 1 : 0,
        nodes_ready: record.nodesReady,
        nodes_total: record.nodesTotal,
        pods_running: record.podsRunning,
        pods_total: record.podsTotal,
        kubernetes_version: record.kubernetesVersion,
        checked_at: record.checkedAt,
        duration_ms: record.durationMs,
        status_since: record.statusSince,
      }
      await db
        .insertInto('cluster_health')
        .values({ cluster: name, ...values })
        .onConflict((conflicting) => conflicting.column('cluster').doUpdateSet(values))
        .execute()
      if (transition) {
        await db
          .insertInto('cluster_health_events')
          .values({ cluster: name, at: transition.at, from_status: transition.from, to_status: transition.to, reason: transition.reason, message: transition.message })
          .execute()
      }
    },
    listTransitions: async (name, limit) =>
      (await db.selectFrom('cluster_health_events').selectAll().where('cluster', '=', name).orderBy('id', 'desc').limit(limit).execute())
        .reverse()
        .map((row) => ({ at: row.at, from: row.from_status as HealthStatus | null, to: row.to_status as HealthStatus, reason: row.reason, message: row.message })),
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(registryRepository(trx, secrets))),
  }
}
