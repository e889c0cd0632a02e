import { notFound, SlipwayError } from '../errors.ts'
import type { EtcdMembership, Role } from './cluster.ts'
import { memberLabel, type EtcdMember, type EtcdQuorum } from './etcd-quorum.ts'
import { ETCD_PEER_PORT } from './schedule-plan.ts'

/** A cluster member as membership changes need it. */
export interface PlacedControlPlaneMember {
  machineUuid: string
  role: Role
  hostname: string
  /** Its boot address: etcd peers at `https://<ip>:2380`. */
  ip: string | null
  etcdMembership?: EtcdMembership
}

/** The clusters' side of it: who is a member, and the record of each member's etcd membership. */
export interface EtcdMembersClusters {
  listClusters(): Promise<{ name: string }[]>
  getCluster(name: string): Promise<{ members: PlacedControlPlaneMember[] }>
  setEtcdMembership(machineUuid: string, membership: EtcdMembership): Promise<void>
}

export interface EtcdMembershipChange {
  cluster: string
  hostname: string
  /** What was done: the member added (a replacement), or found already there. */
  outcome: 'added' | 'already_a_member' | 'failed'
  message: string
}

export const peerUrlOf = (ip: string) => `https://${ip}:${ETCD_PEER_PORT}`

const SETTLE_ATTEMPTS = 4
const SETTLE_WAIT_MS = 2_500

/**
 * Keeps each cluster's etcd membership in step with its control plane, every change through
 * EtcdQuorum (which refuses one that would leave etcd without a healthy majority):
 * - a control-plane machine that leaves its cluster (it died for good, or is replaced) has its etcd
 *   member removed first (`leave`), so that the member the cluster can no longer reach does not count
 *   toward the quorum any more;
 * - a replacement placed into the running control plane (`to_add`) is added (`member add`) before its
 *   role config is served (`reconcile`, on every cluster change and on a timer until it succeeds);
 * - a re-provisioned member, whose new install erases its etcd data, is removed and added again
 *   (`rejoin`) so that it joins as a new member with initial-cluster-state `existing`.
 */
export class EtcdMembers {
  constructor(
    private readonly quorum: Pick<EtcdQuorum, 'look' | 'addMember' | 'removeMember'>,
    private readonly clusters: EtcdMembersClusters,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  /**
   * etcd refuses a membership change ("unhealthy cluster") until every peer it counts on has been
   * connected for its health interval (5 s): just after the cluster formed, or a member came back.
   * And right after a change (a removal of the leader above all) the members answer /health false
   * until a leader is elected again, which the quorum check reads as no healthy majority. Such a
   * refusal, after a change the engine just made, is asked again a few times before it is the answer.
   */
  private async settled<T>(change: () => Promise<T>, afterChange = false): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await change()
      } catch (error) {
        const settling = error instanceof SlipwayError && (/unhealthy cluster/.test(error.message) || (afterChange && error.code === 'ETCD_QUORUM_AT_RISK'))
        if (attempt >= SETTLE_ATTEMPTS || !settling) throw error
        await this.sleep(SETTLE_WAIT_MS)
      }
    }
  }

  /**
   * Removes the etcd member of a control-plane machine about to leave its cluster; returns its name,
   * or null for a node or a member etcd does not have (removed already). Throws when etcd cannot be
   * asked (502/504) or the removal would break the quorum (409 ETCD_QUORUM_AT_RISK): the machine then
   * stays a member.
   */
  async leave(cluster: string, machineUuid: string): Promise<string | null> {
    const member = await this.member(cluster, machineUuid)
    if (member.role !== 'control-plane' || !member.ip) return null
    const found = await this.etcdMemberAt(cluster, member.ip)
    if (!found) return null
    const removed = await this.settled(() => this.quorum.removeMember(cluster, found.id))
    return memberLabel(removed)
  }

  /**
   * Before a control-plane member is re-provisioned: its etcd member is removed (quorum checked) and
   * added again at the same peer URL, not started, so that the fresh install joins as a new member.
   * Nothing for a node. Throws, changing nothing, when etcd cannot be asked or the quorum forbids it.
   */
  async rejoin(cluster: string, machineUuid: string): Promise<void> {
    const member = await this.member(cluster, machineUuid)
    const ip = member.ip
    if (member.role !== 'control-plane' || !ip) return
    const found = await this.etcdMemberAt(cluster, ip)
    if (found) await this.settled(() => this.quorum.removeMember(cluster, found.id))
    try {
      await this.settled(() => this.quorum.addMember(cluster, [peerUrlOf(ip)]), found !== undefined)
    } catch (error) {
      if (!found || !(error instanceof SlipwayError)) throw error
      throw new SlipwayError(error.kind, error.code, `${member.hostname}'s etcd member was removed but could not be added again: ${error.message}; ask again (it is then added)`, error.details)
    }
    await this.clusters.setEtcdMembership(machineUuid, 'added')
  }

  /** Adds every replacement waiting to join (`to_add`); a failure is reported and tried again on the next call. */
  async reconcile(): Promise<EtcdMembershipChange[]> {
    const changes: EtcdMembershipChange[] = []
    for (const { name } of await this.clusters.listClusters()) {
      const { members } = await this.clusters.getCluster(name)
      for (const member of members.filter((candidate) => candidate.role === 'control-plane' && candidate.etcdMembership === 'to_add' && candidate.ip)) {
        try {
          const found = await this.etcdMemberAt(name, member.ip!)
          if (!found) await this.settled(() => this.quorum.addMember(name, [peerUrlOf(member.ip!)]))
          await this.clusters.setEtcdMembership(member.machineUuid, 'added')
          changes.push({
            cluster: name,
            hostname: member.hostname,
            outcome: found ? 'already_a_member' : 'added',
            message: found ? `etcd already has a member at ${peerUrlOf(member.ip!)}` : `added to etcd at ${peerUrlOf(member.ip!)}: it joins the running cluster`,
          })
        } catch (error) {
          changes.push({ cluster: name, hostname: member.hostname, outcome: 'failed', message: error instanceof Error ? error.message : String(error) })
        }
      }
    }
    return changes
  }

  private async member(cluster: string, machineUuid: string): Promise<PlacedControlPlaneMember> {
    const member = (await this.clusters.getCluster(cluster)).members.find((candidate) => candidate.machineUuid === machineUuid)
    if (!member) throw notFound('CLUSTER_MEMBER_NOT_FOUND', `machine ${machineUuid} is not a member of cluster "${cluster}"`)
    return member
  }

  private async etcdMemberAt(cluster: string, ip: string): Promise<EtcdMember | undefined> {
    const url = peerUrlOf(ip)
    return (await this.quorum.look(cluster)).members.find((candidate) => candidate.peerUrls.includes(url))
  }
}
