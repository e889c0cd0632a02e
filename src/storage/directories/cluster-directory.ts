import type { ClusterMembership, ClusterMembershipSource } from '../../core/boot/boot-service.ts'
import type { ClusterRepository } from '../../core/clusters/cluster-service.ts'
import type { ClusterMember } from '../../core/clusters/cluster.ts'
import type { ClusterPki } from '../../core/clusters/cluster-pki.ts'
import type { MemberCertificates } from '../../core/clusters/member-certificates.ts'

/**
 * Cluster memberships in memory, for rendering: a boot request finds its machine's cluster, role,
 * the cluster's PKI and its own certificates without touching the database. A sealed value is opened
 * (decrypted) once and kept until it changes: `load` after every scheduling, destroy or certificate
 * issue reads which sets changed (by their issue time) and opens only those.
 */
export class ClusterDirectory implements ClusterMembershipSource {
  private members = new Map<string, ClusterMember>()
  private labels = new Map<string, Record<string, string>>()
  private pki = new Map<string, ClusterPki>()
  private certificates = new Map<string, MemberCertificates>()
  /** Counts loads: a membership's revision, so that renders cached before a load are not served after it. */
  private generation = 0
  /** Loads run one after another, so that an older picture never replaces a newer one. */
  private loading: Promise<void> = Promise.resolve()

  constructor(private readonly repository: ClusterRepository) {}

  load(): Promise<void> {
    const next = this.loading.then(() => this.loadNow())
    this.loading = next.catch(() => undefined)
    return next
  }

  memberOf(machineUuid: string): ClusterMembership | undefined {
    const member = this.members.get(machineUuid)
    const pki = member && this.pki.get(member.cluster)
    if (!member || !pki) return undefined
    const certificates = this.certificates.get(machineUuid)
    return { cluster: member.cluster, role: member.role, hostname: member.hostname, labels: this.labels.get(member.cluster) ?? {}, pki, ...(certificates ? { certificates } : {}), revision: this.generation }
  }

  /** Builds the new picture aside and swaps it in at once: a boot never sees half of it. */
  private async loadNow(): Promise<void> {
    const [members, clusters, stamps] = await Promise.all([this.repository.listMembers(), this.repository.listClusters(), this.repository.listMemberCertificateStamps()])
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
    this.members = new Map(members.map((member) => [member.machineUuid, member]))
    this.labels = new Map(clusters.map((cluster) => [cluster.name, cluster.labels]))
    this.generation++
  }
}
