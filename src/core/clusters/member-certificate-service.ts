import { notFound } from '../errors.ts'
import type { ClusterPkiIssuer } from './cluster-pki.ts'
import type { ClusterRepository } from './cluster-service.ts'
import { certificatePlan, controlPlaneEndpointHost, firstAddressOf, memberCertificates, renewalDue } from './member-certificates.ts'

/** What a certificate pass issued: members' sets (new or renewed) and renewed admin certificates. */
export interface CertificateReport {
  issued: { cluster: string; machineUuid: string; hostname: string; renewal: boolean }[]
  adminRenewed: string[]
}

/**
 * The engine as each cluster's CA (kubeadm's external-CA mode): it issues members the certificates
 * and kubeconfigs of their role (member-certificates.ts) and renews them, with the engine's own admin
 * certificate, before they expire. The CA keys never leave the store.
 */
export class MemberCertificateService {
  constructor(
    private readonly repository: ClusterRepository,
    private readonly pkiIssuer: ClusterPkiIssuer,
    /** The engine's DNS zone: each cluster's control-plane endpoint is `api.<cluster>.<zone>`. */
    private readonly zone: string,
    private readonly clock: () => Date = () => new Date(),
    /** Told after members' sets (or a cluster's admin certificate) were issued or renewed. */
    private readonly changed?: (uuids: string[]) => Promise<void> | void,
  ) {}

  /**
   * Renews every certificate the engine issued for a cluster now, with new keys (a suspected leak, a
   * changed endpoint); the members' configs change and reach them by a rolling update.
   */
  async renew(name: string, now: Date = this.clock()): Promise<CertificateReport> {
    if (!(await this.repository.findCluster(name))) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
    return this.issue(now, new Set([name]), { force: true })
  }

  /**
   * The engine as each cluster's CA: members without certificates get kubeadm's set for their role
   * (just scheduled, or imported from an inventory), sets with less than 30 days left are renewed
   * with fresh keys (the changed config reaches the machines by a rolling update), and so is the
   * engine's own admin certificate. Each member is written on its own; a member that left meanwhile
   * is skipped.
   */
  async issue(now: Date = this.clock(), clusters?: ReadonlySet<string>, options: { force?: boolean } = {}): Promise<CertificateReport> {
    const report: CertificateReport = { issued: [], adminRenewed: [] }
    for (const cluster of await this.repository.listClusters()) {
      if (clusters && !clusters.has(cluster.name)) continue
      const stamps = new Map((await this.repository.listMemberCertificateStamps(cluster.name)).map((stamp) => [stamp.machineUuid, stamp]))
      const due = (await this.repository.listPlacedMembers(cluster.name)).filter((member) => {
        const stamp = stamps.get(member.machineUuid)
        return !stamp || options.force || renewalDue(stamp.notAfter, now)
      })
      const publicParts = await this.repository.findCertificates(cluster.name)
      const adminDue = publicParts !== undefined && (options.force || renewalDue(this.pkiIssuer.notAfter(publicParts.admin), now))
      if (!due.length && !adminDue) continue
      let pki = await this.repository.findClusterPki(cluster.name)
      const flavor = await this.repository.findFlavor(cluster.flavor)
      if (!pki || !flavor) continue
      if (adminDue) {
        pki = { ...pki, admin: await this.pkiIssuer.renewAdmin(pki, cluster.name, now) }
        await this.repository.updateClusterPki(cluster.name, pki)
        report.adminRenewed.push(cluster.name)
      }
      for (const member of due) {
        const identity = {
          cluster: cluster.name,
          role: member.role,
          hostname: member.hostname,
          ip: member.ip,
          endpointHost: controlPlaneEndpointHost(cluster.name, this.zone),
          apiServerPort: flavor.apiServerPort,
          serviceIp: firstAddressOf(flavor.networking.serviceSubnet),
          dnsDomain: flavor.networking.dnsDomain,
          controlPlaneVip: flavor.controlPlaneVip,
        }
        const issued = memberCertificates(await this.pkiIssuer.issueLeaves(pki, certificatePlan(identity), now), now)
        const saved = await this.repository.transaction(async (repository) => {
          const still = await repository.isMember(cluster.name, member.machineUuid)
          if (still) await repository.saveMemberCertificates(cluster.name, member.machineUuid, issued)
          return still
        })
        if (saved) report.issued.push({ cluster: cluster.name, machineUuid: member.machineUuid, hostname: member.hostname, renewal: stamps.has(member.machineUuid) })
      }
    }
    if (report.issued.length || report.adminRenewed.length) await this.changed?.(report.issued.map((entry) => entry.machineUuid))
    return report
  }
}
