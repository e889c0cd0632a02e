import type { Discovery } from '../../src/core/machines/discovery-document.ts'
import type { ConflictState, MachineConflict } from '../../src/core/machines/machine-identity.ts'
import type { ConflictClaim, Machine, MachineFilter, MachineRepository } from '../../src/core/machines/machine-service.ts'
import type { MachineEvent } from '../../src/core/machines/machine-state.ts'
import type { CredentialState } from '../../src/core/lifecycle/machine-credentials.ts'
import { failing } from './intentional-error.ts'
import { JournaledStore } from './journaled-store.ts'

type StoredConflict = MachineConflict & { report: Discovery }

interface MachineState {
  machines: Map<string, Machine>
  events: MachineEvent[]
  conflicts: StoredConflict[]
}

/**
 * The machine store with the given machines, in memory; storage/repositories/machines.ts is the real
 * one, tested against SQLite and PostgreSQL. `machines`, `events` and `conflicts` are the live
 * tables: a test may read them, or set a machine directly to arrange a case.
 */
export class FixedMachineRepository extends JournaledStore<MachineState> implements MachineRepository {
  constructor(machines: Machine[] = []) {
    super({ machines: new Map(machines.map((machine) => [machine.uuid, structuredClone(machine)])), events: [], conflicts: [] })
  }

  get machines(): Map<string, Machine> {
    return this.state.machines
  }

  get events(): MachineEvent[] {
    return this.state.events
  }

  get conflicts(): StoredConflict[] {
    return this.state.conflicts
  }

  protected snapshot(): FixedMachineRepository {
    // Machines and events are replaced, never changed in place; conflicts are updated in place, so copied.
    const draft = new FixedMachineRepository()
    for (const [uuid, machine] of this.state.machines) draft.state.machines.set(uuid, machine)
    draft.state.events = [...this.state.events]
    draft.state.conflicts = this.state.conflicts.map((conflict) => ({ ...conflict }))
    return draft
  }

  async findMachine(uuid: string): Promise<Machine | undefined> {
    const machine = this.state.machines.get(uuid)
    return machine && structuredClone(machine)
  }

  async listMachines(filter: MachineFilter): Promise<Machine[]> {
    return structuredClone(
      [...this.state.machines.values()].filter(
        (machine) =>
          (!filter.state || machine.state === filter.state) &&
          (!filter.mac || machine.interfaces.some((nic) => nic.mac === filter.mac)) &&
          (!filter.uuids || filter.uuids.includes(machine.uuid)) &&
          Object.entries(filter.labels ?? {}).every(([key, value]) => machine.labels[key] === value),
      ),
    )
  }

  async saveMachine(machine: Machine): Promise<void> {
    const copy = structuredClone(machine)
    this.write((state) => {
      const stored = state.machines.get(copy.uuid)
      // Labels, the credential and the re-provision window have writers of their own.
      state.machines.set(copy.uuid, stored ? { ...copy, labels: stored.labels, credential: stored.credential, reprovisionUntil: stored.reprovisionUntil } : copy)
    })
  }

  async recordTransition(machine: Machine, event: MachineEvent): Promise<void> {
    const { uuid, state: machineState, stateChangedAt } = machine
    const copy = { ...event }
    this.write((state) => {
      state.machines.set(uuid, { ...state.machines.get(uuid)!, state: machineState, stateChangedAt })
      state.events.push(copy)
    })
  }

  async replaceLabels(uuid: string, labels: Record<string, string>): Promise<void> {
    const copy = { ...labels }
    this.write((state) => void state.machines.set(uuid, { ...state.machines.get(uuid)!, labels: copy }))
  }

  async appendEvent(event: MachineEvent): Promise<void> {
    const copy = { ...event }
    this.write((state) => void state.events.push(copy))
  }

  async listEvents(uuid: string): Promise<MachineEvent[]> {
    return structuredClone(this.state.events.filter((event) => event.uuid === uuid))
  }

  async setCredential(uuid: string, credential: CredentialState): Promise<void> {
    const copy = { ...credential }
    this.write((state) => void state.machines.set(uuid, { ...state.machines.get(uuid)!, credential: copy }))
  }

  async setReprovisionUntil(uuid: string, until: string | null): Promise<void> {
    this.write((state) => void state.machines.set(uuid, { ...state.machines.get(uuid)!, reprovisionUntil: until }))
  }

  async recordConflict(claim: ConflictClaim, maxOpen: number): Promise<{ conflict: MachineConflict; first: boolean } | undefined> {
    const same = this.state.conflicts.find((conflict) => conflict.state === 'open' && conflict.kind === claim.kind && conflict.machineUuid === claim.machineUuid)
    if (same) {
      // One more report of an open conflict: it holds the latest claim.
      const update = { reports: same.reports + 1, lastSeenAt: claim.at, sourceIp: claim.sourceIp, claimedUuid: claim.report.uuid, claimedMac: claim.report.bootMac, claimedIpv4: claim.claimedIpv4, report: structuredClone(claim.report) }
      this.write((state) => void Object.assign(state.conflicts.find((conflict) => conflict.id === same.id)!, update))
      return { conflict: withoutReport({ ...same, ...update }), first: false }
    }
    if (this.state.conflicts.filter((conflict) => conflict.state === 'open').length >= maxOpen) return undefined
    const conflict: StoredConflict = {
      id: this.state.conflicts.length + 1,
      kind: claim.kind,
      machineUuid: claim.machineUuid,
      claimedUuid: claim.report.uuid,
      claimedMac: claim.report.bootMac,
      claimedIpv4: claim.claimedIpv4,
      sourceIp: claim.sourceIp,
      reports: 1,
      firstSeenAt: claim.at,
      lastSeenAt: claim.at,
      state: 'open',
      resolvedAt: null,
      resolvedBy: null,
      report: structuredClone(claim.report),
    }
    this.write((state) => void state.conflicts.push(structuredClone(conflict)))
    return { conflict: withoutReport(conflict), first: true }
  }

  async listConflicts(filter: { state?: ConflictState }): Promise<MachineConflict[]> {
    // Newest first, as the real repository lists them.
    return this.state.conflicts.filter((conflict) => !filter.state || conflict.state === filter.state).reverse().map(withoutReport)
  }

  async findConflict(id: number): Promise<StoredConflict | undefined> {
    const conflict = this.state.conflicts.find((candidate) => candidate.id === id)
    return conflict && structuredClone(conflict)
  }

  async resolveConflict(id: number, resolved: Exclude<ConflictState, 'open'>, at: string, by: string): Promise<void> {
    this.write((state) => {
      const conflict = state.conflicts.find((candidate) => candidate.id === id)
      if (conflict) Object.assign(conflict, { state: resolved, resolvedAt: at, resolvedBy: by })
    })
  }

  transaction<T>(work: (repository: MachineRepository) => Promise<T>): Promise<T> {
    return this.serially(work)
  }
}

/** The machine store with no machine. */
export class EmptyMachineRepository extends FixedMachineRepository {
  constructor() {
    super([])
  }
}

/** A machine store whose every call fails. */
export class BrokenMachineRepository implements MachineRepository {
  findMachine(): Promise<Machine | undefined> {
    return failing('MachineRepository.findMachine')
  }
  listMachines(): Promise<Machine[]> {
    return failing('MachineRepository.listMachines')
  }
  saveMachine(): Promise<void> {
    return failing('MachineRepository.saveMachine')
  }
  recordTransition(): Promise<void> {
    return failing('MachineRepository.recordTransition')
  }
  replaceLabels(): Promise<void> {
    return failing('MachineRepository.replaceLabels')
  }
  appendEvent(): Promise<void> {
    return failing('MachineRepository.appendEvent')
  }
  listEvents(): Promise<MachineEvent[]> {
    return failing('MachineRepository.listEvents')
  }
  setCredential(): Promise<void> {
    return failing('MachineRepository.setCredential')
  }
  setReprovisionUntil(): Promise<void> {
    return failing('MachineRepository.setReprovisionUntil')
  }
  recordConflict(): Promise<{ conflict: MachineConflict; first: boolean } | undefined> {
    return failing('MachineRepository.recordConflict')
  }
  listConflicts(): Promise<MachineConflict[]> {
    return failing('MachineRepository.listConflicts')
  }
  findConflict(): Promise<StoredConflict | undefined> {
    return failing('MachineRepository.findConflict')
  }
  resolveConflict(): Promise<void> {
    return failing('MachineRepository.resolveConflict')
  }
  transaction<T>(): Promise<T> {
    return failing('MachineRepository.transaction')
  }
}

const withoutReport = ({ report: _report, ...conflict }: StoredConflict): MachineConflict => structuredClone(conflict)
