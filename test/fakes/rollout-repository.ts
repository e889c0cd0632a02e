import type { RolloutEvent, RolloutMachine, RolloutRepository, RolloutRun } from '../../src/core/lifecycle/rollout-service.ts'
import { failing } from './intentional-error.ts'
import { JournaledStore } from './journaled-store.ts'

interface RolloutState {
  runs: Map<string, RolloutRun>
  /** By run id, in insertion order (the order the real table returns them in). */
  machines: Map<string, RolloutMachine[]>
  events: Map<string, RolloutEvent[]>
}

export interface RolloutContent {
  runs?: RolloutRun[]
  machines?: RolloutMachine[]
  events?: Array<RolloutEvent & { runId: string }>
}

/**
 * The rollout store with the given runs, machines and events, in memory. It writes what the kysely
 * repository writes: saveRun only a run's state, failures and timestamps, saveMachine only an existing
 * machine's row, startMachine only a waiting machine of a run still running under its max_failures
 * (checked and written at once, as the real one does in a transaction); reads return copies, so
 * nothing changes behind the store's back.
 */
export class FixedRolloutRepository extends JournaledStore<RolloutState> implements RolloutRepository {
  constructor(content: RolloutContent = {}) {
    super({ runs: new Map(), machines: new Map(), events: new Map() })
    for (const run of content.runs ?? []) this.state.runs.set(run.id, structuredClone(run))
    for (const machine of content.machines ?? []) this.machinesOf(this.state, machine.runId).push(structuredClone(machine))
    for (const { runId, ...event } of content.events ?? []) this.eventsOf(this.state, runId).push(event)
  }

  protected snapshot(): FixedRolloutRepository {
    // Stored objects are replaced, never changed in place: copying the containers is enough.
    const draft = new FixedRolloutRepository()
    for (const [id, run] of this.state.runs) draft.state.runs.set(id, run)
    for (const [id, machines] of this.state.machines) draft.state.machines.set(id, [...machines])
    for (const [id, events] of this.state.events) draft.state.events.set(id, [...events])
    return draft
  }

  async insertRun(run: RolloutRun, machines: RolloutMachine[]): Promise<void> {
    if (this.state.runs.has(run.id)) throw new Error(`rollout run ${run.id} exists (primary key)`)
    const copies = structuredClone({ run, machines })
    this.write((state) => {
      state.runs.set(run.id, copies.run)
      this.machinesOf(state, run.id).push(...copies.machines.map((machine) => ({ ...machine, runId: run.id })))
    })
  }

  async findRun(id: string): Promise<RolloutRun | undefined> {
    const run = this.state.runs.get(id)
    return run && structuredClone(run)
  }

  async listRuns(): Promise<RolloutRun[]> {
    return structuredClone([...this.state.runs.values()].sort((a, b) => compare(a.createdAt, b.createdAt) || compare(a.id, b.id)))
  }

  async saveRun(run: RolloutRun): Promise<void> {
    const { state, failures, updatedAt, finishedAt } = run
    this.write((stored) => {
      const existing = stored.runs.get(run.id)
      if (existing) stored.runs.set(run.id, { ...existing, state, failures, updatedAt, finishedAt })
    })
  }

  async listMachines(runId: string): Promise<RolloutMachine[]> {
    return structuredClone(this.state.machines.get(runId) ?? [])
  }

  async saveMachine(machine: RolloutMachine): Promise<void> {
    this.replaceMachine(machine)
  }

  async startMachine(machine: RolloutMachine): Promise<boolean> {
    const startable = (state: RolloutState) => {
      const run = state.runs.get(machine.runId)
      const stored = state.machines.get(machine.runId)?.find((candidate) => candidate.uuid === machine.uuid)
      return run?.state === 'running' && run.failures < run.spec.max_failures && stored?.phase === 'waiting'
    }
    // No await between the check and the write: nothing can commit in between (a commit replaying it checks again).
    if (!startable(this.state)) return false
    this.replaceMachine(machine, startable)
    return true
  }

  private replaceMachine(machine: RolloutMachine, when: (state: RolloutState) => boolean = () => true): void {
    const copy = structuredClone(machine)
    this.write((state) => {
      if (!when(state)) return
      const machines = this.machinesOf(state, machine.runId)
      const index = machines.findIndex((candidate) => candidate.uuid === machine.uuid)
      // The run, uuid and cluster are the row's key and never change.
      if (index >= 0) machines[index] = { ...copy, runId: machines[index]!.runId, cluster: machines[index]!.cluster }
    })
  }

  async appendEvent(runId: string, event: RolloutEvent): Promise<void> {
    const copy = { ...event }
    this.write((state) => void this.eventsOf(state, runId).push(copy))
  }

  async listEvents(runId: string, limit: number): Promise<RolloutEvent[]> {
    return structuredClone((this.state.events.get(runId) ?? []).slice(-limit))
  }

  transaction<T>(work: (repository: RolloutRepository) => Promise<T>): Promise<T> {
    return this.serially(work)
  }

  // ----- for assertions -----

  /** The stored run (throws when there is none: a test asking for it expects it). */
  run(id: string): RolloutRun {
    const run = this.state.runs.get(id)
    if (!run) throw new Error(`no rollout run ${id}`)
    return structuredClone(run)
  }

  machine(runId: string, uuid: string): RolloutMachine {
    const machine = this.state.machines.get(runId)?.find((candidate) => candidate.uuid === uuid)
    if (!machine) throw new Error(`no machine ${uuid} in rollout run ${runId}`)
    return structuredClone(machine)
  }

  /** Every event of the run, oldest first. */
  events(runId: string): RolloutEvent[] {
    return structuredClone(this.state.events.get(runId) ?? [])
  }

  private machinesOf(state: RolloutState, runId: string): RolloutMachine[] {
    let machines = state.machines.get(runId)
    if (!machines) state.machines.set(runId, (machines = []))
    return machines
  }

  private eventsOf(state: RolloutState, runId: string): RolloutEvent[] {
    let events = state.events.get(runId)
    if (!events) state.events.set(runId, (events = []))
    return events
  }
}

/** The rollout store with nothing in it. */
export class EmptyRolloutRepository extends FixedRolloutRepository {
  constructor() {
    super({})
  }
}

/** A rollout store whose every call fails (the database went away). */
export class BrokenRolloutRepository implements RolloutRepository {
  insertRun(): Promise<void> {
    return failing('RolloutRepository.insertRun')
  }
  findRun(): Promise<RolloutRun | undefined> {
    return failing('RolloutRepository.findRun')
  }
  listRuns(): Promise<RolloutRun[]> {
    return failing('RolloutRepository.listRuns')
  }
  saveRun(): Promise<void> {
    return failing('RolloutRepository.saveRun')
  }
  listMachines(): Promise<RolloutMachine[]> {
    return failing('RolloutRepository.listMachines')
  }
  saveMachine(): Promise<void> {
    return failing('RolloutRepository.saveMachine')
  }
  startMachine(): Promise<boolean> {
    return failing('RolloutRepository.startMachine')
  }
  appendEvent(): Promise<void> {
    return failing('RolloutRepository.appendEvent')
  }
  listEvents(): Promise<RolloutEvent[]> {
    return failing('RolloutRepository.listEvents')
  }
  transaction<T>(): Promise<T> {
    return failing('RolloutRepository.transaction')
  }
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
