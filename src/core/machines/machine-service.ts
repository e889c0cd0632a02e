import { normalizeMac } from '../../lib/mac.ts'
import { invalid, notFound } from '../errors.ts'
import { parseDiscovery, UUID_PATTERN, type MachineDisk, type MachineFacts, type MachineInterface } from './discovery-document.ts'
import { isMachineState, transition, type MachineEvent, type MachineState } from './machine-state.ts'

export interface Machine {
  uuid: string
  bootMac: string
  bootRandomId: string | null
  state: MachineState
  stateChangedAt: string
  facts: MachineFacts
  firstSeenAt: string
  lastSeenAt: string
  interfaces: MachineInterface[]
  disks: MachineDisk[]
  labels: Record<string, string>
}

export interface MachineFilter {
  state?: MachineState
  /** Any interface of the machine, not only the boot one. */
  mac?: string
  /** Every pair must be present. */
  labels?: Record<string, string>
  /** Only these machines. */
  uuids?: readonly string[]
}

/** The store port for machines; storage implements it. */
export interface MachineRepository {
  findMachine(uuid: string): Promise<Machine | undefined>
  listMachines(filter: MachineFilter): Promise<Machine[]>
  /**
   * Inserts or updates the machine row and replaces its interfaces and disks (labels are left alone);
   * with `childrenUnchanged` only the row is written (a re-report with the same hardware).
   */
  saveMachine(machine: Machine, options?: { childrenUnchanged?: boolean }): Promise<void>
  /** Stores a state change (machine.state, machine.stateChangedAt) and its event; nothing else is rewritten. */
  recordTransition(machine: Machine, event: MachineEvent): Promise<void>
  replaceLabels(uuid: string, labels: Record<string, string>): Promise<void>
  appendEvent(event: MachineEvent): Promise<void>
  listEvents(uuid: string): Promise<MachineEvent[]>
  /** Runs `work` atomically: all of its writes land or none do. */
  transaction<T>(work: (repository: MachineRepository) => Promise<T>): Promise<T>
}

export const LABEL_KEY_PATTERN = '^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$'
const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN)
const UUID = new RegExp(UUID_PATTERN)

/**
 * The inventory: discovery reports create and refresh machines, operators label them, and the
 * install authorization (install-authorization.ts) and, later, the scheduler move them through the state machine.
 */
export class MachineService {
  constructor(
    private readonly repository: MachineRepository,
    private readonly clock: () => Date = () => new Date(),
    /**
     * Told after every committed change of a machine, e.g. so that templates see its new facts; with
     * the machine as stored when the caller has it at hand (saves reading it back).
     */
    private readonly afterChange: (uuid: string, machine?: Machine) => Promise<void> | void = () => {},
  ) {}

  /**
   * Upserts a machine from a discovery report, in one transaction. A new machine starts `discovered`;
   * a `booting` one becomes `discovered`; any other machine keeps its state (an installed machine
   * booting discovery again, e.g. after a disk wipe, stays installed until an operator or the
   * lifecycle slice sends it back): only facts, interfaces, disks and last_seen change.
   */
  async discover(input: unknown, now: Date = this.clock()): Promise<{ isNew: boolean; machine: Machine }> {
    const result = await this.discoverInTransaction(input, now)
    await this.afterChange(result.machine.uuid, result.machine)
    return result
  }

  private async discoverInTransaction(input: unknown, now: Date): Promise<{ isNew: boolean; machine: Machine }> {
    const discovery = parseDiscovery(input)
    const at = now.toISOString()
    return this.repository.transaction(async (repository) => {
      const existing = await repository.findMachine(discovery.uuid)
      const reported = { bootMac: discovery.bootMac, bootRandomId: discovery.bootRandomId, facts: discovery.facts, interfaces: discovery.interfaces, disks: discovery.disks, lastSeenAt: at }
      if (!existing) {
        const machine: Machine = { uuid: discovery.uuid, state: 'discovered', stateChangedAt: at, firstSeenAt: at, labels: {}, ...reported }
        await repository.saveMachine(machine)
        await repository.appendEvent({ uuid: machine.uuid, fromState: null, toState: 'discovered', reason: 'first discovery report', at })
        return { isNew: true, machine }
      }
      let machine: Machine = { ...existing, ...reported }
      if (existing.state === 'booting') {
        const moved = transition(machine, 'discovered', 'discovery report', now)
        machine = moved.machine
        await repository.appendEvent(moved.event)
      }
      const childrenUnchanged = sameJson(existing.interfaces, machine.interfaces) && sameJson(existing.disks, machine.disks)
      await repository.saveMachine(machine, { childrenUnchanged })
      return { isNew: false, machine }
    })
  }

  list(filter: { state?: string; mac?: string; labels?: string[] } = {}): Promise<Machine[]> {
    const parsed: MachineFilter = {}
    if (filter.state !== undefined) {
      if (!isMachineState(filter.state)) throw invalid('INVALID_STATE', `"${filter.state}" is not a machine state`)
      parsed.state = filter.state
    }
    if (filter.mac !== undefined) {
      const mac = normalizeMac(filter.mac)
      if (!mac) throw invalid('INVALID_MAC', `"${filter.mac}" is not a MAC address`)
      parsed.mac = mac
    }
    if (filter.labels?.length) {
      parsed.labels = {}
      for (const pair of filter.labels) {
        const split = pair.indexOf('=')
        if (split <= 0) throw invalid('INVALID_LABEL_FILTER', `label filter "${pair}" must be key=value`)
        parsed.labels[pair.slice(0, split)] = pair.slice(split + 1)
      }
    }
    return this.repository.listMachines(parsed)
  }

  async get(uuid: string): Promise<Machine> {
    const machine = await this.repository.findMachine(checkUuid(uuid))
    if (!machine) throw notFound('MACHINE_NOT_FOUND', `machine ${uuid} does not exist; it appears once it has sent a discovery report`)
    return machine
  }

  async events(uuid: string): Promise<MachineEvent[]> {
    await this.get(uuid)
    return this.repository.listEvents(checkUuid(uuid))
  }

  async transition(uuid: string, to: string, reason: string, now: Date = this.clock()): Promise<{ machine: Machine; event: MachineEvent }> {
    const result = await this.transitionInTransaction(uuid, to, reason, now)
    await this.afterChange(result.machine.uuid)
    return result
  }

  private async transitionInTransaction(uuid: string, to: string, reason: string, now: Date): Promise<{ machine: Machine; event: MachineEvent }> {
    if (!isMachineState(to)) throw invalid('INVALID_STATE', `"${to}" is not a machine state`)
    return this.repository.transaction(async (repository) => {
      const machine = await repository.findMachine(checkUuid(uuid))
      if (!machine) throw notFound('MACHINE_NOT_FOUND', `machine ${uuid} does not exist`)
      const moved = transition(machine, to, reason, now)
      await repository.recordTransition(moved.machine, moved.event)
      return moved
    })
  }

  /** Replaces every label of a machine (PUT semantics). */
  async replaceLabels(uuid: string, labels: Record<string, string>): Promise<Record<string, string>> {
    for (const key of Object.keys(labels)) {
      if (!LABEL_KEY.test(key)) throw invalid('INVALID_LABEL', `label key "${key}" must match ${LABEL_KEY_PATTERN}`)
    }
    await this.repository.transaction(async (repository) => {
      if (!(await repository.findMachine(checkUuid(uuid)))) throw notFound('MACHINE_NOT_FOUND', `machine ${uuid} does not exist`)
      await repository.replaceLabels(uuid.toLowerCase(), labels)
    })
    await this.afterChange(uuid.toLowerCase())
    return labels
  }
}

/** A machine UUID in its canonical lowercase form, or a 400 that says what one looks like. */
export function checkUuid(uuid: string): string {
  if (!UUID.test(uuid)) throw invalid('INVALID_UUID', `"${uuid}" is not a machine UUID (8-4-4-4-12 hex digits)`)
  return uuid.toLowerCase()
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)
