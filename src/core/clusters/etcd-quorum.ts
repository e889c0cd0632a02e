import { conflict, invalid, notFound } from '../errors.ts'

/**
 * A provisioned cluster's etcd as the engine sees it, asked live: its members, and each member's own
 * account of itself (its raft indexes, the leader it follows, its errors, its /health). The engine
 * reaches it through the EtcdGateway port (adapters/etcd: etcd's v3 JSON gateway on the members'
 * client URLs, with mutual TLS under the cluster's etcd CA). Rolling updates gate control-plane
 * restarts on it, and members are added or removed only through EtcdQuorum, which checks the quorum
 * first.
 */

export interface EtcdMember {
  /** etcd's uint64 member ID in decimal, as the v3 JSON API writes it (etcdctl prints it in hex). */
  id: string
  /** The member's name: its node's hostname (ETCD_NAME). Empty for a member added but not started yet. */
  name: string
  peerUrls: string[]
  /** Empty for a member added but not started yet. */
  clientUrls: string[]
  /** A learner follows the log but does not vote: it counts for no quorum. */
  learner: boolean
}

export interface EtcdMemberStatus {
  /** Whether the member answered its status request at its own client URL. */
  reachable: boolean
  /** Reachable, reporting no error, following a leader, and answering /health with true. */
  healthy: boolean
  /** Its raft commit index. */
  raftIndex: number | null
  /** The last entry it applied to its store. */
  raftAppliedIndex: number | null
  raftTerm: number | null
  /** The leader's member ID as this member knows it; null when it knows none. */
  leaderId: string | null
  version: string | null
  /** Why it is not healthy: etcd's own errors (an alarm, no leader), a failed /health, or why it could not be asked. */
  errors: string[]
}

export interface EtcdMemberView extends EtcdMember {
  status: EtcdMemberStatus
}

/** How the engine reaches a cluster's etcd; adapters/etcd implements it. */
export interface EtcdGateway {
  /**
   * The member list (from whichever control-plane member answers first) and each member's status and
   * health, asked of the member itself, all at once and each within a short timeout, so that a dead
   * member is reported, not waited for. Fails with ETCD_UNREACHABLE when no member answers the list.
   */
  members(cluster: string): Promise<EtcdMemberView[]>
  /** Adds a voting member with these peer URLs (etcd's MemberAdd); no check: go through EtcdQuorum. */
  addMember(cluster: string, peerUrls: string[]): Promise<EtcdMember>
  /** Removes a member (etcd's MemberRemove); no check: go through EtcdQuorum. */
  removeMember(cluster: string, memberId: string): Promise<void>
}

/** One look at a cluster's etcd. */
export interface EtcdLook {
  cluster: string
  at: string
  members: EtcdMemberView[]
  /** The member that leads now, if any. */
  leader: EtcdMemberView | undefined
}

/**
 * A member whose applied index is at most this many entries behind the leader's commit index counts
 * as caught up: members are asked at once, so the leader may commit a few more entries between its
 * answer and the member's; a member that far behind applies them in milliseconds.
 */
export const CAUGHT_UP_ENTRIES = 100

/** The members that vote: learners count for no quorum. */
export const votersOf = <M extends { learner: boolean }>(members: readonly M[]): M[] => members.filter((member) => !member.learner)

/** How many of `voters` members must agree for etcd to commit anything. */
export const majorityOf = (voters: number) => Math.floor(voters / 2) + 1

/**
 * The leader: a reachable member that names itself as the leader. Should a deposed leader not know
 * yet (a partition), the one with the highest term leads.
 */
export function leaderOf(members: readonly EtcdMemberView[]): EtcdMemberView | undefined {
  const claimants = members.filter((member) => member.status.reachable && member.status.leaderId === member.id)
  return claimants.sort((a, b) => (b.status.raftTerm ?? 0) - (a.status.raftTerm ?? 0))[0]
}

/** A member as people and events name it: its name, or its ID before it has one. */
export const memberLabel = (member: EtcdMember) => member.name || `member ${member.id} (not started)`

const why = (member: EtcdMemberView) => member.status.errors.join('; ') || 'unhealthy'

/** The voting members that are not healthy, except those named in `except` (taken down on purpose). */
export function unhealthyMembers(members: readonly EtcdMemberView[], except: ReadonlySet<string> = new Set()): EtcdMemberView[] {
  return votersOf(members).filter((member) => !member.status.healthy && !except.has(member.name))
}

/** `q-cp-3 (connection refused), q-cp-2 (etcdserver: no leader)`: what is wrong with each. */
export const describeUnhealthy = (members: readonly EtcdMemberView[]) => members.map((member) => `${memberLabel(member)} (${why(member)})`).join(', ')

/** What a control-plane member waits for on etcd: `condition` stays the same while the numbers in `message` move. */
export interface EtcdWait {
  condition: 'no_member' | 'member_unhealthy' | 'no_leader' | 'behind' | 'other_unhealthy' | 'unreachable'
  message: string
}

/**
 * Why the member named `name` may not count as back after its restart, or undefined when it may: the
 * cluster has a leader, the member is healthy and has applied the leader's commit index (within
 * CAUGHT_UP_ENTRIES), and every other voting member is healthy except those `takenDown` names (a
 * rolling update's own members in flight).
 */
export function memberNotBack(look: EtcdLook, name: string, takenDown: ReadonlySet<string> = new Set()): EtcdWait | undefined {
  const member = look.members.find((candidate) => candidate.name === name)
  if (!member) return { condition: 'no_member', message: `etcd has no member named ${name} (members: ${look.members.map(memberLabel).join(', ') || 'none'})` }
  if (!member.status.healthy) return { condition: 'member_unhealthy', message: `its etcd member is not healthy (${why(member)})` }
  if (!look.leader) return { condition: 'no_leader', message: 'the etcd cluster has no leader' }
  const leaderCommit = look.leader.status.raftIndex ?? 0
  const applied = member.status.raftAppliedIndex ?? 0
  if (applied + CAUGHT_UP_ENTRIES < leaderCommit) {
    return { condition: 'behind', message: `its etcd member has not caught up: applied index ${applied}, the leader's commit index ${leaderCommit} (at most ${CAUGHT_UP_ENTRIES} behind counts)` }
  }
  const others = unhealthyMembers(look.members, new Set([...takenDown, name]))
  if (others.length) return { condition: 'other_unhealthy', message: `another etcd member is not healthy: ${describeUnhealthy(others)}` }
  return undefined
}

const PEER_URL = /^https:\/\/[^/?#@\s]+:[0-9]{1,5}$/

/** Refuses an addition that would leave the grown cluster without a healthy majority, or names a peer URL already taken. */
export function checkAddition(members: readonly EtcdMemberView[], peerUrls: readonly string[]): void {
  if (peerUrls.length === 0 || peerUrls.some((url) => !PEER_URL.test(url))) {
    throw invalid('INVALID_ETCD_PEER_URLS', `peer URLs must be https://<host>:<port>, at least one: ${JSON.stringify(peerUrls)}`)
  }
  const taken = members.find((member) => member.peerUrls.some((url) => peerUrls.includes(url)))
  if (taken) throw conflict('ETCD_PEER_URL_TAKEN', `${memberLabel(taken)} already peers at ${taken.peerUrls.join(', ')}`, { member: taken.id })
  const voters = votersOf(members)
  const healthy = voters.filter((member) => member.status.healthy).length
  const needed = majorityOf(voters.length + 1)
  // The new member counts toward the quorum at once but is not started yet: the others must make it.
  if (healthy < needed) {
    throw conflict('ETCD_QUORUM_AT_RISK', `adding a member makes ${voters.length + 1} voting members, whose quorum is ${needed}, and only ${healthy} are healthy (the new one is not started yet): etcd would stop committing${unhealthySuffix(voters)}`)
  }
}

/** Refuses a removal that would leave fewer healthy members than a majority of those that remain; returns the member. */
export function checkRemoval(members: readonly EtcdMemberView[], memberId: string): EtcdMemberView {
  const member = members.find((candidate) => candidate.id === memberId)
  if (!member) throw notFound('ETCD_MEMBER_NOT_FOUND', `etcd has no member ${memberId} (members: ${members.map((candidate) => `${memberLabel(candidate)} ${candidate.id}`).join(', ')})`)
  if (member.learner) return member
  const remaining = votersOf(members).filter((candidate) => candidate.id !== memberId)
  if (remaining.length === 0) throw conflict('ETCD_LAST_MEMBER', `${memberLabel(member)} is the cluster's only voting member: removing it would leave no etcd`)
  const healthy = remaining.filter((candidate) => candidate.status.healthy).length
  const needed = majorityOf(remaining.length)
  if (healthy < needed) {
    throw conflict('ETCD_QUORUM_AT_RISK', `removing ${memberLabel(member)} would leave ${healthy} healthy of ${remaining.length} voting members, fewer than the ${needed} a quorum needs${unhealthySuffix(remaining)}`, { member: member.id })
  }
  return member
}

const unhealthySuffix = (members: readonly EtcdMemberView[]) => {
  const unhealthy = members.filter((member) => !member.status.healthy)
  return unhealthy.length ? `; not healthy: ${describeUnhealthy(unhealthy)}` : ''
}

/**
 * A cluster's etcd through the gateway: looks, and membership changes that check the quorum first,
 * on a look taken just before (etcd's own strict reconfiguration check stays behind it).
 */
export class EtcdQuorum {
  constructor(
    private readonly gateway: EtcdGateway,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async look(cluster: string): Promise<EtcdLook> {
    const members = await this.gateway.members(cluster)
    return { cluster, at: this.clock().toISOString(), members, leader: leaderOf(members) }
  }

  async addMember(cluster: string, peerUrls: string[]): Promise<EtcdMember> {
    checkAddition((await this.look(cluster)).members, peerUrls)
    return this.gateway.addMember(cluster, peerUrls)
  }

  /** Removes a member once the quorum check passed; returns the member removed. */
  async removeMember(cluster: string, memberId: string): Promise<EtcdMember> {
    const member = checkRemoval((await this.look(cluster)).members, memberId)
    await this.gateway.removeMember(cluster, memberId)
    const { status: _status, ...removed } = member
    return removed
  }
}
