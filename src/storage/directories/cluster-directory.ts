import type { ClusterMembership, ClusterMembershipSource } from '../../core/boot/boot-service.ts'
import type { ClusterRepository } from '../../core/clusters/cluster-service.ts'
import { DEFAULT_API_SERVER_PORT, DEFAULT_DNS_DOMAIN, DEFAULT_KUBERNETES_VERSION, DEFAULT_POD_SUBNET, DEFAULT_SERVICE_SUBNET, type ClusterNetworking, type MemberOs } from '../../core/clusters/cluster.ts'
import { etcdInitialCluster, type PlacedMember } from '../../core/clusters/schedule-plan.ts'
import type { ClusterPki } from '../../core/clusters/cluster-pki.ts'
import { initializesCluster, type BootstrapRecord } from '../../core/clusters/kubeadm-config.ts'
import { controlPlaneEndpointHost, type MemberCertificates } from '../../core/clusters/member-certificates.ts'

/** What every member of a cluster shares. */
interface ClusterFacts {
  labels: Record<string, string>
  endpoint: { host: string; port: number }
  kubernetesVersion: string
  networking: ClusterNetworking
  controlPlaneVip: string | null
  staticNetwork: boolean
  os: MemberOs
  members: PlacedMember[]
  etcdInitialCluster: string
}

export interface MemberNetworkSettings {
  staticByDefault: boolean
  nameservers: string[]
}

/**
 * Cluster memberships in memory, for rendering: a boot request finds its machine's cluster, role,
 * the cluster's PKI and its own certificates without touching the database. A sealed value is opened
 * (decrypted) once and kept until it changes: `load` after every scheduling, destroy or certificate
 * issue reads which sets changed (by their issue time) and opens only those.
 */
export class ClusterDirectory implements ClusterMembershipSource {
  private members = new Map<string, PlacedMember>()
  private clusters = new Map<string, ClusterFacts>()
  private pki = new Map<string, ClusterPki>()
  private certificates = new Map<string, MemberCertificates>()
  /** What each member's kubeadm bootstrap reported last, as of the last load. */
  private bootstrap = new Map<string, BootstrapRecord>()
  /** Counts loads: a membership's revision, so that renders cached before a load are not served after it. */
  private generation = 0
  /** Loads run one after another, so that an older picture never replaces a newer one. */
  private loading: Promise<void> = Promise.resolve()

  /**
   * `zone`: the engine's DNS zone, where each cluster's control-plane endpoint `api.<cluster>.<zone>`
   * lives. `network`: whether members keep their boot address statically when their flavor does not
   * say (in proxy DHCP mode, where the engine cannot reserve it), and the name servers they then use.
   */
  constructor(
    private readonly repository: ClusterRepository,
    private readonly zone: string,
    private readonly network: MemberNetworkSettings = { staticByDefault: false, nameservers: [] },
  ) {}

  load(): Promise<void> {
    const next = this.loading.then(() => this.loadNow())
    this.loading = next.catch(() => undefined)
    return next
  }

  memberOf(machineUuid: string): ClusterMembership | undefined {
    const member = this.members.get(machineUuid)
    const pki = member && this.pki.get(member.cluster)
    const cluster = member && this.clusters.get(member.cluster)
    if (!member || !pki || !cluster) return undefined
    const certificates = this.certificates.get(machineUuid)
    return {
      cluster: member.cluster,
      role: member.role,
      hostname: member.hostname,
      ip: member.ip,
      initializes: initializesCluster(member, cluster.members, this.bootstrap),
      labels: cluster.labels,
      endpoint: cluster.endpoint,
      kubernetesVersion: cluster.kubernetesVersion,
      networking: cluster.networking,
      controlPlaneVip: cluster.controlPlaneVip,
      os: cluster.os,
      staticNetwork: cluster.staticNetwork ? { nameservers: this.network.nameservers, domains: [this.zone] } : null,
      // A member that formed etcd keeps the list it formed it with; one that joined later gets today's.
      etcdInitialCluster: (member.etcdMembership ?? 'initial') === 'initial' ? (member.etcdInitialCluster ?? cluster.etcdInitialCluster) : cluster.etcdInitialCluster,
      ...(member.etcdMembership ? { etcdMembership: member.etcdMembership } : {}),
      pki,
      ...(certificates ? { certificates } : {}),
      revision: this.generation,
    }
  }

  /** Builds the new picture aside and swaps it in at once: a boot never sees half of it. */
  private async loadNow(): Promise<void> {
    const [clusters, flavors, stamps, bootstrap] = await Promise.all([
      this.repository.listClusters(),
      this.repository.listFlavors(),
      this.repository.listMemberCertificateStamps(),
      this.repository.listBootstrapRecords(),
    ])
    const flavorOf = new Map(flavors.map((flavor) => [flavor.name, flavor]))
    const members: PlacedMember[] = []
    const facts = new Map<string, ClusterFacts>()
    for (const cluster of clusters) {
      const placed = await this.repository.listPlacedMembers(cluster.name)
      members.push(...placed)
      const flavor = flavorOf.get(cluster.flavor)
      facts.set(cluster.name, {
        labels: cluster.labels,
        endpoint: { host: controlPlaneEndpointHost(cluster.name, this.zone), port: flavor?.apiServerPort ?? DEFAULT_API_SERVER_PORT },
        kubernetesVersion: flavor?.kubernetesVersion ?? DEFAULT_KUBERNETES_VERSION,
        networking: flavor?.networking ?? { serviceSubnet: DEFAULT_SERVICE_SUBNET, podSubnet: DEFAULT_POD_SUBNET, dnsDomain: DEFAULT_DNS_DOMAIN },
        controlPlaneVip: flavor?.controlPlaneVip ?? null,
        staticNetwork: flavor?.staticNetwork ?? this.network.staticByDefault,
        os: flavor?.os ?? 'flatcar',
        members: placed,
        etcdInitialCluster: etcdInitialCluster(placed),
      })
    }
    // Every PKI again: a renewed admin certificate changes it (a cluster's few values are cheap to open).
    const pki = new Map<string, ClusterPki>()
    for (const cluster of clusters) {
      const opened = await this.repository.findClusterPki(cluster.name)
      if (opened) pki.set(cluster.name, opened)
    }
    const certificates = new Map<string, MemberCertificates>()
    for (const stamp of stamps) {
      const known = this.certificates.get(stamp.machineUuid)
      const current = known?.issuedAt === stamp.issuedAt ? known : await this.repository.findMemberCertificates(stamp.machineUuid)
      if (current) certificates.set(stamp.machineUuid, current)
    }
    this.pki = pki
    this.certificates = certificates
    this.bootstrap = new Map(bootstrap.map((record) => [record.machineUuid, record]))
    this.members = new Map(members.map((member) => [member.machineUuid, member]))
    this.clusters = facts
    this.generation++
  }
}
