import { conflict } from '../errors.ts'
import { memberNotBack, type EtcdLook } from '../clusters/etcd-quorum.ts'
import type { LockGroup } from './semaphore.ts'
import { controlPlaneAllowance, liveControlPlaneAllowance } from './rollout-plan.ts'

/** A machine's place in its cluster, as the gate needs it. */
export interface GatedMember {
  cluster: string
  role: string
  hostname: string
}

export interface MachineRollingGatePorts {
  memberOf(uuid: string): GatedMember | undefined
  /** The lock group a machine's slot is taken in (its cluster's). */
  lockGroupOf(uuid: string): string
  listGroups(): Promise<LockGroup[]>
  etcd: { look(cluster: string): Promise<EtcdLook> }
}

/**
 * The etcd quorum for machines that roll themselves (the rolling agent, FleetLock clients): the lock
 * group's slots alone do not know etcd (a group may have more slots than the quorum allows, and a
 * member back up may not have caught up). A control-plane member takes a slot only while etcd, asked
 * live, can lose it on top of the members already down or holding a slot; it gives the slot back only
 * once its etcd member is healthy and caught up, the others not holding a slot healthy. Nodes pass
 * untouched; etcd that cannot be asked refuses a control-plane member's slot (fail closed).
 */
export class MachineRollingGate {
  /** Per lock group, the last slot request in line: this engine decides them one after another. */
  private readonly inLine = new Map<string, Promise<unknown>>()

  constructor(private readonly ports: MachineRollingGatePorts) {}

  /**
   * Takes the slot through `lock` when the quorum allows this member down, and looks again once it
   * holds it. This engine takes a group's requests one at a time; two replicas asking at once both
   * hold a slot for a moment, and then each gives back one it did not hold before (the machines try
   * again later, as FleetLock clients and the rolling agent do), so no two go down.
   */
  async lock<T extends { alreadyHeld: boolean }>(uuid: string, lock: () => Promise<T>, unlock: () => Promise<unknown>): Promise<T> {
    const group = this.ports.lockGroupOf(uuid)
    const previous = this.inLine.get(group) ?? Promise.resolve()
    const mine = previous.catch(() => undefined).then(() => this.lockNow(uuid, lock, unlock))
    this.inLine.set(group, mine)
    try {
      return await mine
    } finally {
      if (this.inLine.get(group) === mine) this.inLine.delete(group)
    }
  }

  private async lockNow<T extends { alreadyHeld: boolean }>(uuid: string, lock: () => Promise<T>, unlock: () => Promise<unknown>): Promise<T> {
    await this.mayLock(uuid)
    const taken = await lock()
    try {
      await this.mayLock(uuid)
    } catch (error) {
      if (!taken.alreadyHeld) await unlock()
      throw error
    }
    return taken
  }

  /** Throws 409 ETCD_QUORUM_AT_RISK when this control-plane member may not go down (or stay down) now. */
  async mayLock(uuid: string): Promise<void> {
    const member = this.controlPlaneMember(uuid)
    if (!member) return
    const holding = await this.controlPlaneHolders(uuid, member.cluster)
    holding.delete(member.hostname)
    const look = await this.ports.etcd.look(member.cluster)
    const down = new Set([...holding, member.hostname])
    const { allowance, voters, down: unhealthy } = liveControlPlaneAllowance(look, down)
    const left = allowance - down.size
    if (left < 0) {
      const why = [holding.size ? `holding a slot: ${[...holding].join(', ')}` : '', unhealthy.length ? `not healthy: ${unhealthy.map((candidate) => candidate.name || candidate.id).join(', ')}` : ''].filter(Boolean).join('; ')
      throw conflict('ETCD_QUORUM_AT_RISK', `${member.hostname} may not restart now: the etcd of cluster ${member.cluster} can lose ${controlPlaneAllowance(voters)} of its ${voters} voting members at once (${why}); try again later`, { cluster: member.cluster })
    }
  }

  /** Throws 409 ETCD_MEMBER_NOT_READY while this control-plane member's etcd is not back. */
  async mayUnlock(uuid: string): Promise<void> {
    const member = this.controlPlaneMember(uuid)
    if (!member) return
    const others = await this.controlPlaneHolders(uuid, member.cluster)
    others.delete(member.hostname)
    const wait = memberNotBack(await this.ports.etcd.look(member.cluster), member.hostname, others)
    if (wait) throw conflict('ETCD_MEMBER_NOT_READY', `${member.hostname} keeps its slot: ${wait.message}; give it back once it is`, { cluster: member.cluster, condition: wait.condition })
  }

  private controlPlaneMember(uuid: string): GatedMember | undefined {
    const member = this.ports.memberOf(uuid)
    return member?.role === 'control-plane' ? member : undefined
  }

  /** The hostnames of the control-plane members holding a slot in this machine's lock group. */
  private async controlPlaneHolders(uuid: string, cluster: string): Promise<Set<string>> {
    const group = (await this.ports.listGroups()).find((candidate) => candidate.name === this.ports.lockGroupOf(uuid))
    const hostnames = new Set<string>()
    for (const holder of group?.holders ?? []) {
      const member = this.ports.memberOf(holder.id)
      if (member?.role === 'control-plane' && member.cluster === cluster) hostnames.add(member.hostname)
    }
    return hostnames
  }
}
