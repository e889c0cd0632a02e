import { mkdtempSync, promises as fs, readdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sql, type Kysely } from 'kysely'
import { FileMigrationProvider, Migrator } from 'kysely/migration'
import t from 'tap'
import { MIGRATIONS_DIR, migrateToLatest, openStore } from '../../src/storage/db.ts'
import { removeTree } from '../helpers/engine.ts'

t.test('the store is a WAL SQLite file with foreign keys on, migrated once', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-store-'))
  t.teardown(() => removeTree(dir))
  const file = path.join(dir, 'nested', 'slipway.db')
  const store = openStore(file)
  t.teardown(() => store.destroy())
  const expected = readdirSync(MIGRATIONS_DIR).filter((name) => name.endsWith('.ts')).map((name) => name.replace(/\.ts$/, '')).sort()
  t.ok(expected.includes('20261121T0001_foundation'))
  t.same(await migrateToLatest(store), expected, 'every migration in migrations/, in order')
  t.same(await migrateToLatest(store), [], 'a second run applies nothing')
  const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store)
  t.equal(journal.rows[0]?.journal_mode, 'wal')
  const foreignKeys = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(store)
  t.equal(foreignKeys.rows[0]?.foreign_keys, 1)
  const now = new Date().toISOString()
  await t.rejects(
    store.insertInto('groups').values({ id: 'g', name: 'g', profile: 'missing', selector: '{}', metadata: '{}', source: 'api', created_at: now, updated_at: now }).execute(),
    /FOREIGN KEY/,
    'a group cannot name a profile that does not exist',
  )
})

t.test('runs stored before selector targeting keep their cluster (migration 0009)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-store-'))
  t.teardown(() => removeTree(dir))
  const store = openStore(path.join(dir, 'slipway.db'))
  t.teardown(() => store.destroy())
  const migrator = new Migrator({ db: store, provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }) })
  t.notOk((await migrator.migrateTo('20261121T0008_rollouts')).error)
  const at = '2026-11-21T00:00:00.000Z'
  const old = store as unknown as Kysely<any>
  await old.insertInto('rollout_runs').values({ id: 'r1', cluster: 'prod', spec: '{"cluster":"prod"}', state: 'completed', failures: 0, created_at: at, updated_at: at, finished_at: at }).execute()
  await old.insertInto('rollout_machines').values({ run_id: 'r1', uuid: 'u1', role: 'node', hostname: 'prod-node-1', phase: 'done', phase_changed_at: at }).execute()
  await old.insertInto('rollout_events').values({ run_id: 'r1', uuid: null, at, message: 'run created' }).execute()
  t.ok((await migrateToLatest(store)).includes('20261121T0009_rollout_selectors'))
  t.match(await store.selectFrom('rollout_runs').selectAll().executeTakeFirst(), { id: 'r1', clusters: '["prod"]' })
  t.notOk('cluster' in (await store.selectFrom('rollout_runs').selectAll().executeTakeFirstOrThrow()), 'the single-cluster column is gone')
  t.match(await store.selectFrom('rollout_machines').selectAll().executeTakeFirst(), { uuid: 'u1', cluster: 'prod' })
  t.equal((await store.selectFrom('rollout_events').selectAll().execute()).length, 1, "the run's events survived (no cascade)")
})
