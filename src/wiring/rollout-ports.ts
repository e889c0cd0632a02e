import type { LookupFunction } from 'node:net'
import type { Logger } from 'pino'
import { KubernetesNodeDrainer } from '../adapters/kubernetes/kubernetes-node-drainer.ts'
import type { BootService } from '../core/boot/boot-service.ts'
import type { ClusterService } from '../core/clusters/cluster-service.ts'
import { bootIpOf } from '../core/clusters/schedule-plan.ts'
import { invalid } from '../core/errors.ts'
import type { DriftService } from '../core/lifecycle/drift.ts'
import type { MachineShell, NodeDrainer } from '../core/lifecycle/ports.ts'
import type { RolloutEtcd, RolloutPorts, RolloutLocks, RolloutPower } from '../core/lifecycle/rollout-executor.ts'
import type { PowerService } from '../core/power/power-service.ts'
import type { Db } from '../storage/database.ts'
import type { EngineSshKey } from '../storage/engine-ssh-key.ts'
import { driftRepository } from '../storage/repositories/drift.ts'
import { machineRepository } from '../storage/repositories/machines.ts'
import { rolloutRepository } from '../storage/repositories/rollouts.ts'
import { countControlPlaneMembers } from '../storage/repositories/rollout-targets.ts'
import { findHostKey, pinHostKey } from '../storage/repositories/machine-host-keys.ts'

export interface RolloutWiring {
  store: Db
  boot: BootService
  clusters: ClusterService
  drift: DriftService
  locks: RolloutLocks
  shell: MachineShell
  sshKey: EngineSshKey
  /** The engine URL configs are rendered with when a machine never reported one. */
  publicUrl: string
  logger: Logger
  /** Builds the drainer of a cluster from its admin kubeconfig; tests substitute their own. */
  drainerFrom?: (kubeconfig: string) => NodeDrainer
  /** How the real drainer resolves a cluster's endpoint name (the engine's own answers). */
  endpointLookup?: LookupFunction
  /** Machines' BMCs: a `poweroff` restart is powered on again, a machine that hangs is power-cycled. */
  power: PowerService
  /** Clusters' etcd, asked live: control-plane members start and come back on its health. */
  etcd: RolloutEtcd
}

/** The rollout's view of the BMCs: every call goes through the power service (its queue, retries, audit). */
function rolloutPower(power: PowerService): RolloutPower {
  return {
    hasBmc: (uuid) => power.configured(uuid),
    state: async (uuid, requestedBy) => (await power.status(uuid, requestedBy)).power,
    power: async (uuid, action, requestedBy) => void (await power.power(uuid, action, requestedBy)),
  }
}

/** The rollout executor's ports over the store and the real adapters (SSH, the clusters' API servers). */
export function rolloutPorts(wiring: RolloutWiring): RolloutPorts {
  const { store, boot, clusters, drift, logger } = wiring
  const machines = machineRepository(store)
  const drifts = driftRepository(store)
  const drainers = new Map<string, NodeDrainer>()
  const drainerFrom = wiring.drainerFrom ?? ((kubeconfig: string) => new KubernetesNodeDrainer(kubeconfig, wiring.endpointLookup ? { lookup: wiring.endpointLookup } : {}))
  return {
    repository: rolloutRepository(store),
    power: rolloutPower(wiring.power),
    locks: wiring.locks,
    shell: wiring.shell,
    drainerFor: async (run, cluster) => {
      const key = `${run.id}/${cluster}`
      let drainer = drainers.get(key)
      if (!drainer) {
        // kubernetes_api_server is only accepted for a run of one cluster.
        drainer = drainerFrom(await clusters.adminKubeconfig(cluster, run.spec.kubernetes_api_server))
        drainers.set(key, drainer)
      }
      return drainer
    },
    sshTargetFor: async (uuid, run) => {
      const machine = await machines.findMachine(uuid)
      const host = machine && bootIpOf(machine)
      if (!host) throw invalid('NO_BOOT_ADDRESS', `machine ${uuid} has no boot IPv4 address to reach it over SSH`)
      const pinned = await findHostKey(store, uuid)
      return { host, port: run.spec.ssh.port, username: run.spec.ssh.user, privateKeyPem: wiring.sshKey.privateKey, ...(pinned ? { hostKey: pinned } : {}) }
    },
    pinHostKey: (uuid, hostKey) => pinHostKey(store, uuid, hostKey, new Date()),
    expectedConfig: async (uuid) => {
      const machine = await machines.findMachine(uuid)
      if (!machine) throw invalid('MACHINE_NOT_FOUND', `machine ${uuid} is not in the inventory`)
      const engineUrl = (await drifts.findDrift(uuid))?.engineUrl ?? wiring.publicUrl
      const mac = machine.bootMac.replaceAll(':', '-')
      return boot.ignition({ labels: { uuid, mac: machine.bootMac, os: 'installed' }, rawQuery: `uuid=${uuid}&mac=${mac}&os=installed`, engineUrl }).body
    },
    driftOf: async (uuid) => {
      const record = await drift.get(uuid).catch(() => undefined)
      return record && { state: record.state, reportedAt: record.reportedAt }
    },
    controlPlaneMembers: (cluster) => countControlPlaneMembers(store, cluster),
    etcd: wiring.etcd,
    clock: () => new Date(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    log: ({ level, message, ...fields }) => logger[level]({ component: 'rollout', ...fields }, message),
  }
}
