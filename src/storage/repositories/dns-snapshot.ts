import { createHash } from 'node:crypto'
import type { AppEndpoint, AppName, DnsSnapshot, LocatedSubnet } from '../../core/dns/dns-zone.ts'
import { parseSubnet } from '../../core/dns/geo.ts'
import type { ReleaseDns } from '../../core/releases/release.ts'
import { endpointAddresses, type EndpointCandidate, type EndpointHealth } from '../../core/clusters/bootstrap-progress.ts'
import { controlPlaneEndpointHost } from '../../core/clusters/member-certificates.ts'
import type { Db } from '../database.ts'

/**
 * What DNS answers, read from the store in a few queries: each release's names with the clusters
 * where it is ready (or was ready and is being upgraded) and that are healthy or degraded (not
 * unreachable, and checked at least once) and have ingress addresses; the hostnames of provisioned
 * machines with their boot addresses; each provisioned cluster's control-plane endpoint
 * (`api.<cluster>.<zone>`, see endpointAddresses, or its flavor's VIP once a member is installed); the location table. The serial changes when the content does.
 */
export async function buildDnsSnapshot(store: Db, zone: string, previous?: { serial: number; digest: string }, health?: EndpointHealth): Promise<{ snapshot: DnsSnapshot; digest: string }> {
  const clusters = new Map(
    (
      await store
        .selectFrom('cluster_registry')
        .leftJoin('cluster_health', 'cluster_health.cluster', 'cluster_registry.name')
        .select(['cluster_registry.name', 'cluster_registry.latitude', 'cluster_registry.longitude', 'cluster_registry.ingress_addresses', 'cluster_health.status'])
        .execute()
    ).map((row) => [row.name, row]),
  )
  const eligible = new Map<string, string[]>()
  for (const row of await store.selectFrom('cluster_releases').select(['namespace', 'name', 'cluster', 'phase', 'ready_at']).execute()) {
    const serving = row.phase === 'ready' || (row.phase === 'applying' && row.ready_at !== null)
    const cluster = clusters.get(row.cluster)
    if (!serving || !cluster || (cluster.status !== 'Healthy' && cluster.status !== 'Degraded')) continue
    const key = `${row.namespace}/${row.name}`
    eligible.set(key, [...(eligible.get(key) ?? []), row.cluster])
  }
  const apps = new Map<string, AppName>()
  for (const release of await store.selectFrom('releases').select(['namespace', 'name', 'dns', 'state']).where('state', '!=', 'deleting').execute()) {
    const dns = { hostnames: [], policy: 'nearest', ttlSeconds: null, weights: {}, failover: [], ...(JSON.parse(release.dns) as Partial<ReleaseDns>) } as ReleaseDns
    const endpoints: AppEndpoint[] = []
    for (const name of (eligible.get(`${release.namespace}/${release.name}`) ?? []).sort()) {
      const cluster = clusters.get(name)!
      const addresses = JSON.parse(cluster.ingress_addresses) as string[]
      if (addresses.length === 0) continue
      endpoints.push({ cluster: name, latitude: cluster.latitude, longitude: cluster.longitude, addresses, weight: dns.weights[name] ?? 1 })
    }
    const app: AppName = { policy: dns.policy, ttlSeconds: dns.ttlSeconds, failover: dns.failover, endpoints }
    for (const fqdn of [`${release.name}.${release.namespace}.${zone}`, ...dns.hostnames]) {
      const name = fqdn.toLowerCase().replace(/\.$/, '')
      if (name === zone || name.endsWith(`.${zone}`)) apps.set(name, app)
    }
  }
  const hosts = new Map<string, string[]>()
  const machines = await store
    .selectFrom('cluster_members')
    .innerJoin('machine_interfaces', (join) => join.onRef('machine_interfaces.uuid', '=', 'cluster_members.machine_uuid').on('machine_interfaces.is_boot', '=', 1))
    .select(['cluster_members.hostname', 'machine_interfaces.ipv4'])
    .execute()
  for (const machine of machines) if (machine.ipv4) hosts.set(`${machine.hostname}.${zone}`.toLowerCase(), [machine.ipv4])
  for (const [name, addresses] of await controlPlaneEndpoints(store, zone, undefined, health)) {
    // Infrastructure first: a release that happens to be named like an endpoint does not answer there.
    apps.delete(name)
    if (addresses.length) hosts.set(name, addresses)
  }
  const locations: LocatedSubnet[] = []
  for (const row of await store.selectFrom('dns_locations').selectAll().execute()) {
    const subnet = parseSubnet(row.subnet)
    if (subnet) locations.push({ subnet, site: row.site, latitude: row.latitude, longitude: row.longitude })
  }
  const digest = createHash('sha256')
    .update(JSON.stringify([[...apps], [...hosts], locations.map((location) => [location.subnet.cidr, location.latitude, location.longitude])]))
    .digest('hex')
  // RFC 1982 serials only grow: the time of the change, and never less than one more than before.
  const serial = previous && previous.digest === digest ? previous.serial : Math.max((previous?.serial ?? 0) + 1, Math.floor(Date.now() / 1000)) >>> 0
  return { snapshot: { apps, hosts, locations, serial }, digest }
}

/**
 * Each provisioned cluster's control-plane endpoint (`api.<cluster>.<zone>`, lower case) and what it
 * answers: its flavor's VIP once a member is installed, else the members whose API servers run (see
 * endpointAddresses). Empty while no control-plane member is installed. `cluster`: only that one.
 */
export async function controlPlaneEndpoints(store: Db, zone: string, cluster?: string, health?: EndpointHealth): Promise<Map<string, string[]>> {
  let members = store
    .selectFrom('cluster_members')
    .innerJoin('machines', 'machines.uuid', 'cluster_members.machine_uuid')
    .leftJoin('machine_interfaces', (join) => join.onRef('machine_interfaces.uuid', '=', 'cluster_members.machine_uuid').on('machine_interfaces.is_boot', '=', 1))
    .leftJoin('member_bootstrap', 'member_bootstrap.machine_uuid', 'cluster_members.machine_uuid')
    .select(['cluster_members.cluster', 'machines.state', 'machine_interfaces.ipv4', 'member_bootstrap.phase'])
    .where('cluster_members.role', '=', 'control-plane')
  let vips = store.selectFrom('clusters').innerJoin('flavors', 'flavors.name', 'clusters.flavor').select(['clusters.name', 'flavors.control_plane_vip']).where('flavors.control_plane_vip', 'is not', null)
  if (cluster !== undefined) {
    members = members.where('cluster_members.cluster', '=', cluster)
    vips = vips.where('clusters.name', '=', cluster)
  }
  const candidatesOf = new Map<string, EndpointCandidate[]>()
  for (const row of await members.execute()) {
    const answering = row.ipv4 ? health?.of(row.ipv4) : undefined
    candidatesOf.set(row.cluster, [...(candidatesOf.get(row.cluster) ?? []), { ip: row.ipv4, installed: row.state === 'installed', phase: row.phase, ...(answering === undefined ? {} : { answering }) }])
  }
  // kube-vip holds a flavor's VIP on the leading member: the endpoint is that one address.
  const vipOf = new Map((await vips.execute()).map((row) => [row.name, row.control_plane_vip!]))
  const endpoints = new Map<string, string[]>()
  for (const [name, candidates] of candidatesOf) {
    const serving = endpointAddresses(candidates)
    const vip = vipOf.get(name)
    endpoints.set(controlPlaneEndpointHost(name, zone).toLowerCase(), vip && serving.length ? [vip] : serving)
  }
  return endpoints
}

/**
 * The engine's own answer for a name, for its clients (engine-names.ts): a control-plane endpoint's
 * addresses (empty while none serves), or undefined for a name that is not one.
 */
export function endpointResolver(store: Db, zone: string, health?: EndpointHealth): (hostname: string) => Promise<string[] | undefined> {
  const suffix = `.${zone.toLowerCase()}`
  return async (hostname) => {
    const name = hostname.toLowerCase().replace(/\.$/, '')
    if (!name.startsWith('api.') || !name.endsWith(suffix)) return undefined
    const cluster = name.slice('api.'.length, -suffix.length)
    if (!cluster || cluster.includes('.')) return undefined
    const endpoints = await controlPlaneEndpoints(store, zone, cluster, health)
    return endpoints.get(name) ?? (endpoints.size === 0 && !(await clusterExists(store, cluster)) ? undefined : [])
  }
}

const clusterExists = async (store: Db, name: string) => (await store.selectFrom('clusters').select('name').where('name', '=', name).executeTakeFirst()) !== undefined

/** A control-plane member whose API server should answer: installed, its bootstrap done. */
export interface EndpointProbeTarget {
  cluster: string
  ip: string
  port: number
  /** The endpoint name its API server certificate carries (the TLS server name to check). */
  serverName: string
  /** The cluster's Kubernetes CA, which signed that certificate. */
  caPem: string
}

/** The members the engine probes for the endpoint's answer (see EndpointHealth). */
export async function endpointProbeTargets(store: Db, zone: string): Promise<EndpointProbeTarget[]> {
  const rows = await store
    .selectFrom('cluster_members')
    .innerJoin('machines', 'machines.uuid', 'cluster_members.machine_uuid')
    .innerJoin('machine_interfaces', (join) => join.onRef('machine_interfaces.uuid', '=', 'cluster_members.machine_uuid').on('machine_interfaces.is_boot', '=', 1))
    .innerJoin('member_bootstrap', 'member_bootstrap.machine_uuid', 'cluster_members.machine_uuid')
    .innerJoin('clusters', 'clusters.name', 'cluster_members.cluster')
    .innerJoin('flavors', 'flavors.name', 'clusters.flavor')
    .innerJoin('cluster_pki', 'cluster_pki.cluster', 'cluster_members.cluster')
    .select(['cluster_members.cluster', 'machine_interfaces.ipv4', 'flavors.api_server_port', 'cluster_pki.certificates'])
    .where('cluster_members.role', '=', 'control-plane')
    .where('machines.state', '=', 'installed')
    .where('member_bootstrap.phase', '=', 'done')
    .execute()
  return rows
    .filter((row): row is typeof row & { ipv4: string } => Boolean(row.ipv4))
    .map((row) => ({
      cluster: row.cluster,
      ip: row.ipv4,
      port: row.api_server_port,
      serverName: controlPlaneEndpointHost(row.cluster, zone),
      caPem: (JSON.parse(row.certificates) as { kubernetesCa: string }).kubernetesCa,
    }))
}
