import { describeUnhealthy, memberNotBack, type EtcdLook, type EtcdWait } from '../clusters/etcd-quorum.ts'
import { SlipwayError } from '../errors.ts'
import type { DrainOptions, MachineShell, NodeDrainer, SshTarget } from './ports.ts'
import { controlPlaneAllowance, etcdGated, isInFlight, liveControlPlaneAllowance, machinesToStart, type Phase } from './rollout-plan.ts'
import { isActive, type RolloutMachine, type RolloutRepository, type RolloutRun } from './rollout-service.ts'

/** The reboot lock as the executor uses it. */
export interface RolloutLocks {
  lock(group: string, holder: string): Promise<unknown>
  unlockIfHeld(group: string, holder: string): Promise<boolean>
}

/** A machine's BMC as a rollout uses it: to power a machine back on, and to recover one that hangs. */
export interface RolloutPower {
  /** Whether the engine can drive the machine's power (it has a BMC). */
  hasBmc(machineUuid: string): Promise<boolean>
  /** The power state the BMC reports now. */
  state(machineUuid: string, requestedBy: string): Promise<'on' | 'off' | 'unknown'>
  power(machineUuid: string, action: 'on' | 'cycle', requestedBy: string): Promise<void>
}

/** A cluster's etcd as a rollout asks it: one live look at its members and their health. */
export interface RolloutEtcd {
  look(cluster: string): Promise<EtcdLook>
}

export interface RolloutPorts {
  repository: RolloutRepository
  /** Without it (or for a machine without a BMC) a `poweroff` restart waits for someone to power the machine on. */
  power?: RolloutPower
  locks: RolloutLocks
  /** The API server of one of the run's clusters, as the run reaches it. */
  drainerFor(run: RolloutRun, cluster: string): Promise<NodeDrainer>
  shell: MachineShell
  /** How to reach a machine: its boot IP, the run's SSH user and port, the engine's key, its pinned host key. */
  sshTargetFor(machineUuid: string, run: RolloutRun): Promise<SshTarget>
  /** Remembers the host key a machine showed the first time (trust on first use). */
  pinHostKey(machineUuid: string, hostKey: string): Promise<void>
  /** The Ignition config the engine serves this machine now (what it must restart into). */
  expectedConfig(machineUuid: string): Promise<string>
  /** The machine's last config report. */
  driftOf(machineUuid: string): Promise<{ state: string; reportedAt: string } | undefined>
  controlPlaneMembers(cluster: string): Promise<number>
  /** The clusters' etcd, asked by runs that gate on it (`etcd.enabled`): control-plane members start and come back on it. */
  etcd: RolloutEtcd
  clock(): Date
  sleep(ms: number): Promise<void>
  log(event: { run: string; uuid?: string; hostname?: string; phase?: Phase; message: string; level: 'info' | 'warn' | 'error' }): void
}

/** How often waits poll (a lock held by someone else, a machine restarting). */
const POLL_MS = 500
/** How often a `poweroff` restart asks the BMC whether the machine is off yet (a BMC is slower than the store). */
const POWER_POLL_MS = 2000

const NEXT: Partial<Record<Phase, Phase>> = {
  locking: 'draining',
  draining: 'applying',
  applying: 'restarting',
  restarting: 'uncordoning',
  uncordoning: 'releasing',
  releasing: 'done',
}

/**
 * Drives rolling-update runs. Each machine in flight has its own worker that performs its current
 * phase and persists the next phase before starting it, so that after a crash (`resume` on start)
 * every machine continues from where it was: every phase's action is safe to repeat (a lock is
 * recursive, a cordon or uncordon is idempotent, re-applying a config restarts the machine again).
 * A machine that fails is uncordoned and its slot released before it is marked failed, so no failure
 * leaves a node cordoned or a slot held by nobody.
 */
export class RolloutExecutor {
  private readonly workers = new Map<string, Promise<void>>()
  private readonly napping = new Set<() => void>()
  /** What each run was last told about a cluster's etcd holding its control plane back (said once, not every tick). */
  private readonly etcdHolds = new Map<string, string>()
  private stopping = false

  constructor(
    private readonly ports: RolloutPorts,
    /** Asks for a tick soon: a machine finished, so the next one may start. */
    private readonly wake: () => void = () => {},
    /**
     * Whether this engine still drives rollouts (replicas: it holds the rollout runner's lease). When
     * it stops, workers leave at their next safe point and the replica that took over resumes them.
     */
    private readonly leading: () => boolean = () => true,
  ) {}

  /** Workers leave at their next safe point: the engine stops, or another replica drives rollouts now. */
  private get halted(): boolean {
    return this.stopping || !this.leading()
  }

  /** Something a waiting worker waits for may have happened (a machine reported its config): look now. */
  notify(): void {
    for (const resolve of this.napping) resolve()
    this.napping.clear()
  }

  /** Sleeps `ms`, or less if notified. */
  private nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.napping.add(resolve)
      void this.ports.sleep(ms).then(() => {
        this.napping.delete(resolve)
        resolve()
      })
    })
  }

  /** One look at every active run: start workers for machines in flight, start new machines, finish runs. */
  async tick(): Promise<void> {
    if (this.stopping) return
    for (const run of await this.ports.repository.listRuns()) {
      if (isActive(run.state) || run.state === 'cancelled' || run.finishedAt === null) await this.advance(run)
    }
  }

  /** Stops starting anything; waits (up to `graceMs`) for workers at their next safe point. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true
    await Promise.race([Promise.allSettled([...this.workers.values()]), this.ports.sleep(graceMs)])
  }

  private async advance(run: RolloutRun): Promise<void> {
    if (run.finishedAt !== null) return
    let machines = await this.ports.repository.listMachines(run.id)
    for (const machine of machines) if (isInFlight(machine.phase)) this.startWorker(run, machine)
    if (run.state === 'running') {
      const now = this.ports.clock()
      const counted = new Map<string, number>()
      for (const cluster of new Set(machines.map((machine) => machine.cluster))) counted.set(cluster, controlPlaneAllowance(await this.ports.controlPlaneMembers(cluster)))
      let starting = machinesToStart(run.spec, machines, (cluster) => counted.get(cluster)!, run.failures, now)
      // etcd is asked only for a cluster whose control-plane member the count alone would start.
      const asking = new Set(starting.filter((machine) => machine.role === 'control-plane').map((machine) => machine.cluster))
      if (etcdGated(run.spec) && asking.size > 0) {
        const live = new Map(counted)
        for (const cluster of asking) live.set(cluster, Math.min(counted.get(cluster)!, await this.etcdAllowance(run, cluster, machines)))
        starting = machinesToStart(run.spec, machines, (cluster) => live.get(cluster)!, run.failures, now)
      }
      for (const machine of starting) {
        const locking: RolloutMachine = { ...machine, phase: 'locking', startedAt: now.toISOString(), phaseChangedAt: now.toISOString() }
        // `run` was read at the start of the tick: the store starts the machine only if the run is
        // still running and under max_failures now (a pause, cancel or failure since then is seen).
        if (!(await this.ports.repository.startMachine(locking))) continue
        await this.event(run, locking, 'starting')
        this.startWorker(run, locking)
      }
      machines = await this.ports.repository.listMachines(run.id)
    }
    if (machines.some((machine) => isInFlight(machine.phase)) || this.hasWorkers(run.id)) return
    const waiting = machines.filter((machine) => machine.phase === 'waiting').length
    // A run that goes on (by the tick's read) is left for a later tick without a transaction.
    if (goesOn(run, waiting)) return
    const at = this.ports.clock().toISOString()
    // Decided again on the run as stored now: a pause or cancel since the tick read it wins.
    const state = await this.ports.repository.transaction(async (repository) => {
      const current = await repository.findRun(run.id)
      if (!current || current.finishedAt !== null || goesOn(current, waiting)) return undefined
      const state = current.state === 'cancelled' ? 'cancelled' : current.failures > 0 ? 'failed' : 'completed'
      await repository.saveRun({ ...current, state, updatedAt: at, finishedAt: at })
      const done = machines.filter((machine) => machine.phase === 'done').length
      const summary = `${done} updated, ${current.failures} failed${waiting ? `, ${waiting} not started` : ''}`
      await repository.appendEvent(run.id, { at, uuid: null, message: `run ${state}: ${summary}` })
      return state
    })
    if (!state) return
    this.ports.log({ run: run.id, message: `rollout run ${state}`, level: state === 'completed' ? 'info' : 'warn' })
    for (const key of this.etcdHolds.keys()) if (key.startsWith(`${run.id}/`)) this.etcdHolds.delete(key)
  }

  /**
   * How many of the cluster's control-plane members may be down at once by etcd's live health: the
   * quorum's allowance less the voting members already unhealthy that this run did not take down;
   * none when etcd cannot be asked (fail closed). When that holds a start back the run's events say
   * why, once until the reason changes.
   */
  private async etcdAllowance(run: RolloutRun, cluster: string, machines: readonly RolloutMachine[]): Promise<number> {
    const inFlight = new Set(machines.filter((machine) => machine.cluster === cluster && machine.role === 'control-plane' && isInFlight(machine.phase)).map((machine) => machine.hostname))
    let allowance = 0
    let hold: { gist: string; message: string } | undefined
    try {
      const { allowance: live, voters, down } = liveControlPlaneAllowance(await this.ports.etcd.look(cluster), inFlight)
      allowance = live
      if (allowance - inFlight.size <= 0) {
        const room = `with ${voters} voting member(s) ${controlPlaneAllowance(voters)} may be down at once`
        hold = down.length
          ? { gist: `unhealthy ${down.map((member) => member.id).join(',')}`, message: `etcd of cluster ${cluster}: not healthy: ${describeUnhealthy(down)}; ${room}, so no control-plane member starts until etcd is healthy again` }
          : { gist: `room ${voters}`, message: `etcd of cluster ${cluster}: ${room} and ${inFlight.size} of this run's are down` }
      }
    } catch (error) {
      hold = { gist: 'unreachable', message: `etcd of cluster ${cluster} cannot be asked (${error instanceof Error ? error.message : String(error)}): no control-plane member starts until it answers` }
    }
    const key = `${run.id}/${cluster}`
    if (!hold) this.etcdHolds.delete(key)
    else if (this.etcdHolds.get(key) !== hold.gist) {
      this.etcdHolds.set(key, hold.gist)
      await this.ports.repository.appendEvent(run.id, { at: this.ports.clock().toISOString(), uuid: null, message: hold.message })
      this.ports.log({ run: run.id, message: hold.message, level: 'warn' })
    }
    return allowance
  }

  /** Why a restarted control-plane member does not count as back on etcd yet, or undefined once it does (see memberNotBack). */
  private async etcdNotBack(run: RolloutRun, machine: RolloutMachine): Promise<EtcdWait | undefined> {
    let look: EtcdLook
    try {
      look = await this.ports.etcd.look(machine.cluster)
    } catch (error) {
      return { condition: 'unreachable', message: `etcd cannot be asked (${error instanceof Error ? error.message : String(error)})` }
    }
    // The run's other members in flight were taken down on purpose; every other member must be healthy.
    const takenDown = (await this.ports.repository.listMachines(run.id)).filter((other) => other.cluster === machine.cluster && other.role === 'control-plane' && other.uuid !== machine.uuid && isInFlight(other.phase))
    return memberNotBack(look, machine.hostname, new Set(takenDown.map((other) => other.hostname)))
  }

  private hasWorkers(runId: string): boolean {
    return [...this.workers.keys()].some((key) => key.startsWith(`${runId}/`))
  }

  private startWorker(run: RolloutRun, machine: RolloutMachine): void {
    const key = `${run.id}/${machine.uuid}`
    if (this.workers.has(key) || this.stopping) return
    let finished = false
    const worker = this.work(run, machine)
      .then((result) => void (finished = result))
      // Only the store failing (e.g. the engine shutting down) gets here; the next start resumes the machine.
      .catch((error: unknown) => this.ports.log({ run: run.id, uuid: machine.uuid, message: `worker stopped: ${error instanceof Error ? error.message : String(error)}`, level: 'warn' }))
      .finally(() => {
        this.workers.delete(key)
        // Asked for only once the worker is gone: the tick it brings must not count it as in flight.
        if (finished) this.wake()
      })
    this.workers.set(key, worker)
  }

  /** Takes the machine through its phases; true once it is done or failed, false when it left on a halt. */
  private async work(run: RolloutRun, start: RolloutMachine): Promise<boolean> {
    let machine = start
    while (!this.halted && NEXT[machine.phase]) {
      try {
        await this.perform(run, machine)
      } catch (error) {
        if (this.halted) return false
        await this.fail(run, machine, error)
        return true
      }
      if (this.halted) return false
      const next = NEXT[machine.phase]!
      const at = this.ports.clock().toISOString()
      machine = { ...(await this.reload(machine)), phase: next, phaseChangedAt: at, ...(next === 'done' ? { finishedAt: at } : {}) }
      await this.ports.repository.saveMachine(machine)
      await this.event(run, machine, next === 'done' ? 'updated' : next)
    }
    return machine.phase === 'done'
  }

  /** The action of the machine's current phase; returns when the phase is complete. */
  private async perform(run: RolloutRun, machine: RolloutMachine): Promise<void> {
    const { spec } = run
    switch (machine.phase) {
      case 'locking': {
        // The machine's cluster's lock group is shared with machine-driven updates and FleetLock clients.
        for (let waited = 0; ; waited += POLL_MS) {
          try {
            await this.ports.locks.lock(machine.cluster, machine.uuid)
            return
          } catch (error) {
            if (!(error instanceof SlipwayError && error.code === 'SEMAPHORE_FULL') || this.halted) throw error
            if (waited % 30_000 === 0) await this.event(run, machine, `waiting for a reboot slot: ${error.message}`)
            await this.ports.sleep(POLL_MS)
          }
        }
      }
      case 'draining': {
        if (!spec.drain.enabled) return
        const drainer = await this.ports.drainerFor(run, machine.cluster)
        await drainer.cordon(machine.hostname)
        const options: DrainOptions = {
          timeoutMs: spec.drain.timeout_seconds * 1000,
          evictionRetryMs: spec.drain.eviction_retry_seconds * 1000,
          force: spec.drain.force,
          deleteEmptyDirData: spec.drain.delete_emptydir_data,
          ...(spec.drain.grace_period_seconds !== undefined ? { gracePeriodSeconds: spec.drain.grace_period_seconds } : {}),
        }
        // Progress is told, not awaited: a store failure there must not become an unhandled rejection.
        const progress = (message: string) =>
          void this.event(run, machine, message).catch((error: unknown) =>
            this.ports.log({ run: run.id, uuid: machine.uuid, hostname: machine.hostname, phase: machine.phase, message: `drain progress not recorded (${message}): ${error instanceof Error ? error.message : String(error)}`, level: 'warn' }),
          )
        const report = await drainer.drain(machine.hostname, options, progress)
        await this.event(run, machine, `drained: ${report.evicted.length} pod(s) evicted, ${report.skipped.length} left (DaemonSet or mirror)`)
        return
      }
      case 'applying': {
        const config = await this.ports.expectedConfig(machine.uuid)
        const target = await this.ports.sshTargetFor(machine.uuid, run)
        await this.ports.shell.writeFile(target, spec.apply.config_path, config, 0o600)
        const issuedAt = this.ports.clock().toISOString()
        // Persisted before the restart: the machine's next report must be newer than this.
        await this.ports.repository.saveMachine({ ...(await this.reload(machine)), restartIssuedAt: issuedAt })
        const result = await this.ports.shell.run(target, `${spec.apply.command} ${shellQuote(spec.apply.config_path)} ${spec.strategy}`, { expectDisconnect: true, timeoutMs: 120_000 })
        if (!target.hostKey) await this.ports.pinHostKey(machine.uuid, result.hostKey)
        if (result.exitCode !== null && result.exitCode !== 0) {
          throw new SlipwayError('conflict', 'APPLY_FAILED', `${spec.apply.command} exited ${result.exitCode}: ${result.stderr.trim().slice(-500) || result.stdout.trim().slice(-500)}`)
        }
        return
      }
      case 'restarting': {
        const restarting = await this.reload(machine)
        const issuedAt = restarting.restartIssuedAt ?? machine.phaseChangedAt
        // A power cycle (below) gives the machine the whole timeout again, once; it is persisted, so a
        // resumed run neither cycles twice nor forgets the time it gave.
        let cycledAt = restarting.powerCycledAt ?? null
        const drainer = spec.drain.enabled ? await this.ports.drainerFor(run, machine.cluster) : undefined
        const power = await this.powerOf(machine)
        const by = `engine:rollout ${run.id.slice(0, 8)}`
        const onEtcd = etcdGated(spec) && machine.role === 'control-plane'
        let poweredBackOn = false
        let nextPowerLook = 0
        let etcdSaid: EtcdWait['condition'] | undefined
        for (;;) {
          const report = await this.ports.driftOf(machine.uuid)
          const reported = report !== undefined && report.reportedAt > issuedAt && report.state === 'up_to_date'
          const ready = reported && (!drainer || (await drainer.isReady(machine.hostname)))
          const etcdWait = ready && onEtcd ? await this.etcdNotBack(run, machine) : undefined
          if (ready && !etcdWait) return
          if (etcdWait && etcdWait.condition !== etcdSaid) {
            etcdSaid = etcdWait.condition
            await this.event(run, machine, `back with its new config; waiting for etcd: ${etcdWait.message}`)
          }
          const now = this.ports.clock().getTime()
          // `poweroff` ends with the machine off: once its BMC says so, it is powered on again.
          if (spec.strategy === 'poweroff' && power && !poweredBackOn && !cycledAt && now >= nextPowerLook) {
            nextPowerLook = now + POWER_POLL_MS
            poweredBackOn = await this.powerBackOn(run, machine, power, by)
          }
          if (now > Date.parse(cycledAt ?? issuedAt) + spec.ready_timeout_seconds * 1000) {
            const why = !reported ? `it did not report its new config (last report: ${report ? `${report.state} at ${report.reportedAt}` : 'none'})` : !ready ? 'its node is not Ready' : etcdWait!.message
            if (!cycledAt && power && spec.power_cycle_on_timeout !== false) {
              cycledAt = await this.powerCycle(run, machine, power, by, why)
              continue
            }
            const after = cycledAt ? ` and again within ${spec.ready_timeout_seconds} s of a power cycle` : ''
            throw new SlipwayError('unavailable', 'RESTART_TIMEOUT', `${machine.hostname} did not come back within ${spec.ready_timeout_seconds} s${after}: ${why}`)
          }
          if (this.halted) return
          await this.nap(POLL_MS)
        }
      }
      case 'uncordoning': {
        if (spec.drain.enabled) await (await this.ports.drainerFor(run, machine.cluster)).uncordon(machine.hostname)
        return
      }
      case 'releasing': {
        await this.ports.locks.unlockIfHeld(machine.cluster, machine.uuid)
        return
      }
      default:
        return
    }
  }

  /** The machine's BMC, when the engine has one to drive. */
  private async powerOf(machine: RolloutMachine): Promise<RolloutPower | undefined> {
    const power = this.ports.power
    return power && (await power.hasBmc(machine.uuid)) ? power : undefined
  }

  /** True once the machine was found off and powered on; a BMC that fails is told in the run's events and asked again later. */
  private async powerBackOn(run: RolloutRun, machine: RolloutMachine, power: RolloutPower, by: string): Promise<boolean> {
    try {
      if ((await power.state(machine.uuid, by)) !== 'off') return false
      await power.power(machine.uuid, 'on', by)
      await this.event(run, machine, 'powered off by its poweroff restart: powered on again through its BMC')
      return true
    } catch (error) {
      await this.event(run, machine, `powering it back on through its BMC failed (tried again in ${POWER_POLL_MS / 1000} s): ${error instanceof Error ? error.message : String(error)}`)
      return false
    }
  }

  /** One power cycle for a machine that did not come back; returns when it was recorded (the new start of its timeout). */
  private async powerCycle(run: RolloutRun, machine: RolloutMachine, power: RolloutPower, by: string, why: string): Promise<string> {
    const at = this.ports.clock().toISOString()
    // Recorded before the cycle: a crash in between must not bring a second one.
    await this.ports.repository.saveMachine({ ...(await this.reload(machine)), powerCycledAt: at })
    try {
      await power.power(machine.uuid, 'cycle', by)
      await this.event(run, machine, `did not come back within ${run.spec.ready_timeout_seconds} s (${why}): power-cycled through its BMC; it has ${run.spec.ready_timeout_seconds} s more`)
    } catch (error) {
      await this.event(run, machine, `did not come back within ${run.spec.ready_timeout_seconds} s (${why}); the power cycle through its BMC failed: ${error instanceof Error ? error.message : String(error)}`)
    }
    return at
  }

  /** Cleans up after a failed machine (uncordon, release) and records the failure against the run. */
  private async fail(run: RolloutRun, machine: RolloutMachine, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error)
    const cleanup: string[] = []
    if (run.spec.drain.enabled && machine.phase !== 'locking') {
      try {
        await (await this.ports.drainerFor(run, machine.cluster)).uncordon(machine.hostname)
        cleanup.push('uncordoned')
      } catch (uncordonError) {
        cleanup.push(`uncordon failed too: ${uncordonError instanceof Error ? uncordonError.message : String(uncordonError)}`)
      }
    }
    try {
      if (await this.ports.locks.unlockIfHeld(machine.cluster, machine.uuid)) cleanup.push('slot released')
    } catch (unlockError) {
      cleanup.push(`releasing the slot failed: ${unlockError instanceof Error ? unlockError.message : String(unlockError)}`)
    }
    const at = this.ports.clock().toISOString()
    const failed: RolloutMachine = { ...(await this.reload(machine)), phase: 'failed', error: `${machine.phase}: ${message}`, phaseChangedAt: at, finishedAt: at }
    await this.ports.repository.transaction(async (repository) => {
      await repository.saveMachine(failed)
      const current = (await repository.findRun(run.id))!
      await repository.saveRun({ ...current, failures: current.failures + 1, updatedAt: at })
      await repository.appendEvent(run.id, { at, uuid: machine.uuid, message: `${machine.hostname} failed while ${machine.phase}: ${message}${cleanup.length ? ` (${cleanup.join(', ')})` : ''}` })
    })
    this.ports.log({ run: run.id, uuid: machine.uuid, hostname: machine.hostname, phase: machine.phase, message: `failed: ${message}`, level: 'error' })
  }

  private async reload(machine: RolloutMachine): Promise<RolloutMachine> {
    return (await this.ports.repository.listMachines(machine.runId)).find((candidate) => candidate.uuid === machine.uuid) ?? machine
  }

  private async event(run: RolloutRun, machine: RolloutMachine, message: string): Promise<void> {
    const text = `${machine.hostname}: ${message}`
    await this.ports.repository.appendEvent(run.id, { at: this.ports.clock().toISOString(), uuid: machine.uuid, message: text })
    this.ports.log({ run: run.id, uuid: machine.uuid, hostname: machine.hostname, phase: machine.phase, message: text, level: 'info' })
  }
}

/** Whether a run with `waiting` machines not started (and none in flight) is to go on rather than finish. */
const goesOn = (run: RolloutRun, waiting: number) => run.state === 'paused' || (run.state === 'running' && waiting > 0 && run.failures < run.spec.max_failures)

const shellQuote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`
