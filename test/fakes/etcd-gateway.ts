import type { EtcdGateway, EtcdMember, EtcdMemberView } from '../../src/core/clusters/etcd-quorum.ts'
import { notFound, upstreamFailed } from '../../src/core/errors.ts'
import { failing } from './intentional-error.ts'
import { ScriptedFake, type CallJournal } from './scripted-fake.ts'

interface FakeMember extends EtcdMember {
  /** Why it is not healthy; undefined while it is. */
  trouble?: { reachable: boolean; error: string; healthyAgainAfterLooks?: number }
  /** Entries it has not applied yet, and after how many looks it has. */
  lag?: { behind: number; caughtUpAfterLooks: number }
}

/**
 * Clusters' etcd in memory: each cluster's members (named after the machines' hostnames), healthy and
 * caught up with the leader unless a test says otherwise, per member: down (unreachable, e.g.
 * restarting), unhealthy but answering (an alarm), or behind the leader's commit index; either may
 * clear by itself after a number of looks, as a restarted member comes back. The leader is the first
 * healthy member. Every call is recorded and can be scripted (ScriptedFake): `failOn('members roll',
 * error)` makes the cluster unreachable.
 */
export class FixedEtcdGateway extends ScriptedFake implements EtcdGateway {
  private readonly clusters = new Map<string, FakeMember[]>()
  private nextId = 0x1000n
  /** The leader's raft commit index. */
  commitIndex = 1000

  constructor(clusters: Record<string, string[]> = {}, calls: CallJournal = []) {
    super(calls)
    for (const [cluster, names] of Object.entries(clusters)) {
      this.clusters.set(cluster, names.map((name) => this.member(name, [`https://${name}:2380`], [`https://${name}:2379`])))
    }
  }

  /** The member stops answering (a restart, a crash); it answers again after `looks` looks, or once `up`. */
  down(cluster: string, name: string, error = 'connect ECONNREFUSED', looks?: number): void {
    this.find(cluster, name).trouble = { reachable: false, error, ...(looks === undefined ? {} : { healthyAgainAfterLooks: looks }) }
  }

  /** The member answers but is not healthy (an alarm, no leader it follows). */
  unhealthy(cluster: string, name: string, error: string): void {
    this.find(cluster, name).trouble = { reachable: true, error }
  }

  up(cluster: string, name: string): void {
    delete this.find(cluster, name).trouble
  }

  /** The member has applied `behind` entries fewer than the leader committed, until `looks` looks have passed. */
  lag(cluster: string, name: string, behind: number, looks = Number.POSITIVE_INFINITY): void {
    this.find(cluster, name).lag = { behind, caughtUpAfterLooks: looks }
  }

  async members(cluster: string): Promise<EtcdMemberView[]> {
    await this.called(`members ${cluster}`)
    const members = this.clusters.get(cluster)
    if (!members) throw upstreamFailed('ETCD_UNREACHABLE', `no etcd member of cluster "${cluster}" answered`, false)
    const leader = members.find((member) => !member.trouble && member.clientUrls.length > 0)
    const views = members.map((member): EtcdMemberView => {
      const { trouble, lag, ...plain } = member
      const answering = !trouble || trouble.reachable
      const status = {
        reachable: answering && plain.clientUrls.length > 0,
        healthy: !trouble && plain.clientUrls.length > 0 && leader !== undefined,
        raftIndex: answering ? this.commitIndex : null,
        raftAppliedIndex: answering ? this.commitIndex - (lag?.behind ?? 0) : null,
        raftTerm: answering ? 2 : null,
        leaderId: answering && leader ? leader.id : null,
        version: answering ? '3.4.23' : null,
        errors: trouble ? [trouble.error] : plain.clientUrls.length ? (leader ? [] : ['etcdserver: no leader']) : ['not started: it has no client URL yet'],
      }
      return { ...plain, status }
    })
    // Time passes with each look: troubles and lags that clear by themselves count down.
    for (const member of members) {
      if (member.trouble?.healthyAgainAfterLooks !== undefined && --member.trouble.healthyAgainAfterLooks <= 0) delete member.trouble
      if (member.lag && --member.lag.caughtUpAfterLooks <= 0) delete member.lag
    }
    return views
  }

  async addMember(cluster: string, peerUrls: string[]): Promise<EtcdMember> {
    await this.called(`addMember ${cluster} ${peerUrls.join(',')}`)
    const added = this.member('', peerUrls, [])
    this.clusters.get(cluster)!.push(added)
    const { trouble: _trouble, lag: _lag, ...member } = added
    return member
  }

  async removeMember(cluster: string, memberId: string): Promise<void> {
    await this.called(`removeMember ${cluster} ${memberId}`)
    const members = this.clusters.get(cluster)!
    const index = members.findIndex((member) => member.id === memberId)
    if (index < 0) throw notFound('ETCD_MEMBER_NOT_FOUND', `etcdserver: member not found`)
    members.splice(index, 1)
  }

  /** The member's ID. */
  idOf(cluster: string, name: string): string {
    return this.find(cluster, name).id
  }

  private member(name: string, peerUrls: string[], clientUrls: string[]): FakeMember {
    return { id: String(this.nextId++), name, peerUrls, clientUrls, learner: false }
  }

  private find(cluster: string, name: string): FakeMember {
    const member = this.clusters.get(cluster)?.find((candidate) => candidate.name === name)
    if (!member) throw new Error(`the fake etcd of ${cluster} has no member ${name}`)
    return member
  }
}

/** An etcd gateway whose every call fails: for runs that must never ask etcd. */
export class BrokenEtcdGateway implements EtcdGateway {
  members(): Promise<EtcdMemberView[]> {
    return failing('EtcdGateway.members')
  }

  addMember(): Promise<EtcdMember> {
    return failing('EtcdGateway.addMember')
  }

  removeMember(): Promise<void> {
    return failing('EtcdGateway.removeMember')
  }
}
