import type { RolloutTargets } from '../../core/lifecycle/rollout-service.ts'
import { ROLLING_MODE_LABEL } from '../../core/lifecycle/rolling-mode.ts'
import type { Db } from '../database.ts'

/** Where rolling updates find their machines: memberships, machine labels, states and drift, from the store. */
export function rolloutTargetRepository(db: Db): RolloutTargets {
  return {
    clusterExists: async (cluster) => (await db.selectFrom('clusters').select('name').where('name', '=', cluster).executeTakeFirst()) !== undefined,
    candidates: async (cluster) => {
      let members = db
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
      let labelRows = db.selectFrom('machine_labels').innerJoin('cluster_members', 'cluster_members.machine_uuid', 'machine_labels.uuid').select(['machine_labels.uuid', 'machine_labels.key', 'machine_labels.value'])
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

/** How many control-plane members a cluster has (the rollout's quorum allowance is computed from it). */
export async function countControlPlaneMembers(db: Db, cluster: string): Promise<number> {
  const row = await db.selectFrom('cluster_members').select(({ fn }) => fn.countAll<number>().as('count')).where('cluster', '=', cluster).where('role', '=', 'control-plane').executeTakeFirst()
  return Number(row?.count ?? 0)
}
