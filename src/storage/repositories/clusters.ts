import type { Cluster, ClusterMember, EtcdMembership, Flavor } from '../../core/clusters/cluster.ts'
import { publicCertificates, type ClusterCertificates, type ClusterPki } from '../../core/clusters/cluster-pki.ts'
import type { MemberCertificates } from '../../core/clusters/member-certificates.ts'
import type { ClusterRepository } from '../../core/clusters/cluster-service.ts'
import { conflict } from '../../core/errors.ts'
import { contentRepository } from './content.ts'
import type { ClusterMemberRow, ClusterRow, Db, FlavorRow } from '../database.ts'
import type { SecretBox } from '../secret-box.ts'
import { machineRepository } from './machines.ts'
import { inTransaction, uniqueViolation } from '../transactions.ts'

/** The sealed PKI is bound to its cluster: a value copied to another cluster's row does not open. */
export const pkiContext = (cluster: string) => `cluster_pki:${cluster}`
/** Bound to the machine: a sealed set copied to another member's row does not open. */
export const memberCertificatesContext = (machineUuid: string) => `member_certificates:${machineUuid}`

/**
 * The core's cluster port over kysely; its machine and content ports share the same connection or
 * transaction. `secrets` seals the cluster PKI on the way in and opens it on the way out.
 */
export function clusterRepository(db: Db, secrets: SecretBox, clock: () => Date = () => new Date()): ClusterRepository {
  return {
    machines: machineRepository(db, clock),
    content: contentRepository(db, clock),
    listFlavors: async () => (await db.selectFrom('flavors').selectAll().orderBy('name').execute()).map(toFlavor),
    findFlavor: async (name) => {
      const row = await db.selectFrom('flavors').selectAll().where('name', '=', name).executeTakeFirst()
      return row ? toFlavor(row) : undefined
    },
    insertFlavor: async (flavor, now) => {
      await uniquely(
        () =>
          db
            .insertInto('flavors')
            .values({
              name: flavor.name,
              control_plane_count: flavor.controlPlaneCount,
              nodes_min: flavor.nodesMin,
              nodes_max: flavor.nodesMax,
              selector: JSON.stringify(flavor.selector),
              min_cpu_cores: flavor.minCpuCores,
              min_memory_bytes: flavor.minMemoryBytes,
              min_disk_bytes: flavor.minDiskBytes,
              kubernetes_version: flavor.kubernetesVersion,
              labels: JSON.stringify(flavor.labels),
              api_server_port: flavor.apiServerPort,
              service_subnet: flavor.networking.serviceSubnet,
              pod_subnet: flavor.networking.podSubnet,
              dns_domain: flavor.networking.dnsDomain,
              control_plane_vip: flavor.controlPlaneVip,
              static_network: flavor.staticNetwork === null ? null : Number(flavor.staticNetwork),
              os: flavor.os,
              created_at: now.toISOString(),
            })
            .execute(),
        'FLAVOR_EXISTS',
        `flavor "${flavor.name}" already exists`,
      )
    },
    listClusters: async () => (await clustersWithRegistry(db).orderBy('clusters.created_at').orderBy('clusters.name').execute()).map(toCluster),
    findCluster: async (name) => {
      const row = await clustersWithRegistry(db).where('clusters.name', '=', name).executeTakeFirst()
      return row ? toCluster(row) : undefined
    },
    clusterNameTaken: async (name) => (await db.selectFrom('cluster_registry').select('name').where('name', '=', name).executeTakeFirst()) !== undefined,
    insertCluster: async (cluster) => {
      // The registry entry first: its primary key also guards against a cluster registered by hand.
      await uniquely(
        () =>
          db
            .insertInto('cluster_registry')
            .values({
              name: cluster.name,
              display_name: cluster.displayName,
              labels: JSON.stringify(cluster.labels),
              latitude: cluster.latitude,
              longitude: cluster.longitude,
              region: cluster.region,
              site: cluster.site,
              source: 'provisioned',
              credential_kind: 'cluster_pki',
              created_at: cluster.createdAt,
              updated_at: cluster.createdAt,
            })
            .execute(),
        'CLUSTER_EXISTS',
        `cluster "${cluster.name}" already exists`,
      )
      await db.insertInto('clusters').values({ name: cluster.name, flavor: cluster.flavor, state: cluster.state, created_at: cluster.createdAt }).execute()
    },
    setClusterState: async (name, state) => {
      await db.updateTable('clusters').set({ state }).where('name', '=', name).execute()
    },
    deleteCluster: async (name) => {
      await db.deleteFrom('clusters').where('name', '=', name).execute()
      // Destroying a cluster deregisters it; its health and history go with it (ON DELETE CASCADE).
      await db.deleteFrom('cluster_registry').where('name', '=', name).execute()
    },
    listMembers: async (cluster) => {
      let query = db.selectFrom('cluster_members').selectAll()
      if (cluster !== undefined) query = query.where('cluster', '=', cluster)
      return (await query.orderBy('cluster').orderBy('role').orderBy('ordinal').execute()).map(toMember)
    },
    listPlacedMembers: async (cluster) => {
      const rows = await db
        .selectFrom('cluster_members')
        .leftJoin('machine_interfaces', (join) => join.onRef('machine_interfaces.uuid', '=', 'cluster_members.machine_uuid').on('machine_interfaces.is_boot', '=', 1))
        .select(['cluster_members.machine_uuid', 'cluster_members.cluster', 'cluster_members.role', 'cluster_members.ordinal', 'cluster_members.hostname', 'cluster_members.etcd_membership', 'cluster_members.etcd_initial_cluster', 'machine_interfaces.ipv4'])
        .where('cluster_members.cluster', '=', cluster)
        .orderBy('cluster_members.role')
        .orderBy('cluster_members.ordinal')
        .execute()
      return rows.map((row) => ({ ...toMember({ ...row, created_at: '' }), ip: row.ipv4 ?? '' }))
    },
    listBootstrapRecords: async () => (await db.selectFrom('member_bootstrap').select(['machine_uuid', 'command', 'phase']).execute()).map((row) => ({ machineUuid: row.machine_uuid, command: row.command, phase: row.phase })),
    isMember: async (cluster, machineUuid) =>
      (await db.selectFrom('cluster_members').select('machine_uuid').where('machine_uuid', '=', machineUuid).where('cluster', '=', cluster).executeTakeFirst()) !== undefined,
    insertMember: async (member, now) => {
      await uniquely(
        () =>
          db
            .insertInto('cluster_members')
            .values({ machine_uuid: member.machineUuid, cluster: member.cluster, role: member.role, ordinal: member.ordinal, hostname: member.hostname, created_at: now.toISOString(), etcd_membership: member.role === 'control-plane' ? (member.etcdMembership ?? 'initial') : null, etcd_initial_cluster: member.etcdInitialCluster ?? null })
            .execute(),
        'MACHINE_ALREADY_IN_CLUSTER',
        `machine ${member.machineUuid} (or ${member.role} #${member.ordinal} of ${member.cluster}) is already assigned; run the scheduler again`,
      )
    },
    setEtcdMembership: async (machineUuid, membership) => {
      await db.updateTable('cluster_members').set({ etcd_membership: membership }).where('machine_uuid', '=', machineUuid).where('role', '=', 'control-plane').execute()
    },
    deleteMember: async (machineUuid) => {
      await db.deleteFrom('cluster_members').where('machine_uuid', '=', machineUuid).execute()
    },
    deleteMembers: async (cluster) => {
      await db.deleteFrom('cluster_members').where('cluster', '=', cluster).execute()
    },
    insertClusterPki: async (cluster, pki, now) => {
      await db
        .insertInto('cluster_pki')
        .values({ cluster, certificates: JSON.stringify(publicCertificates(pki)), sealed: secrets.seal(JSON.stringify(pki), pkiContext(cluster)), created_at: now.toISOString() })
        .execute()
    },
    findClusterPki: async (cluster) => {
      const row = await db.selectFrom('cluster_pki').select('sealed').where('cluster', '=', cluster).executeTakeFirst()
      return row ? (JSON.parse(secrets.open(row.sealed, pkiContext(cluster))) as ClusterPki) : undefined
    },
    ...memberAddresses(db),
    ...memberCertificates(db, secrets),
    findCertificates: async (cluster) => {
      const row = await db.selectFrom('cluster_pki').select('certificates').where('cluster', '=', cluster).executeTakeFirst()
      return row ? (JSON.parse(row.certificates) as ClusterCertificates) : undefined
    },
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(clusterRepository(trx, secrets, clock))),
  }
}

/** Turns a primary-key/unique violation into a 409 with a stable code. */
async function uniquely(write: () => Promise<unknown>, code: string, message: string): Promise<void> {
  try {
    await write()
  } catch (error) {
    if (uniqueViolation(error)) throw conflict(code, message)
    throw error
  }
}

const toFlavor = (row: FlavorRow): Flavor => ({
  name: row.name,
  controlPlaneCount: row.control_plane_count as Flavor['controlPlaneCount'],
  nodesMin: row.nodes_min,
  nodesMax: row.nodes_max,
  selector: JSON.parse(row.selector) as Record<string, string>,
  minCpuCores: row.min_cpu_cores,
  minMemoryBytes: row.min_memory_bytes,
  minDiskBytes: row.min_disk_bytes,
  kubernetesVersion: row.kubernetes_version,
  labels: JSON.parse(row.labels) as Record<string, string>,
  apiServerPort: row.api_server_port,
  networking: { serviceSubnet: row.service_subnet, podSubnet: row.pod_subnet, dnsDomain: row.dns_domain },
  controlPlaneVip: row.control_plane_vip,
  staticNetwork: row.static_network === null ? null : row.static_network === 1,
  os: row.os as Flavor['os'],
})

/** Provisioning rows with their registry entry's labels and location. */
const clustersWithRegistry = (db: Db) =>
  db
    .selectFrom('clusters')
    .innerJoin('cluster_registry', 'cluster_registry.name', 'clusters.name')
    .select([
      'clusters.name',
      'clusters.flavor',
      'clusters.state',
      'clusters.created_at',
      'cluster_registry.display_name',
      'cluster_registry.labels',
      'cluster_registry.latitude',
      'cluster_registry.longitude',
      'cluster_registry.region',
      'cluster_registry.site',
    ])

const toCluster = (row: ClusterRow & { display_name: string; labels: string; latitude: number | null; longitude: number | null; region: string | null; site: string | null }): Cluster => ({
  name: row.name,
  flavor: row.flavor,
  displayName: row.display_name,
  labels: JSON.parse(row.labels) as Record<string, string>,
  latitude: row.latitude,
  longitude: row.longitude,
  region: row.region,
  site: row.site,
  state: row.state,
  createdAt: row.created_at,
})

const toMember = (row: ClusterMemberRow): ClusterMember => ({
  cluster: row.cluster,
  machineUuid: row.machine_uuid,
  role: row.role,
  ordinal: row.ordinal,
  hostname: row.hostname,
  ...(row.role === 'control-plane' ? { etcdMembership: (row.etcd_membership ?? 'initial') as EtcdMembership } : {}),
  ...(row.etcd_initial_cluster ? { etcdInitialCluster: row.etcd_initial_cluster } : {}),
})

/** The boot-address reservations a cluster's scheduling makes (full DHCP mode). */
function memberAddresses(db: Db): Pick<ClusterRepository, 'reserveMemberAddress' | 'releaseMemberAddresses' | 'releaseMemberAddress'> {
  return {
    reserveMemberAddress: async (cluster, mac, ip, hostname, now) => {
      const [byMac, byIp] = await Promise.all([
        db.selectFrom('dhcp_reservations').select('mac').where('mac', '=', mac).executeTakeFirst(),
        db.selectFrom('dhcp_reservations').select('mac').where('ip', '=', ip).executeTakeFirst(),
      ])
      if (byMac) return true
      if (byIp) return false
      const at = now.toISOString()
      await db.insertInto('dhcp_reservations').values({ mac, ip, hostname, cluster, created_at: at, updated_at: at }).execute()
      return true
    },
    releaseMemberAddresses: async (cluster) => {
      await db.deleteFrom('dhcp_reservations').where('cluster', '=', cluster).execute()
    },
    releaseMemberAddress: async (cluster, mac) => {
      await db.deleteFrom('dhcp_reservations').where('cluster', '=', cluster).where('mac', '=', mac).execute()
    },
  }
}

/** A cluster's PKI updates and its members' issued certificates, sealed and bound to their machine. */
function memberCertificates(db: Db, secrets: SecretBox): Pick<ClusterRepository, 'updateClusterPki' | 'saveMemberCertificates' | 'listMemberCertificateStamps' | 'findMemberCertificates'> {
  return {
    updateClusterPki: async (cluster, pki) => {
      await db
        .updateTable('cluster_pki')
        .set({ certificates: JSON.stringify(publicCertificates(pki)), sealed: secrets.seal(JSON.stringify(pki), pkiContext(cluster)) })
        .where('cluster', '=', cluster)
        .execute()
    },
    saveMemberCertificates: async (cluster, machineUuid, issued) => {
      const values = {
        cluster,
        certificates: JSON.stringify(issued.certificates.map(({ privateKeyPem: _key, ...certificate }) => certificate)),
        sealed: secrets.seal(JSON.stringify(issued), memberCertificatesContext(machineUuid)),
        issued_at: issued.issuedAt,
        not_after: issued.notAfter,
      }
      await db
        .insertInto('member_certificates')
        .values({ machine_uuid: machineUuid, ...values })
        .onConflict((conflict) => conflict.column('machine_uuid').doUpdateSet(values))
        .execute()
    },
    listMemberCertificateStamps: async (cluster) => {
      let query = db.selectFrom('member_certificates').select(['machine_uuid', 'issued_at', 'not_after'])
      if (cluster) query = query.where('cluster', '=', cluster)
      return (await query.execute()).map((row) => ({ machineUuid: row.machine_uuid, issuedAt: row.issued_at, notAfter: row.not_after }))
    },
    findMemberCertificates: async (machineUuid) => {
      const row = await db.selectFrom('member_certificates').select('sealed').where('machine_uuid', '=', machineUuid).executeTakeFirst()
      return row ? (JSON.parse(secrets.open(row.sealed, memberCertificatesContext(machineUuid))) as MemberCertificates) : undefined
    },
  }
}
