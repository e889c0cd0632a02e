import type { Selectable } from 'kysely'
import type { ChartRepository, StoredChart } from '../../core/releases/chart-service.ts'
import type { ReleaseRepository } from '../../core/releases/ports.ts'
import type { ClusterRelease, ObjectRef, Release, ReleaseDns, ReleaseRevision, RolloutSettings } from '../../core/releases/release.ts'
import { conflict } from '../../core/errors.ts'
import type { ChartsTable, ClusterReleasesTable, Db, ReleaseRevisionsTable, ReleasesTable } from '../database.ts'
import { inTransaction, uniqueViolation } from '../transactions.ts'

const toChart = (row: Omit<Selectable<ChartsTable>, 'archive'>): StoredChart => ({
  name: row.name,
  version: row.version,
  appVersion: row.app_version,
  description: row.description,
  apiVersion: row.api_version,
  digest: row.digest,
  sizeBytes: row.size_bytes,
  source: row.source,
  sourceUrl: row.source_url,
  createdAt: row.created_at,
})
const CHART_COLUMNS = ['name', 'version', 'app_version', 'description', 'api_version', 'digest', 'size_bytes', 'source', 'source_url', 'created_at'] as const

/** The chart store over kysely: archives are blobs in the database, so a backup holds them too. */
export function chartRepository(db: Db): ChartRepository {
  return {
    list: async () => (await db.selectFrom('charts').select(CHART_COLUMNS).orderBy('name').orderBy('created_at').execute()).map(toChart),
    find: async (name, version) => {
      const row = await db.selectFrom('charts').select(CHART_COLUMNS).where('name', '=', name).where('version', '=', version).executeTakeFirst()
      return row ? toChart(row) : undefined
    },
    archive: async (name, version) => {
      const row = await db.selectFrom('charts').select('archive').where('name', '=', name).where('version', '=', version).executeTakeFirst()
      return row ? Buffer.from(row.archive) : undefined
    },
    insert: async (chart, archive) => {
      await db
        .insertInto('charts')
        .values({
          name: chart.name,
          version: chart.version,
          app_version: chart.appVersion,
          description: chart.description,
          api_version: chart.apiVersion,
          digest: chart.digest,
          size_bytes: chart.sizeBytes,
          archive,
          source: chart.source,
          source_url: chart.sourceUrl,
          created_at: chart.createdAt,
        })
        .execute()
    },
    delete: async (name, version) => {
      await db.deleteFrom('charts').where('name', '=', name).where('version', '=', version).execute()
    },
  }
}

const toRelease = (row: Selectable<ReleasesTable>): Release => ({
  name: row.name,
  namespace: row.namespace,
  selector: row.selector,
  dns: { hostnames: [], policy: 'nearest', ttlSeconds: null, weights: {}, failover: [], ...(JSON.parse(row.dns) as Partial<ReleaseDns>) },
  excludedClusters: JSON.parse(row.excluded_clusters) as string[],
  revision: row.revision,
  state: row.state,
  rollout: JSON.parse(row.rollout) as RolloutSettings,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  tenant: row.tenant,
})
const releaseColumns = (release: Release) => ({
  selector: release.selector,
  dns: JSON.stringify(release.dns),
  excluded_clusters: JSON.stringify(release.excludedClusters),
  revision: release.revision,
  state: release.state,
  rollout: JSON.stringify(release.rollout),
  updated_at: release.updatedAt,
})
const toRevision = (row: Selectable<ReleaseRevisionsTable>): ReleaseRevision => ({
  revision: row.revision,
  chartName: row.chart_name,
  chartVersion: row.chart_version,
  values: JSON.parse(row.values) as Record<string, unknown>,
  clusterValues: row.cluster_values === 1,
  description: row.description,
  createdAt: row.created_at,
})
const revisionRow = (namespace: string, name: string, revision: ReleaseRevision) => ({
  namespace,
  name,
  revision: revision.revision,
  chart_name: revision.chartName,
  chart_version: revision.chartVersion,
  values: JSON.stringify(revision.values),
  cluster_values: revision.clusterValues ? 1 : 0,
  description: revision.description,
  created_at: revision.createdAt,
})
const toClusterRelease = (row: Selectable<ClusterReleasesTable>): ClusterRelease => ({
  cluster: row.cluster,
  revision: row.revision,
  phase: row.phase,
  error: row.error,
  attempts: row.attempts,
  retryAt: row.retry_at,
  objects: JSON.parse(row.objects) as ObjectRef[],
  updatedAt: row.updated_at,
  readyAt: row.ready_at,
})

/** The core's release port over kysely. */
export function releaseRepository(db: Db): ReleaseRepository {
  return {
    list: async () => (await db.selectFrom('releases').selectAll().orderBy('namespace').orderBy('name').execute()).map(toRelease),
    find: async (namespace, name) => {
      const row = await db.selectFrom('releases').selectAll().where('namespace', '=', namespace).where('name', '=', name).executeTakeFirst()
      return row ? toRelease(row) : undefined
    },
    insert: async (release, revision) => {
      try {
        await db.insertInto('releases').values({ namespace: release.namespace, name: release.name, created_at: release.createdAt, tenant: release.tenant ?? null, ...releaseColumns(release) }).execute()
      } catch (error) {
        if (uniqueViolation(error) === 'primary-key') throw conflict('RELEASE_EXISTS', `release ${release.namespace}/${release.name} already exists`)
        throw error
      }
      await db.insertInto('release_revisions').values(revisionRow(release.namespace, release.name, revision)).execute()
    },
    save: async (release) => {
      await db.updateTable('releases').set(releaseColumns(release)).where('namespace', '=', release.namespace).where('name', '=', release.name).execute()
    },
    halt: async (namespace, name, revision, at) => {
      // One conditional statement: atomic on SQLite and PostgreSQL alike, whatever runs beside it.
      const result = await db
        .updateTable('releases')
        .set({ state: 'halted', updated_at: at })
        .where('namespace', '=', namespace)
        .where('name', '=', name)
        .where('revision', '=', revision)
        .where('state', '=', 'active')
        .executeTakeFirst()
      return result.numUpdatedRows > 0n
    },
    delete: async (namespace, name) => {
      await db.deleteFrom('releases').where('namespace', '=', namespace).where('name', '=', name).execute()
    },
    insertRevision: async (namespace, name, revision) => {
      await db.insertInto('release_revisions').values(revisionRow(namespace, name, revision)).execute()
    },
    listRevisions: async (namespace, name) =>
      (await db.selectFrom('release_revisions').selectAll().where('namespace', '=', namespace).where('name', '=', name).orderBy('revision').execute()).map(toRevision),
    listClusters: async (namespace, name) =>
      (await db.selectFrom('cluster_releases').selectAll().where('namespace', '=', namespace).where('name', '=', name).orderBy('cluster').execute()).map(toClusterRelease),
    saveCluster: async (namespace, name, status) => {
      const values = {
        revision: status.revision,
        phase: status.phase,
        error: status.error,
        attempts: status.attempts,
        retry_at: status.retryAt,
        objects: JSON.stringify(status.objects),
        updated_at: status.updatedAt,
        ready_at: status.readyAt,
      }
      await db
        .insertInto('cluster_releases')
        .values({ namespace, name, cluster: status.cluster, ...values })
        .onConflict((conflicting) => conflicting.columns(['namespace', 'name', 'cluster']).doUpdateSet(values))
        .execute()
    },
    deleteCluster: async (namespace, name, cluster) => {
      await db.deleteFrom('cluster_releases').where('namespace', '=', namespace).where('name', '=', name).where('cluster', '=', cluster).execute()
    },
    appendEvent: async (namespace, name, event) => {
      await db.insertInto('release_events').values({ namespace, name, cluster: event.cluster, at: event.at, message: event.message }).execute()
    },
    listEvents: async (namespace, name, limit) =>
      (await db.selectFrom('release_events').select(['at', 'cluster', 'message', 'id']).where('namespace', '=', namespace).where('name', '=', name).orderBy('id', 'desc').limit(limit).execute())
        .reverse()
        .map((row) => ({ at: row.at, cluster: row.cluster, message: row.message })),
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(releaseRepository(trx))),
  }
}
