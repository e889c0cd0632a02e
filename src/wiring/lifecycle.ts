import { SshMachineShell } from '../adapters/ssh/ssh-machine-shell.ts'
import { DriftService } from '../core/lifecycle/drift.ts'
import { LockService } from '../core/lifecycle/lock-service.ts'
import type { MachineShell, NodeDrainer } from '../core/lifecycle/ports.ts'
import { rollingDrainOf, rollingModeOf, type RollingDrain, type RollingMode } from '../core/lifecycle/rolling-mode.ts'
import { MachineRollingGate } from '../core/lifecycle/machine-rolling-gate.ts'
import { RollingRefusals } from '../core/lifecycle/rolling-refusals.ts'
import { RolloutExecutor, type RolloutEtcd } from '../core/lifecycle/rollout-executor.ts'
import { RolloutService } from '../core/lifecycle/rollout-service.ts'
import type { PowerService } from '../core/power/power-service.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { driftRepository } from '../storage/repositories/drift.ts'
import { lockRepository } from '../storage/repositories/locks.ts'
import { rollingRefusalRepository } from '../storage/repositories/rolling-refusals.ts'
import { rolloutTargetRepository } from '../storage/repositories/rollout-targets.ts'
import { rolloutRepository } from '../storage/repositories/rollouts.ts'
import type { Capability, WiringBasics } from './capability.ts'
import type { Provisioning } from './provisioning.ts'
import { rolloutPorts } from './rollout-ports.ts'

/** The real ones reach machines over SSH and clusters' API servers; tests may substitute them. */
export interface LifecycleAdapters {
  shell?: MachineShell
  drainerFrom?: (kubeconfig: string) => NodeDrainer
}

/**
 * Keeping machines current: the reboot lock semaphore (FleetLock and locksmith), Ignition drift
 * with a re-check whenever what machines are served may have changed, and rolling updates driven by
 * the rollout runner (one replica at a time) through drain, apply, reboot, gates and uncordon.
 */
export function wireLifecycle(
  { config, store, logger, events, jobLeases }: WiringBasics,
  provisioning: Pick<Provisioning, 'boot' | 'clusters' | 'sshKey' | 'machineDirectory' | 'clusterDirectory' | 'endpointLookup'>,
  adapters: LifecycleAdapters,
  power: PowerService,
  etcd: RolloutEtcd,
) {
  const { boot, clusters, sshKey, machineDirectory, clusterDirectory, endpointLookup } = provisioning
  const locks = new LockService(lockRepository(store), { defaultSlots: config.lifecycle.defaultSlots, defaultTtlSeconds: config.lifecycle.defaultTtlSeconds || null })
  const rollingRefusals = new RollingRefusals(rollingRefusalRepository(store))
  const lockGroupOf = (uuid: string) => clusterDirectory.memberOf(uuid)?.cluster ?? 'default'
  // Machines that roll themselves take and give back slots past etcd's quorum, asked live.
  const rollingGate = new MachineRollingGate({ memberOf: (uuid) => clusterDirectory.memberOf(uuid), lockGroupOf, listGroups: () => locks.listGroups(), etcd })
  const drift = new DriftService(driftRepository(store), boot, undefined, (record) => {
    // A machine that runs its config has nothing left to refuse.
    if (record.state === 'up_to_date') void rollingRefusals.resolved(record.uuid).catch((error: unknown) => logger.warn({ err: error, uuid: record.uuid }, 'rolling refusal not cleared'))
    events.emit('machine reported')
  })
  // A template, profile, metadata or cluster change makes machines outdated without waiting for their reports.
  const driftRecheck = new SerialJob(
    async (reason) => {
      for (const record of await drift.recheckAll()) logger.info({ component: 'drift', uuid: record.uuid, state: record.state, reason }, `machine ${record.uuid} is now ${record.state}`)
    },
    { name: 'drift re-check', intervalMs: 0, debounceMs: 300, logger, triggersBeforeStart: true },
  )
  for (const event of ['content changed', 'cluster changed', 'certificates issued', 'inventory imported'] as const) events.on(event, (reason) => driftRecheck.trigger(reason))

  const rolloutLease = jobLeases.lease('rollout-runner')
  const ports = rolloutPorts({ store, boot, clusters, drift, locks, shell: adapters.shell ?? new SshMachineShell(), sshKey, publicUrl: config.http.publicUrl, logger, endpointLookup, power, etcd, ...(adapters.drainerFrom ? { drainerFrom: adapters.drainerFrom } : {}) })
  const executor = new RolloutExecutor(ports, () => events.emit('rollout machine finished'), () => rolloutLease.mayRun())
  // Each tick starts what may start and resumes machines left in flight (after a restart too).
  const rolloutRunner = new SerialJob(() => executor.tick(), { name: 'rollout runner', intervalMs: 500, debounceMs: 20, logger, gate: rolloutLease })
  for (const event of ['rollout changed', 'rollout machine finished'] as const) events.on(event, (reason) => rolloutRunner.trigger(reason))
  events.on('machine reported', () => executor.notify())

  const capability: Capability = {
    jobs: [
      driftRecheck,
      {
        start: () => rolloutRunner.start(),
        stop: async () => {
          await rolloutRunner.stop()
          await executor.stop()
        },
      },
    ],
    listeners: [],
  }
  return {
    locks,
    drift,
    rollouts: new RolloutService(rolloutRepository(store), rolloutTargetRepository(store), locks, undefined, () => events.emit('rollout changed')),
    /** The lock group of a machine's rolling updates: its cluster's. */
    lockGroupOf,
    rollingGate,
    rollingPolicyOf: (uuid: string): { mode: RollingMode; drain: RollingDrain } => {
      const labels = (machineDirectory.lookup({ uuid })?.view.labels ?? {}) as Record<string, string>
      return { mode: rollingModeOf(labels), drain: rollingDrainOf(labels) }
    },
    rollingRefusals,
    ...capability,
  }
}
