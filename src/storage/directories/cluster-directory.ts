import type { ClusterMembership, ClusterMembershipSource } from '../../core/boot/boot-service.ts'
import type { ClusterRepository } from '../../core/clusters/cluster-service.ts'
import type { ClusterMember } from '../../core/clusters/cluster.ts'
import type { ClusterPki } from '../../core/clusters/cluster-pki.ts'

/**
 * Cluster memberships in memory, for rendering: a boot request finds its machine's cluster, role
 * and PKI without touching the database. A cluster's PKI is opened (decrypted) on first use and kept;
 * `load` after every scheduling or destroy replaces the whole picture at once.
 */
export class ClusterDirectory implements ClusterMembershipSource {
  private members = new Map<string, ClusterMember>()
  private labels = new Map<string, Record<string, string>>()
  private readonly opened = new Map<string, Promise<ClusterPki | undefined>>()
  private readonly pki = new Map<string, ClusterPki>()

  constructor(private readonly repository: ClusterRepository) {}

  async load(): Promise<void> {
    const [members, clusters] = await Promise.all([this.repository.listMembers(), this.repository.listClusters()])
    const names = new Set(clusters.map((cluster) => cluster.name))
    for (const name of this.pki.keys()) if (!names.has(name)) this.pki.delete(name)
    for (const name of names) if (!this.pki.has(name)) await this.open(name)
    this.members = new Map(members.map((member) => [member.machineUuid, member]))
    this.labels = new Map(clusters.map((cluster) => [cluster.name, cluster.labels]))
  }

  memberOf(machineUuid: string): ClusterMembership | undefined {
    const member = this.members.get(machineUuid)
    const pki = member && this.pki.get(member.cluster)
    if (!member || !pki) return undefined
    return { cluster: member.cluster, role: member.role, hostname: member.hostname, labels: this.labels.get(member.cluster) ?? {}, pki }
  }

  private async open(name: string): Promise<void> {
    let opening = this.opened.get(name)
    if (!opening) {
      opening = this.repository.findClusterPki(name)
      this.opened.set(name, opening)
    }
    try {
      const pki = await opening
      if (pki) this.pki.set(name, pki)
    } finally {
      this.opened.delete(name)
    }
  }
}
