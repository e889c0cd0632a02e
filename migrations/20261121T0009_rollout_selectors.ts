import type { Kysely } from 'kysely'

// Rolling-update runs may target machines of several clusters (a label selector): each machine
// records its cluster (its lock group, its API server, its quorum), and a run lists the clusters it
// touches instead of naming one. Portable statements only (add, copy in code, drop, rename).
// Typed Kysely<any> on purpose: a migration must keep working after today's row types change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('rollout_machines').addColumn('cluster', 'text', (column) => column.notNull().defaultTo('')).execute()
  await db.schema.alterTable('rollout_runs').addColumn('clusters', 'text', (column) => column.notNull().defaultTo('[]')).execute() // JSON string[]
  for (const run of await db.selectFrom('rollout_runs').select(['id', 'cluster']).execute()) {
    await db.updateTable('rollout_runs').set({ clusters: JSON.stringify([run.cluster]) }).where('id', '=', run.id).execute()
    await db.updateTable('rollout_machines').set({ cluster: run.cluster }).where('run_id', '=', run.id).execute()
  }
  await db.schema.alterTable('rollout_runs').dropColumn('cluster').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('rollout_runs').addColumn('cluster', 'text', (column) => column.notNull().defaultTo('')).execute()
  for (const run of await db.selectFrom('rollout_runs').select(['id', 'clusters']).execute()) {
    await db.updateTable('rollout_runs').set({ cluster: (JSON.parse(run.clusters) as string[])[0] ?? '' }).where('id', '=', run.id).execute()
  }
  await db.schema.alterTable('rollout_runs').dropColumn('clusters').execute()
  await db.schema.alterTable('rollout_machines').dropColumn('cluster').execute()
}
