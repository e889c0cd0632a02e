/**
 * The release store's halt on both backends: it changes only the state (and updatedAt) of a release
 * still active at the revision the reconciler read, and raced against an upgrade from another replica
 * (a second connection pool on PostgreSQL) it never halts the new revision nor undoes the upgrade.
 */
import t from 'tap'
import { rolloutSettingsOf, type Release, type ReleaseRevision } from '../../src/core/releases/release.ts'
import { migrateToLatest } from '../../src/storage/db.ts'
import { releaseRepository } from '../../src/storage/repositories/releases.ts'
import { forEachBackend, testDatabase } from '../helpers/backends.ts'
import { sleep } from '../helpers/wait.ts'

const at = '2026-11-21T10:00:00.000Z'
const later = '2026-11-21T10:01:00.000Z'
const releaseOf = (name: string, overrides: Partial<Release> = {}): Release => ({
  name,
  namespace: 'shop',
  selector: 'env=prod',
  dns: { hostnames: [], policy: 'nearest', ttlSeconds: null, weights: {}, failover: [] },
  excludedClusters: [],
  revision: 1,
  state: 'active',
  rollout: rolloutSettingsOf({ max_parallel: 10, max_failures: 1, ready_timeout_seconds: 300 }),
  createdAt: at,
  updatedAt: at,
  tenant: null,
  ...overrides,
})
const revisionOf = (revision: number): ReleaseRevision => ({ revision, chartName: 'web', chartVersion: `1.${revision}.0`, values: {}, clusterValues: false, description: revision === 1 ? 'Install' : 'Upgrade', createdAt: at })
/** What ReleaseService.upgrade commits: a new revision, with a new selector and rollout settings. */
const upgraded = (release: Release): Release => ({ ...release, revision: 2, selector: 'env=staging', rollout: { ...release.rollout, maxFailures: 5 }, state: 'active', updatedAt: later })

forEachBackend(t, 'halt: only the state and updatedAt, only of a release still active at the revision given', async (t, backend) => {
  const store = (await testDatabase(t, backend)).open()
  await migrateToLatest(store)
  const repository = releaseRepository(store)
  const release = releaseOf('web')
  await repository.insert(release, revisionOf(1))

  t.equal(await repository.halt('shop', 'web', 1, later), true)
  t.same(await repository.find('shop', 'web'), { ...release, state: 'halted', updatedAt: later })
  t.equal(await repository.halt('shop', 'web', 1, later), false, 'a halted release is not halted again')

  await repository.save({ ...release, state: 'paused' })
  t.equal(await repository.halt('shop', 'web', 1, later), false, 'a paused release stays paused')
  t.equal((await repository.find('shop', 'web'))!.state, 'paused')

  await repository.transaction(async (trx) => {
    await trx.insertRevision('shop', 'web', revisionOf(2))
    await trx.save(upgraded(release))
  })
  t.equal(await repository.halt('shop', 'web', 1, '2026-11-21T10:02:00.000Z'), false, 'revision 2 is not halted for revision 1')
  t.same(await repository.find('shop', 'web'), upgraded(release), 'the upgrade is kept whole')
  t.equal(await repository.halt('shop', 'web', 2, '2026-11-21T10:02:00.000Z'), true)
  t.match(await repository.find('shop', 'web'), { revision: 2, selector: 'env=staging', rollout: { maxFailures: 5 }, state: 'halted' })
  t.equal(await repository.halt('shop', 'other', 1, later), false, 'a release that does not exist is not halted')
})

forEachBackend(t, 'a halt raced against an upgrade from another replica never halts the new revision nor undoes it', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const first = database.open()
  await migrateToLatest(first)
  const reconciler = releaseRepository(first)
  const operator = releaseRepository(backend === 'postgres' ? database.open() : first)
  let halts = 0
  for (let round = 0; round < 40; round++) {
    const release = releaseOf(`web-${round}`)
    await reconciler.insert(release, revisionOf(1))
    const [halted] = await Promise.all([
      (async () => {
        await sleep(Math.random() * 3)
        // As the reconciler halts: with its event, in one transaction.
        return reconciler.transaction(async (trx) => {
          if (!(await trx.halt('shop', release.name, 1, later))) return false
          await trx.appendEvent('shop', release.name, { at: later, cluster: null, message: 'rollout halted' })
          return true
        })
      })(),
      (async () => {
        await sleep(Math.random() * 3)
        // An upgrade made on the release read before the halt: a new revision is a new rollout (active).
        await operator.transaction(async (trx) => {
          await trx.insertRevision('shop', release.name, revisionOf(2))
          await trx.save(upgraded(release))
        })
      })(),
    ])
    if (halted) halts++
    const stored = await reconciler.find('shop', release.name)
    if (JSON.stringify(stored) !== JSON.stringify(upgraded(release))) t.fail(`round ${round}: ${JSON.stringify(stored)}`)
  }
  t.pass(`${halts} of 40 halts landed before the upgrade (and were superseded by it), ${40 - halts} found revision 2 and changed nothing`)
})
