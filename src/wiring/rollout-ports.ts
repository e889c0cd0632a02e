import type { Logger } from 'pino'
import { KubernetesNodeDrainer } from '../adapters/kubernetes/kubernetes-node-drainer.ts'
import type { BootService } from '../core/boot/boot-service.ts'
import type { ClusterService } from '../core/clusters/cluster-service.ts'
import { bootIpOf } from '../core/clusters/schedule-plan.ts'
import { invalid } from '../core/errors.ts'
import type { DriftService } from '../core/lifecycle/drift.ts'
import type { MachineShell, NodeDrainer } from '../core/lifecycle/ports.ts'
import type { RolloutPorts, RolloutLocks } from '../core/lifecycle/rollout-executor.ts'
import type { RolloutTargets } from '../core/lifecycle/rollout-service.ts'
import { ROLLING_MODE_LABEL } from '../core/lifecycle/rolling-mode.ts'
import type { Store } from '../storage/db.ts'
import type { EngineSshKey } from '../storage/engine-ssh-key.ts'
import { driftRepository } from '../storage/repositories/drift.ts'
import { machineRepository } from '../storage/repositories/machines.ts'
import { rolloutRepository } from '../storage/repositories/rollouts.ts'

/** Where rolling updates find their machines: memberships, machine labels, states and drift, from the store. */
export function rolloutTargets(store: Store): RolloutTargets {
  return {
    clusterExists: async (cluster) => (await store.selectFrom('clusters').select('name').where('name', '=', cluster).executeTakeFirst()) !== undefined,
    candidates: async (cluster) => {
      let members = store
        .selectFrom('cluster_members')
        .innerJoin('machines', 'machines.uuid', 'cluster_members.machine_uuid')
        .leftJoin('machine_drift', 'machine_drift.uuid', 'cluster_members.machine_uuid')
        // Machines that roll themselves are left to their agent.
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('machine_labels')
                .select('machine_labels.uuid')
                .whereRef('machine_labels.uuid', '=', 'cluster_members.machine_uuid')
                .where('machine_labels.key', '=', ROLLING_MODE_LABEL)
                .where('machine_labels.value', '=', 'machine'),
            ),
          ),
        )
        .select(['cluster_members.machine_uuid', 'cluster_members.cluster', 'cluster_members.role', 'cluster_members.hostname', 'machines.state', 'machine_drift.state as drift'])
      if (cluster !== undefined) members = members.where('cluster_members.cluster', '=', cluster)
      let labelRows = store.selectFrom('machine_labels').innerJoin('cluster_members', 'cluster_members.machine_uuid', 'machine_labels.uuid').select(['machine_labels.uuid', 'machine_labels.key', 'machine_labels.value'])
      if (cluster !== undefined) labelRows = labelRows.where('cluster_members.cluster', '=', cluster)
      const labels = new Map<string, Record<string, string>>()
      for (const row of await labelRows.execute()) labels.set(row.uuid, { ...labels.get(row.uuid), [row.key]: row.value })
      return (await members.execute()).map((row) => ({
        uuid: row.machine_uuid,
        cluster: row.cluster,
        labels: labels.get(row.machine_uuid) ?? {},
        role: row.role,
        hostname: row.hostname,
        machineState: row.state,
        drift: row.drift ?? 'unreported',
      }))
    },
  }
}

export interface RolloutWiring {
  store: Store
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
}

/** The executor's ports over the store and the real adapters. */
export function rolloutPorts(wiring: RolloutWiring): RolloutPorts {
  const { store, boot, clusters, drift, logger } = wiring
  const machines = machineRepository(store)
  const drifts = driftRepository(store)
  const drainers = new Map<string, NodeDrainer>()
  const drainerFrom = wiring.drainerFrom ?? ((kubeconfig: string) => new KubernetesNodeDrainer(kubeconfig))
  return {
    repository: rolloutRepository(store),
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
      const pinned = await store.selectFrom('machine_host_keys').select('host_key').where('uuid', '=', uuid).executeTakeFirst()
      return { host, port: run.spec.ssh.port, username: run.spec.ssh.user, privateKeyPem: wiring.sshKey.privateKey, ...(pinned ? { hostKey: pinned.host_key } : {}) }
    },
    pinHostKey: async (uuid, hostKey) => {
      await store
        .insertInto('machine_host_keys')
        .values({ uuid, host_key: hostKey, pinned_at: new Date().toISOString() })
        .onConflict((conflict) => conflict.column('uuid').doNothing())
        .execute()
    },
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
    controlPlaneMembers: async (cluster) =>
      Number(
        (await store.selectFrom('cluster_members').select(({ fn }) => fn.countAll<number>().as('count')).where('cluster', '=', cluster).where('role', '=', 'control-plane').executeTakeFirst())?.count ?? 0,
      ),
    clock: () => new Date(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    log: ({ level, message, ...fields }) => logger[level]({ component: 'rollout', ...fields }, message),
  }
}
