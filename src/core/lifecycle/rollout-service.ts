import { randomUUID } from 'node:crypto'
import type { Role } from '../clusters/cluster.ts'
import { conflict, notFound } from '../errors.ts'
import { FINISHED, isInFlight, parseRolloutSpec, rolloutOrder, type Phase, type RolloutSpec } from './rollout-plan.ts'

export const RUN_STATES = ['running', 'paused', 'completed', 'failed', 'cancelled'] as const
export type RunState = (typeof RUN_STATES)[number]
export const isActive = (state: RunState) => state === 'running' || state === 'paused'

export interface RolloutRun {
  id: string
  cluster: string
  spec: RolloutSpec
  state: RunState
  failures: number
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

export interface RolloutMachine {
  runId: string
  uuid: string
  role: Role
  hostname: string
  phase: Phase
  error: string | null
  /** When the restart command was sent: the machine's next report must be newer. */
  restartIssuedAt: string | null
  startedAt: string | null
  finishedAt: string | null
  phaseChangedAt: string
}

export interface RolloutEvent {
  at: string
  uuid: string | null
  message: string
}

export interface RolloutRepository {
  insertRun(run: RolloutRun, machines: RolloutMachine[]): Promise<void>
  findRun(id: string): Promise<RolloutRun | undefined>
  listRuns(): Promise<RolloutRun[]>
  saveRun(run: RolloutRun): Promise<void>
  listMachines(runId: string): Promise<RolloutMachine[]>
  saveMachine(machine: RolloutMachine): Promise<void>
  appendEvent(runId: string, event: RolloutEvent): Promise<void>
  /** The latest `limit` events, oldest first. */
  listEvents(runId: string, limit: number): Promise<RolloutEvent[]>
  transaction<T>(work: (repository: RolloutRepository) => Promise<T>): Promise<T>
}

/** A cluster member that could roll, with what the engine knows of its config. */
export interface RolloutCandidate {
  uuid: string
  role: Role
  hostname: string
  machineState: string
  drift: 'up_to_date' | 'outdated' | 'unknown' | 'unreported'
}

/** Where the service finds a cluster's members; storage implements it. */
export interface RolloutTargets {
  clusterExists(cluster: string): Promise<boolean>
  candidates(cluster: string): Promise<RolloutCandidate[]>
}

export interface RolloutView extends RolloutRun {
  machines: RolloutMachine[]
  events: RolloutEvent[]
}

/**
 * Rolling-update runs: created for a cluster's outdated installed machines, then driven by the
 * runner job (rollout-executor.ts) one persisted step at a time. One active run per cluster.
 */
export class RolloutService {
  constructor(
    private readonly repository: RolloutRepository,
    private readonly targets: RolloutTargets,
    /** The cluster's reboot lock group gets the run's parallelism as its slots. */
    private readonly lockGroups: { setSlots(group: string, slots: number): Promise<unknown> },
    private readonly clock: () => Date = () => new Date(),
    /** Told when a run is created or resumed, so that the runner looks at once. */
    private readonly changed: () => void = () => {},
  ) {}

  async create(input: unknown, now: Date = this.clock()): Promise<RolloutView> {
    const spec = parseRolloutSpec(input)
    if (!(await this.targets.clusterExists(spec.cluster))) throw notFound('CLUSTER_NOT_FOUND', `cluster "${spec.cluster}" does not exist`)
    const candidates = await this.targets.candidates(spec.cluster)
    const outdated = candidates.filter((candidate) => candidate.machineState === 'installed' && candidate.drift === 'outdated')
    if (outdated.length === 0) {
      const summary = candidates.map((candidate) => `${candidate.hostname}: ${candidate.machineState}, ${candidate.drift}`).join('; ') || 'no members'
      throw conflict('NOTHING_TO_ROLL', `no installed machine of cluster "${spec.cluster}" is outdated (${summary}); machines report their config with POST /lifecycle/ignition`)
    }
    const at = now.toISOString()
    const run: RolloutRun = { id: randomUUID(), cluster: spec.cluster, spec, state: 'running', failures: 0, createdAt: at, updatedAt: at, finishedAt: null }
    const machines = rolloutOrder(outdated).map(
      (candidate): RolloutMachine => ({
        runId: run.id,
        uuid: candidate.uuid,
        role: candidate.role,
        hostname: candidate.hostname,
        phase: 'waiting',
        error: null,
        restartIssuedAt: null,
        startedAt: null,
        finishedAt: null,
        phaseChangedAt: at,
      }),
    )
    await this.repository.transaction(async (repository) => {
      const active = (await repository.listRuns()).find((other) => other.cluster === spec.cluster && isActive(other.state))
      if (active) throw conflict('ROLLOUT_ACTIVE', `cluster "${spec.cluster}" already has an active run ${active.id} (${active.state}); cancel it or wait for it`, { run: active.id })
      await repository.insertRun(run, machines)
      await repository.appendEvent(run.id, { at, uuid: null, message: `run created: ${machines.length} outdated machine(s), max ${spec.max_parallel} at a time, ${spec.strategy}` })
    })
    // The semaphore, shared with machine-driven updates and FleetLock clients, is what bounds the
    // restarts. Set after the run is stored (the lock store has its own transaction); nothing starts
    // before the runner's next tick.
    await this.lockGroups.setSlots(spec.cluster, spec.max_parallel)
    this.changed()
    return this.get(run.id)
  }

  async get(id: string, eventLimit = 200): Promise<RolloutView> {
    const run = await this.repository.findRun(id)
    if (!run) throw notFound('ROLLOUT_NOT_FOUND', `rollout run ${id} does not exist`)
    return { ...run, machines: rolloutOrder(await this.repository.listMachines(id)), events: await this.repository.listEvents(id, eventLimit) }
  }

  list(): Promise<RolloutRun[]> {
    return this.repository.listRuns()
  }

  /** Pausing stops new machines from starting; machines already restarting finish (none is left cordoned). */
  pause(id: string): Promise<RolloutView> {
    return this.move(id, ['running'], 'paused', 'paused by an operator')
  }

  resume(id: string): Promise<RolloutView> {
    return this.move(id, ['paused'], 'running', 'resumed by an operator')
  }

  /** Cancelling stops new machines; those in flight finish their update and release their slot. */
  cancel(id: string): Promise<RolloutView> {
    return this.move(id, ['running', 'paused'], 'cancelled', 'cancelled by an operator; machines in flight finish')
  }

  private async move(id: string, from: RunState[], to: RunState, message: string, now: Date = this.clock()): Promise<RolloutView> {
    await this.repository.transaction(async (repository) => {
      const run = await repository.findRun(id)
      if (!run) throw notFound('ROLLOUT_NOT_FOUND', `rollout run ${id} does not exist`)
      if (!from.includes(run.state)) throw conflict('INVALID_ROLLOUT_TRANSITION', `run ${id} is ${run.state} and cannot become ${to} (only from ${from.join(' or ')})`)
      const at = now.toISOString()
      const machines = await repository.listMachines(id)
      const settled = to === 'cancelled' && !machines.some((machine) => isInFlight(machine.phase))
      await repository.saveRun({ ...run, state: to, updatedAt: at, finishedAt: settled ? at : run.finishedAt })
      await repository.appendEvent(id, { at, uuid: null, message })
    })
    this.changed()
    return this.get(id)
  }
}

export const isFinishedPhase = (phase: Phase) => FINISHED.includes(phase)
