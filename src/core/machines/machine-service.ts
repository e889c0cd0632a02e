import { normalizeMac } from '../../lib/mac.ts'
import { plainAddress } from '../../lib/ipv4.ts'
import { conflict, invalid, notFound } from '../errors.ts'
import { FIRST_CREDENTIAL, nextGeneration, type CredentialState } from '../lifecycle/machine-credentials.ts'
import { parseDiscovery, UUID_PATTERN, type Discovery, type MachineDisk, type MachineFacts, type MachineInterface } from './discovery-document.ts'
import { describeConflict, identityConflict, MAX_OPEN_CONFLICTS, type ConflictKind, type ConflictState, type MachineConflict } from './machine-identity.ts'
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
  /** The generation of the machine's credential (machine-credentials.ts). */
  credential: CredentialState
  /** Until when an operator lets the machine fetch its secret-bearing config again without an install slot. */
  reprovisionUntil: string | null
}

export interface MachineFilter {
  state?: MachineState
  /** Any interface of the machine, not only the boot one. */
  mac?: string
  /** Every pair must be present. */
  labels?: Record<string, string>
  /** Only these machines. */
  uuids?: readonly string[]
  /** Leaves out machines being taken out of service (a deprovision is pending or done): the scheduler's pool. */
  inService?: true
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
  /** Stores a machine's credential state (and nothing else). */
  setCredential(uuid: string, credential: CredentialState): Promise<void>
  setReprovisionUntil(uuid: string, until: string | null): Promise<void>
  /**
   * Records a claim: a new open conflict, or one more report of an open conflict of the same kind on
   * the same machine (which then holds the latest claim). `undefined` when `maxOpen` conflicts are
   * already open.
   */
  recordConflict(claim: ConflictClaim, maxOpen: number): Promise<{ conflict: MachineConflict; first: boolean } | undefined>
  listConflicts(filter: { state?: ConflictState }): Promise<MachineConflict[]>
  findConflict(id: number): Promise<(MachineConflict & { report: Discovery }) | undefined>
  resolveConflict(id: number, state: Exclude<ConflictState, 'open'>, at: string, by: string): Promise<void>
  /** Runs `work` atomically: all of its writes land or none do. */
  transaction<T>(work: (repository: MachineRepository) => Promise<T>): Promise<T>
}

/** A report that claimed a known machine's identity, as recorded. */
export interface ConflictClaim {
  kind: ConflictKind
  machineUuid: string
  report: Discovery
  claimedIpv4: string | null
  sourceIp: string
  at: string
}

/** Where a report came from, as the transport saw it. */
export interface ReportSource {
  address: string
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
    /** Told of every refused report (a metric counts them). */
    private readonly conflictRecorded: (kind: ConflictKind) => void = () => {},
    /** Whether a machine's address is part of its identity (off only where machines reach the engine through NAT). */
    private readonly identity: { addressIsIdentity: boolean } = { addressIsIdentity: true },
  ) {}

  /**
   * Upserts a machine from a discovery report, in one transaction. A new machine starts `discovered`;
   * a `booting` one becomes `discovered`; any other machine keeps its state (an installed machine
   * booting discovery again, e.g. after a disk wipe, stays installed until an operator or the
   * lifecycle slice sends it back): only facts, interfaces, disks and last_seen change. A report that
   * claims another machine's identity (machine-identity.ts) changes nothing: it is recorded as a
   * conflict and refused with 409 MACHINE_IDENTITY_CONFLICT.
   */
  async discover(input: unknown, now: Date = this.clock(), source: ReportSource = { address: 'unknown' }): Promise<{ isNew: boolean; machine: Machine }> {
    const discovery = parseDiscovery(input)
    const result = await this.repository.transaction(async (repository) => {
      const existing = await repository.findMachine(discovery.uuid)
      const macHolder = existing ? undefined : (await repository.listMachines({ mac: discovery.bootMac })).find((candidate) => candidate.bootMac === discovery.bootMac)
      const claim = identityConflict(discovery, existing, macHolder, this.identity.addressIsIdentity ? plainAddress(source.address) : undefined)
      if (!claim) return this.applyReport(repository, discovery, existing, now)
      const at = now.toISOString()
      const claimedIpv4 = discovery.interfaces.find((nic) => nic.isBoot)?.ipv4 ?? null
      const recorded = await repository.recordConflict({ kind: claim.kind, machineUuid: claim.machine.uuid, report: discovery, claimedIpv4, sourceIp: source.address, at }, MAX_OPEN_CONFLICTS)
      // One event when a conflict opens; when no more can be kept open, one for each refused claim.
      if (!recorded || recorded.first) {
        const description = describeConflict(claim.kind, { claimedUuid: discovery.uuid, claimedMac: discovery.bootMac, claimedIpv4, sourceIp: source.address })
        const kept = recorded ? `identity conflict #${recorded.conflict.id}` : `identity conflict (not kept: ${MAX_OPEN_CONFLICTS} conflicts are open)`
        await repository.appendEvent({ uuid: claim.machine.uuid, fromState: claim.machine.state, toState: claim.machine.state, reason: `${kept}: ${description}; not applied (an operator accepts or dismisses it)`, at })
      }
      // Returned, not thrown: the conflict must commit although the report is refused.
      return { refused: { kind: claim.kind, conflictId: recorded?.conflict.id ?? null } }
    })
    if ('refused' in result) {
      this.conflictRecorded(result.refused.kind)
      throw conflict(
        'MACHINE_IDENTITY_CONFLICT',
        `this report claims the identity (uuid, boot MAC or address) of a machine the inventory already knows; it was not applied and is kept for an operator to accept or dismiss${result.refused.conflictId === null ? '' : ` (conflict ${result.refused.conflictId})`}`,
        { kind: result.refused.kind, ...(result.refused.conflictId === null ? {} : { conflict: result.refused.conflictId }) },
      )
    }
    await this.afterChange(result.machine.uuid, result.machine)
    return result
  }

  private async applyReport(repository: MachineRepository, discovery: Discovery, existing: Machine | undefined, now: Date): Promise<{ isNew: boolean; machine: Machine }> {
    const at = now.toISOString()
    const reported = { bootMac: discovery.bootMac, bootRandomId: discovery.bootRandomId, facts: discovery.facts, interfaces: discovery.interfaces, disks: discovery.disks, lastSeenAt: at }
    if (!existing) {
      const machine: Machine = { uuid: discovery.uuid, state: 'discovered', stateChangedAt: at, firstSeenAt: at, labels: {}, credential: FIRST_CREDENTIAL, reprovisionUntil: null, ...reported }
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
  }

  /** Identity conflicts, newest first. */
  conflicts(filter: { state?: string } = {}): Promise<MachineConflict[]> {
    if (filter.state !== undefined && !['open', 'accepted', 'dismissed'].includes(filter.state)) throw invalid('INVALID_CONFLICT_STATE', `"${filter.state}" is not a conflict state (open, accepted, dismissed)`)
    return this.repository.listConflicts(filter.state === undefined ? {} : { state: filter.state as ConflictState })
  }

  /**
   * An operator's decision on an open conflict: `accept` applies the claiming report as if it had
   * made no claim (the machine moves to the claimed MAC or address, or the claiming machine is added);
   * `dismiss` leaves the inventory as it is. Either way the machine's history says who decided.
   */
  async resolveConflict(id: number, decision: 'accept' | 'dismiss', by: string, now: Date = this.clock()): Promise<MachineConflict> {
    const applied = await this.repository.transaction(async (repository) => {
      const found = await repository.findConflict(id)
      if (!found) throw notFound('CONFLICT_NOT_FOUND', `identity conflict ${id} does not exist`)
      if (found.state !== 'open') throw conflict('CONFLICT_RESOLVED', `identity conflict ${id} was already ${found.state} by ${found.resolvedBy ?? 'an operator'} at ${found.resolvedAt ?? 'an earlier time'}`)
      const at = now.toISOString()
      let machine: Machine | undefined
      if (decision === 'accept') machine = (await this.applyReport(repository, found.report, await repository.findMachine(found.report.uuid), now)).machine
      await repository.resolveConflict(id, decision === 'accept' ? 'accepted' : 'dismissed', at, by)
      const holder = await repository.findMachine(found.machineUuid)
      if (holder) await repository.appendEvent({ uuid: holder.uuid, fromState: holder.state, toState: holder.state, reason: `identity conflict #${id} ${decision === 'accept' ? 'accepted (the report was applied)' : 'dismissed'} by ${by}`, at })
      const { report: _report, ...record } = found
      return { record: { ...record, state: decision === 'accept' ? ('accepted' as const) : ('dismissed' as const), resolvedAt: at, resolvedBy: by }, changed: [found.machineUuid, ...(machine ? [machine.uuid] : [])] }
    })
    for (const uuid of new Set(applied.changed)) await this.afterChange(uuid)
    return applied.record
  }

  /**
   * A new credential generation for a machine: `graceSeconds` > 0 rotates (the current credential
   * keeps counting that long, so the machine can fetch its next config with it), 0 revokes at once.
   */
  async renewCredential(uuid: string, graceSeconds: number, reason: string, now: Date = this.clock()): Promise<Machine> {
    const machine = await this.repository.transaction(async (repository) => {
      const machine = await repository.findMachine(checkUuid(uuid))
      if (!machine) throw notFound('MACHINE_NOT_FOUND', `machine ${uuid} does not exist`)
      const credential = nextGeneration(machine.credential, now, graceSeconds)
      await repository.setCredential(machine.uuid, credential)
      await repository.appendEvent({ uuid: machine.uuid, fromState: machine.state, toState: machine.state, reason: `${reason}: credential generation ${credential.generation}${graceSeconds > 0 ? `, the previous one counts until ${credential.previousValidUntil}` : ', the previous one no longer counts'}`, at: now.toISOString() })
      return { ...machine, credential }
    })
    await this.afterChange(machine.uuid)
    return machine
  }

  /** Opens (or, with 0 seconds, closes) the window in which the machine is served its secret-bearing config again. */
  async setReprovisionWindow(uuid: string, seconds: number, by: string, now: Date = this.clock()): Promise<Machine> {
    const machine = await this.repository.transaction(async (repository) => {
      const machine = await repository.findMachine(checkUuid(uuid))
      if (!machine) throw notFound('MACHINE_NOT_FOUND', `machine ${uuid} does not exist`)
      const until = seconds > 0 ? new Date(now.getTime() + seconds * 1000).toISOString() : null
      await repository.setReprovisionUntil(machine.uuid, until)
      await repository.appendEvent({ uuid: machine.uuid, fromState: machine.state, toState: machine.state, reason: until ? `re-provision window opened by ${by} until ${until}` : `re-provision window closed by ${by}`, at: now.toISOString() })
      return { ...machine, reprovisionUntil: until }
    })
    await this.afterChange(machine.uuid)
    return machine
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
