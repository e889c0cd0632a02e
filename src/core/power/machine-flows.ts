import { conflict, notFound, SlipwayError } from '../errors.ts'
import { nextGeneration } from '../lifecycle/machine-credentials.ts'
import { findByIdentity, type MachineIdentity } from '../machines/install-authorization.ts'
import { checkUuid, type Machine, type MachineRepository } from '../machines/machine-service.ts'
import { transition, type MachineState } from '../machines/machine-state.ts'
import type { PowerResult, PowerService } from './power-service.ts'

/**
 * The flows that take a machine through its BMC from one life to the next:
 *
 * - re-provision (reinstall): the machine's next boot is from the network, its state goes back to
 *   `scheduled` (it keeps its role, hostname and address), and it is power-cycled (or powered on). The
 *   engine serves a machine that is not installed its discovery profile, so it boots the live image,
 *   asks for an install slot and installs its role again, as on its first install.
 * - deprovision: the machine leaves the scheduler's pool, its credential is revoked (what ran on its
 *   disk no longer speaks for it), its next boot is from the network, and it is power-cycled; its
 *   discovery agent is told to wipe its disks and reports when it has; the engine then powers it off.
 *   Returning it to the pool is deleting the deprovision.
 */

export const DEPROVISION_STATES = ['wipe_pending', 'wipe_failed', 'wiped', 'done'] as const
export type DeprovisionState = (typeof DEPROVISION_STATES)[number]

export interface Deprovision {
  machineUuid: string
  state: DeprovisionState
  requestedBy: string
  requestedAt: string
  wipedAt: string | null
  poweredOffAt: string | null
  /** The agent's report, or why the power-off failed. */
  message: string | null
}

export interface DeprovisionStore {
  find(uuid: string): Promise<Deprovision | undefined>
  list(): Promise<Deprovision[]>
  save(deprovision: Deprovision): Promise<void>
  remove(uuid: string): Promise<boolean>
}

/** Where a machine stands in a cluster, if it does, and the changes of its membership the flows make. */
export interface MachineMemberships {
  memberOf(uuid: string): Promise<{ cluster: string; hostname: string; role: string } | undefined>
  /** Before a control-plane member leaves its cluster: its etcd member is removed, quorum checked; its name, or null (a node, or none). */
  leaveEtcd(cluster: string, uuid: string): Promise<string | null>
  /** Before a control-plane member is re-provisioned: its etcd member is removed and added again, so that the new install joins as a new member. */
  rejoinEtcd(cluster: string, uuid: string): Promise<void>
  /** Takes the machine out of its cluster: membership, group, address reservation; it is `discovered` again. */
  release(cluster: string, uuid: string, reason: string): Promise<void>
}

export interface MemberRemoval {
  machine: Machine
  cluster: string
  hostname: string
  /** The etcd member removed (a control-plane machine's), or null. */
  etcdRemoved: string | null
  deprovision: Deprovision
}

export interface FlowResult {
  machine: Machine
  /** What was done to the power: `cycle` when the machine was on, `on` when it was off. */
  powerAction: 'cycle' | 'on'
  power: PowerResult
}

/** States a re-provision starts from: a machine with a role, installed or not, and not installing. */
const REINSTALLABLE: readonly MachineState[] = ['installed', 'install_failed', 'scheduled']
/** How long after its wipe report the machine is powered off: its agent's answer and last log lines go out first. */
export const WIPED_POWER_OFF_DELAY_MS = 3000
const MAX_REPORT_MESSAGE = 1024

export class MachineFlows {
  private readonly pending = new Set<Promise<void>>()

  constructor(
    private readonly machines: MachineRepository,
    private readonly deprovisions: DeprovisionStore,
    private readonly memberships: MachineMemberships,
    private readonly power: PowerService,
    /** Told after every committed change of a machine (its boot renders depend on its state). */
    private readonly afterChange: (uuid: string) => Promise<void> | void = () => {},
    private readonly clock: () => Date = () => new Date(),
    private readonly wait: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    private readonly warn: (message: string) => void = () => {},
  ) {}

  /**
   * Re-provisions a machine with a role. Nothing changes when its BMC cannot be read or refuses the
   * boot device; once the machine is `scheduled` again, a failing power call is reported as such and
   * the machine reinstalls on whatever next boots it from the network.
   */
  async reinstall(uuid: string, requestedBy: string): Promise<FlowResult> {
    const machine = await this.machine(uuid)
    await this.power.view(machine.uuid)
    if (!REINSTALLABLE.includes(machine.state)) {
      throw conflict(
        'MACHINE_NOT_PROVISIONED',
        `machine ${machine.uuid} is ${machine.state}: only a machine with a role (installed, install_failed or scheduled) can be re-provisioned${machine.state === 'installing' ? '; it is installing now' : '; the scheduler installs it once it has a role'}`,
        { uuid: machine.uuid, state: machine.state },
      )
    }
    if (await this.deprovisions.find(machine.uuid)) throw this.beingDeprovisioned(machine.uuid)
    const on = await this.prepareNetworkBoot(machine.uuid, requestedBy)
    // Its new install erases its etcd data: a control-plane member joins again as a new member.
    const membership = await this.memberships.memberOf(machine.uuid)
    if (membership?.role === 'control-plane' && machine.state === 'installed') await this.memberships.rejoinEtcd(membership.cluster, machine.uuid)
    const reason = `re-provision requested by ${requestedBy}: next boot from the network, then the install of its role again`
    const moved = await this.machines.transaction(async (repository) => {
      const current = (await repository.findMachine(machine.uuid))!
      if (current.state === 'scheduled') {
        await repository.appendEvent({ uuid: current.uuid, fromState: current.state, toState: current.state, reason, at: this.clock().toISOString() })
        return current
      }
      const result = transition(current, 'scheduled', reason, this.clock())
      await repository.recordTransition(result.machine, result.event)
      return result.machine
    })
    await this.afterChange(machine.uuid)
    return { machine: moved, ...(await this.restart(machine.uuid, on, requestedBy, 'it is scheduled and reinstalls on its next network boot')) }
  }

  /**
   * Takes a machine out of its cluster for good (it died, or is to be replaced): a control-plane
   * machine's etcd member is removed first, the quorum checked (nothing changes when etcd refuses or
   * cannot be asked, unless `force`: an etcd that is gone altogether); then its membership, its group and
   * its address reservation go, and it leaves the pool as being deprovisioned (`retire`). The scheduler
   * fills its place with the next machine available, which joins the running etcd.
   */
  async removeFromCluster(uuid: string, requestedBy: string, options: { force?: boolean } = {}): Promise<MemberRemoval> {
    const machine = await this.machine(uuid)
    const membership = await this.memberships.memberOf(machine.uuid)
    if (!membership) throw notFound('CLUSTER_MEMBER_NOT_FOUND', `machine ${machine.uuid} is in no cluster`)
    if (machine.state === 'installing') throw conflict('MACHINE_INSTALLING', `machine ${machine.uuid} is installing; remove it once it has reported`, { uuid: machine.uuid })
    const etcdRemoved = options.force ? null : await this.memberships.leaveEtcd(membership.cluster, machine.uuid)
    const how = options.force ? ' (forced: its etcd member was left alone)' : etcdRemoved ? ` (etcd member ${etcdRemoved} removed)` : ''
    await this.memberships.release(membership.cluster, machine.uuid, `removed from cluster ${membership.cluster} by ${requestedBy}${how}`)
    const deprovision = await this.retire(machine.uuid, requestedBy)
    return { machine: await this.machine(machine.uuid), cluster: membership.cluster, hostname: membership.hostname, etcdRemoved, deprovision }
  }

  /** The cluster a machine is a member of, if any. */
  membershipOf(uuid: string): Promise<{ cluster: string; hostname: string; role: string } | undefined> {
    return this.memberships.memberOf(checkUuid(uuid))
  }

  /** Takes a machine out of service: wipe on its next discovery boot, then power off. */
  async deprovision(uuid: string, requestedBy: string): Promise<FlowResult & { deprovision: Deprovision }> {
    const machine = await this.machine(uuid)
    await this.power.view(machine.uuid)
    const membership = await this.memberships.memberOf(machine.uuid)
    if (membership) {
      throw conflict(
        'MACHINE_IN_CLUSTER',
        `machine ${machine.uuid} is ${membership.hostname}, a ${membership.role} member of cluster ${membership.cluster}: take it out of the cluster first (destroy the cluster, which returns its machines to the pool)`,
        { uuid: machine.uuid, ...membership },
      )
    }
    if (machine.state === 'installing') throw conflict('MACHINE_INSTALLING', `machine ${machine.uuid} is installing; deprovision it once it has reported`, { uuid: machine.uuid })
    const on = await this.prepareNetworkBoot(machine.uuid, requestedBy)
    const deprovision = await this.recordDeprovision(machine.uuid, requestedBy, null)
    const restarted = await this.restart(machine.uuid, on, requestedBy, 'its wipe waits for its next network boot')
    return { machine: await this.machine(machine.uuid), deprovision, ...restarted }
  }

  /**
   * A machine taken out of its cluster keeps the cluster's keys (and a control-plane member's etcd
   * data) on its disk: it leaves the pool as being deprovisioned (credential revoked, wiped on its next
   * network boot). One with a BMC is sent there at once (network boot, power cycle), as far as it
   * answers: a machine taken out because it died may not, which is recorded, not an error.
   */
  async retire(uuid: string, requestedBy: string): Promise<Deprovision> {
    const machine = await this.machine(uuid)
    if (!(await this.power.configured(machine.uuid))) return this.recordDeprovision(machine.uuid, requestedBy, 'no BMC: its disks are wiped when it next boots from the network')
    try {
      const on = await this.prepareNetworkBoot(machine.uuid, requestedBy)
      const deprovision = await this.recordDeprovision(machine.uuid, requestedBy, null)
      await this.restart(machine.uuid, on, requestedBy, 'its wipe waits for its next network boot')
      return deprovision
    } catch (error) {
      if (!(error instanceof SlipwayError)) throw error
      const recorded = await this.deprovisions.find(machine.uuid)
      return recorded ?? this.recordDeprovision(machine.uuid, requestedBy, `its BMC did not take it to a network boot (${error.message}): its disks are wiped when it next boots from the network`)
    }
  }

  /** Retires each machine in turn (a destroyed cluster's, when its disks are to be wiped). */
  async retireAll(uuids: readonly string[], requestedBy: string): Promise<Deprovision[]> {
    const retired: Deprovision[] = []
    for (const uuid of uuids) retired.push(await this.retire(uuid, requestedBy))
    return retired
  }

  /** Revokes the machine's credential and records its deprovision (`wipe_pending`): it leaves the pool. */
  private async recordDeprovision(uuid: string, requestedBy: string, message: string | null): Promise<Deprovision> {
    const machine = await this.machine(uuid)
    const now = this.clock()
    const deprovision: Deprovision = { machineUuid: machine.uuid, state: 'wipe_pending', requestedBy, requestedAt: now.toISOString(), wipedAt: null, poweredOffAt: null, message }
    await this.machines.transaction(async (repository) => {
      const current = (await repository.findMachine(machine.uuid))!
      const credential = nextGeneration(current.credential, now, 0)
      await repository.setCredential(current.uuid, credential)
      await repository.appendEvent({
        uuid: current.uuid,
        fromState: current.state,
        toState: current.state,
        reason: `deprovision requested by ${requestedBy}: its disks are wiped on its next discovery boot, then it is powered off; credential generation ${credential.generation}, the previous one no longer counts`,
        at: now.toISOString(),
      })
    })
    await this.deprovisions.save(deprovision)
    await this.afterChange(machine.uuid)
    return deprovision
  }

  async deprovisionOf(uuid: string): Promise<Deprovision> {
    const found = await this.deprovisions.find(checkUuid(uuid))
    if (!found) throw notFound('DEPROVISION_NOT_FOUND', `machine ${uuid} is not being deprovisioned`)
    return found
  }

  listDeprovisions(): Promise<Deprovision[]> {
    return this.deprovisions.list()
  }

  /** Returns a machine to the scheduler's pool (whatever its deprovision reached). */
  async cancelDeprovision(uuid: string, requestedBy: string): Promise<void> {
    const machine = await this.machine(uuid)
    if (!(await this.deprovisions.remove(machine.uuid))) throw notFound('DEPROVISION_NOT_FOUND', `machine ${machine.uuid} is not being deprovisioned`)
    await this.machines.appendEvent({ uuid: machine.uuid, fromState: machine.state, toState: machine.state, reason: `returned to the pool by ${requestedBy} (deprovision removed)`, at: this.clock().toISOString() })
    await this.afterChange(machine.uuid)
  }

  /** Whether the machine's discovery agent is to wipe its disks now (the answer to its report says so). */
  async wipeRequested(uuid: string): Promise<boolean> {
    return (await this.deprovisions.find(uuid))?.state === 'wipe_pending'
  }

  /**
   * The discovery agent's report of its wipe, naming the machine by uuid and boot MAC (as install
   * reports do). A successful wipe is followed, a moment later, by a hard power-off through the BMC:
   * the live image holds nothing to lose. A failed wipe leaves the machine on for a person to look at.
   */
  async reportWipe(identity: MachineIdentity, outcome: 'success' | 'fail', details: string | undefined): Promise<Deprovision> {
    const machine = await findByIdentity(this.machines, identity)
    const current = await this.deprovisions.find(machine.uuid)
    if (!current || current.state !== 'wipe_pending') {
      throw conflict('WIPE_NOT_REQUESTED', `machine ${machine.uuid} has no wipe pending${current ? ` (its deprovision is ${current.state})` : ''}: there is nothing to report`, { uuid: machine.uuid })
    }
    const at = this.clock().toISOString()
    const message = details?.trim().slice(0, MAX_REPORT_MESSAGE) || null
    const reported: Deprovision = { ...current, state: outcome === 'success' ? 'wiped' : 'wipe_failed', wipedAt: outcome === 'success' ? at : null, message }
    await this.deprovisions.save(reported)
    await this.machines.appendEvent({ uuid: machine.uuid, fromState: machine.state, toState: machine.state, reason: `wipe report: ${outcome}${message ? `: ${message}` : ''}`, at })
    if (outcome === 'success') this.track(this.powerOffAfterWipe(machine.uuid))
    return reported
  }

  /** Waits for the power-offs in flight (the engine's shutdown). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.pending])
  }

  private async powerOffAfterWipe(uuid: string): Promise<void> {
    await this.wait(WIPED_POWER_OFF_DELAY_MS)
    const current = await this.deprovisions.find(uuid)
    // Returned to the pool meanwhile: its power is no longer this flow's to take.
    if (current?.state !== 'wiped') return
    try {
      await this.power.power(uuid, 'off', 'engine:deprovision')
      await this.deprovisions.save({ ...current, state: 'done', poweredOffAt: this.clock().toISOString() })
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error)
      await this.deprovisions.save({ ...current, message: `${current.message ? `${current.message}; ` : ''}power off failed: ${why}` })
      this.warn(`machine ${uuid} is wiped but could not be powered off: ${why}`)
    }
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => this.warn(String(error))).finally(() => this.pending.delete(tracked))
    this.pending.add(tracked)
  }

  private async machine(uuid: string): Promise<Machine> {
    const machine = await this.machines.findMachine(checkUuid(uuid))
    if (!machine) throw notFound('MACHINE_NOT_FOUND', `machine ${uuid} does not exist; it appears once it has sent a discovery report`)
    return machine
  }

  private beingDeprovisioned(uuid: string): SlipwayError {
    return conflict('MACHINE_DEPROVISIONING', `machine ${uuid} is being deprovisioned; return it to the pool first (DELETE /api/v1/machines/${uuid}/deprovision)`, { uuid })
  }

  /** Reads the power (so that nothing changes when the BMC cannot be reached) and sets the next boot to the network, once. */
  private async prepareNetworkBoot(uuid: string, requestedBy: string): Promise<boolean> {
    const { power } = await this.power.status(uuid, requestedBy)
    await this.power.setBootDevice(uuid, 'network', false, requestedBy)
    return power === 'on'
  }

  /** A machine that is on is cycled, one that is off (or whose state the BMC did not tell) powered on. */
  private async restart(uuid: string, on: boolean, requestedBy: string, meanwhile: string): Promise<Omit<FlowResult, 'machine'>> {
    const powerAction = on ? 'cycle' : 'on'
    try {
      return { powerAction, power: await this.power.power(uuid, powerAction, requestedBy) }
    } catch (error) {
      if (!(error instanceof SlipwayError)) throw error
      throw new SlipwayError(error.kind, error.code, `${error.message} (power ${powerAction} failed: ${meanwhile})`, error.details)
    }
  }
}
