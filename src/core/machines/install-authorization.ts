import { normalizeMac } from '../../lib/mac.ts'
import { conflict, invalid, notFound, SlipwayError } from '../errors.ts'
import { checkUuid, type Machine, type MachineRepository } from './machine-service.ts'
import { transition, type MachineEvent } from './machine-state.ts'
import { nextGeneration } from '../lifecycle/machine-credentials.ts'

/** How many disk installs may run at once, and how long a slot may be held before it is taken back. */
export interface InstallPolicy {
  maxConcurrent: number
  timeoutSeconds: number
}

/** How a machine names itself to the installer routes: its uuid and its boot MAC, both required. */
export interface MachineIdentity {
  uuid?: string | undefined
  mac?: string | undefined
}

export type InstallAnswer =
  | { authorized: true; machine: Machine }
  | { authorized: false; machine: Machine; installing: number; maxConcurrent: number; message: string }

export type InstallOutcome = 'success' | 'fail'

export const INSTALL_TIMED_OUT = 'install timed out'
export const INSTALL_GRANTED = 'install authorization granted'
export const installDenied = (installing: number, maxConcurrent: number) => `install authorization denied: ${installing}/${maxConcurrent} installing`

/**
 * Pure policy: which installing machines have held their slot past the timeout, and whether the
 * asking machine fits in what is left. A slot starts when the machine entered `installing`.
 */
export function planInstallSlots(installing: readonly Pick<Machine, 'uuid' | 'stateChangedAt'>[], policy: InstallPolicy, now: Date): { expired: string[]; held: number; free: boolean } {
  const oldestLive = now.getTime() - policy.timeoutSeconds * 1000
  const expired = installing.filter((machine) => Date.parse(machine.stateChangedAt) < oldestLive).map((machine) => machine.uuid)
  const held = installing.length - expired.length
  return { expired, held, free: held < policy.maxConcurrent }
}

const MAX_REASON_DETAILS = 1024

/**
 * Enjoliver's install gate, with the release it lacked: a scheduled machine asks before writing its
 * disk and gets one of `maxConcurrent` slots; it gives the slot back by reporting success or failure,
 * and a slot held past `timeoutSeconds` (a crashed installer never reports) is taken back as a
 * failed install. Count and grant happen in one transaction, so concurrent asks never exceed the limit.
 */
export class InstallAuthorization {
  constructor(
    private readonly repository: MachineRepository,
    private readonly policy: InstallPolicy,
    private readonly clock: () => Date = () => new Date(),
    /** Told after every committed change of a machine (see MachineService). */
    private readonly afterChange: (uuid: string) => Promise<void> | void = () => {},
  ) {
    if (!Number.isInteger(policy.maxConcurrent) || policy.maxConcurrent < 1) throw new Error('install.maxConcurrent must be an integer >= 1')
    if (!(policy.timeoutSeconds > 0)) throw new Error('install.timeoutSeconds must be > 0')
  }

  async authorizeInstall(identity: MachineIdentity, now: Date = this.clock()): Promise<InstallAnswer> {
    const { answer, changed } = await this.repository.transaction(async (repository) => {
      const machine = await findByIdentity(repository, identity)
      const changed: string[] = []
      const installing = await repository.listMachines({ state: 'installing' })
      const slots = planInstallSlots(installing, this.policy, now)
      for (const uuid of slots.expired) {
        await this.move(repository, installing.find((candidate) => candidate.uuid === uuid)!, 'install_failed', INSTALL_TIMED_OUT, now)
        changed.push(uuid)
      }
      // Re-read: the asking machine may itself have just timed out.
      const current = slots.expired.includes(machine.uuid) ? { ...machine, state: 'install_failed' as const } : machine
      if (current.state === 'installing') return { answer: { authorized: true, machine: current } as InstallAnswer, changed }
      if (current.state !== 'scheduled') {
        // Returned, not thrown: the timeouts swept above must commit even though this ask is refused.
        const refusal = conflict('INVALID_TRANSITION', `machine ${current.uuid} is ${current.state}; only a scheduled machine can be authorized to install (an operator moves it back to scheduled to retry)`, {
          uuid: current.uuid,
          from: current.state,
          to: 'installing',
        })
        return { answer: refusal, changed }
      }
      if (slots.free) {
        const moved = await this.move(repository, current, 'installing', INSTALL_GRANTED, now)
        // A new install, a new credential: whatever the machine ran before no longer speaks for it.
        await repository.setCredential(current.uuid, nextGeneration(current.credential, now, 0))
        changed.push(current.uuid)
        return { answer: { authorized: true, machine: moved } as InstallAnswer, changed }
      }
      const reason = installDenied(slots.held, this.policy.maxConcurrent)
      const denied = await this.move(repository, current, 'scheduled', reason, now)
      changed.push(current.uuid)
      const answer: InstallAnswer = {
        authorized: false,
        machine: denied,
        installing: slots.held,
        maxConcurrent: this.policy.maxConcurrent,
        message: `${reason}; ask again later`,
      }
      return { answer, changed }
    })
    for (const uuid of changed) await this.afterChange(uuid)
    if (answer instanceof SlipwayError) throw answer
    return answer
  }

  /** The installer's report: frees the slot. Only an installing machine can report. */
  async reportInstall(identity: MachineIdentity, outcome: InstallOutcome, details?: string, now: Date = this.clock()): Promise<Machine> {
    const machine = await this.repository.transaction(async (repository) => {
      const machine = await findByIdentity(repository, identity)
      if (machine.state !== 'installing') {
        throw conflict('INVALID_TRANSITION', `machine ${machine.uuid} is ${machine.state}, not installing: there is no install to report (it may have timed out; see its events)`, {
          uuid: machine.uuid,
          from: machine.state,
          to: outcome === 'success' ? 'installed' : 'install_failed',
        })
      }
      const text = details?.trim().slice(0, MAX_REASON_DETAILS)
      const reason = `install report: ${outcome}${text ? `: ${text}` : ''}`
      return this.move(repository, machine, outcome === 'success' ? 'installed' : 'install_failed', reason, now)
    })
    await this.afterChange(machine.uuid)
    return machine
  }

  private async move(repository: MachineRepository, machine: Machine, to: Machine['state'], reason: string, now: Date): Promise<Machine> {
    const moved: { machine: Machine; event: MachineEvent } = transition(machine, to, reason, now)
    await repository.recordTransition(moved.machine, moved.event)
    return moved.machine
  }
}

/**
 * The machine named by both halves of its identity. One half is not enough: a MAC can be read off the
 * boot network and a uuid off a boot request, and either alone would let anyone move a machine.
 */
export async function findByIdentity(repository: Pick<MachineRepository, 'findMachine'>, identity: MachineIdentity): Promise<Machine> {
  if (!identity.uuid || !identity.mac) throw invalid('MACHINE_IDENTITY_MISSING', 'name the machine with both ?uuid= (its SMBIOS uuid) and ?mac= (its boot MAC)')
  const uuid = checkUuid(identity.uuid)
  const mac = normalizeMac(identity.mac)
  if (!mac) throw invalid('INVALID_MAC', `mac "${identity.mac}" is not a MAC address; use 52:54:00:aa:bb:cc or 52-54-00-aa-bb-cc`)
  const machine = await repository.findMachine(uuid)
  // The same answer whether the uuid is unknown or boots from another MAC: nothing to learn by probing.
  if (!machine || machine.bootMac !== mac) throw notFound('MACHINE_NOT_FOUND', `no machine ${uuid} booting from ${mac} is known; it appears once it has sent a discovery report`)
  return machine
}
