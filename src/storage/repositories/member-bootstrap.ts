import type { BootstrapProgress, BootstrapRepository } from '../../core/clusters/bootstrap-progress.ts'
import type { Db } from '../database.ts'
import { inTransaction } from '../transactions.ts'

/** The core's bootstrap-progress port over kysely: one row per member, joined with its membership. */
export function bootstrapRepository(db: Db): BootstrapRepository {
  const selectProgress = () =>
    db
      .selectFrom('member_bootstrap')
      .innerJoin('cluster_members', 'cluster_members.machine_uuid', 'member_bootstrap.machine_uuid')
      .select(['member_bootstrap.machine_uuid', 'cluster_members.cluster', 'cluster_members.hostname', 'phase', 'command', 'message', 'log', 'attempts', 'updated_at'])
  const toProgress = (row: Awaited<ReturnType<ReturnType<typeof selectProgress>['execute']>>[number]): BootstrapProgress => ({
    uuid: row.machine_uuid,
    cluster: row.cluster,
    hostname: row.hostname,
    phase: row.phase,
    command: row.command,
    message: row.message,
    log: row.log,
    attempts: row.attempts,
    updatedAt: row.updated_at,
  })
  return {
    findMember: async (uuid) => db.selectFrom('cluster_members').select(['cluster', 'hostname']).where('machine_uuid', '=', uuid).executeTakeFirst(),
    find: async (uuid) => {
      const row = await selectProgress().where('member_bootstrap.machine_uuid', '=', uuid).executeTakeFirst()
      return row ? toProgress(row) : undefined
    },
    save: async (progress) => {
      const columns = { phase: progress.phase, command: progress.command, message: progress.message, log: progress.log, attempts: progress.attempts, updated_at: progress.updatedAt }
      await db
        .insertInto('member_bootstrap')
        .values({ machine_uuid: progress.uuid, ...columns })
        .onConflict((conflict) => conflict.column('machine_uuid').doUpdateSet(columns))
        .execute()
    },
    list: async (cluster) => {
      let query = selectProgress().orderBy('cluster_members.cluster').orderBy('cluster_members.hostname')
      if (cluster) query = query.where('cluster_members.cluster', '=', cluster)
      return (await query.execute()).map(toProgress)
    },
    transaction: (work) => inTransaction(db, (trx) => work(bootstrapRepository(trx))),
  }
}
