import { randomUUID } from 'node:crypto'
import type { Role } from '../clusters/cluster.ts'
import { conflict, invalid, notFound } from '../errors.ts'
import { parseLabelSelector } from '../selection/label-selector.ts'
import { FINISHED, isInFlight, memberLabels, parseRolloutSpec, rolloutOrder, type Phase, type RolloutSpec } from './rollout-plan.ts'

export const RUN_STATES = ['running', 'paused', 'completed', 'failed', 'cancelled'] as const
export type RunState = (typeof RUN_STATES)[number]
export const isActive = (state: RunState) => state === 'running' || state === 'paused'

export interface RolloutRun {
  id: string
  /** The clusters of the run's machines, sorted: their lock groups get the run's parallelism. */
  clusters: string[]
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
  cluster: string
  role: Role
  hostname: string
  phase: Phase
  error: string | null
  /** When the restart command was sent: the machine's next report must be newer. */
  restartIssuedAt: string | null
  /** When the machine, not back in time, was power-cycled through its BMC (once per run). */
  powerCycledAt?: string | null
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
  /**
   * Stores `machine` (a waiting machine moved to its first phase) only if it is still waiting and its
   * run is still running with fewer than `max_failures` failed machines, checked and written in one
   * transaction; returns whether it did. The runner decides what to start on a run it read earlier:
   * this is where a pause, a cancel or a failure committed meanwhile stops the start.
   */
  startMachine(machine: RolloutMachine): Promise<boolean>
  appendEvent(runId: string, event: RolloutEvent): Promise<void>
  /** The latest `limit` events, oldest first. */
  listEvents(runId: string, limit: number): Promise<RolloutEvent[]>
  transaction<T>(work: (repository: RolloutRepository) => Promise<T>): Promise<T>
}

/** A cluster member that could roll, with what the engine knows of its config. */
export interface RolloutCandidate {
  uuid: string
  cluster: string
  /** The machine's own labels (membership labels are added by the service). */
  labels: Record<string, string>
  role: Role
  hostname: string
  machineState: string
  drift: 'up_to_date' | 'outdated' | 'unknown' | 'unreported'
}

/** Where the service finds cluster members; storage implements it. */
export interface RolloutTargets {
  clusterExists(cluster: string): Promise<boolean>
  /** The members of `cluster`, or of every cluster. */
  candidates(cluster: string | undefined): Promise<RolloutCandidate[]>
}

export interface RolloutView extends RolloutRun {
  machines: RolloutMachine[]
  events: RolloutEvent[]
}

/**
 * Rolling-update runs: created for the outdated installed machines of a cluster or of a label
 * selector (across clusters), then driven by the runner job (rollout-executor.ts) one persisted step
 * at a time. One active run per cluster.
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
    if (spec.cluster !== undefined && !(await this.targets.clusterExists(spec.cluster))) throw notFound('CLUSTER_NOT_FOUND', `cluster "${spec.cluster}" does not exist`)
    const selector = spec.selector === undefined ? undefined : parseLabelSelector(spec.selector)
    const candidates = (await this.targets.candidates(spec.cluster)).filter((candidate) => !selector || selector.matches(memberLabels(candidate.labels, candidate.cluster, candidate.role)))
    const target = [spec.cluster && `cluster "${spec.cluster}"`, selector && `selector "${selector.text}"`].filter(Boolean).join(' and ')
    const outdated = candidates.filter((candidate) => candidate.machineState === 'installed' && candidate.drift === 'outdated')
    if (outdated.length === 0) {
      const shown = candidates.slice(0, 20).map((candidate) => `${candidate.hostname}: ${candidate.machineState}, ${candidate.drift}`)
      const summary = shown.join('; ') + (candidates.length > shown.length ? `; and ${candidates.length - shown.length} more` : '') || 'no cluster member matches'
      throw conflict('NOTHING_TO_ROLL', `no installed machine of ${target} is outdated (${summary}); machines report their config with POST /lifecycle/ignition`)
    }
    const clusters = [...new Set(outdated.map((candidate) => candidate.cluster))].sort()
    if (spec.kubernetes_api_server !== undefined && clusters.length > 1) {
      throw invalid('INVALID_ROLLOUT', `kubernetes_api_server names one API server but ${target} spans ${clusters.length} clusters (${clusters.join(', ')}); add "cluster" or leave it out`)
    }
    const at = now.toISOString()
    const run: RolloutRun = { id: randomUUID(), clusters, spec, state: 'running', failures: 0, createdAt: at, updatedAt: at, finishedAt: null }
    const machines = rolloutOrder(outdated).map(
      (candidate): RolloutMachine => ({
        runId: run.id,
        uuid: candidate.uuid,
        cluster: candidate.cluster,
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
      // One active run per cluster: a cluster's reboot slots and its quorum are counted in one place.
      const active = (await repository.listRuns()).find((other) => isActive(other.state) && other.clusters.some((cluster) => clusters.includes(cluster)))
      if (active) {
        const shared = active.clusters.filter((cluster) => clusters.includes(cluster))
        throw conflict('ROLLOUT_ACTIVE', `cluster(s) ${shared.map((cluster) => `"${cluster}"`).join(', ')} already have an active run ${active.id} (${active.state}); cancel it or wait for it`, { run: active.id })
      }
      await repository.insertRun(run, machines)
      await repository.appendEvent(run.id, {
        at,
        uuid: null,
        message: `run created for ${target}: ${machines.length} outdated machine(s) in ${clusters.length === 1 ? `cluster ${clusters[0]}` : `clusters ${clusters.join(', ')}`}, max ${spec.max_parallel} at a time, ${spec.strategy}`,
      })
    })
    // The semaphore, shared with machine-driven updates and FleetLock clients, is what bounds the
    // restarts. Set after the run is stored (the lock store has its own transaction); nothing starts
    // before the runner's next tick.
    for (const cluster of clusters) await this.lockGroups.setSlots(cluster, spec.max_parallel)
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
