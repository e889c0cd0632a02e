import { mkdtempSync, promises as fs, readdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sql, type Kysely } from 'kysely'
import { FileMigrationProvider, Migrator } from 'kysely/migration'
import t from 'tap'
import { describeDatabase, isPostgres, MIGRATIONS_DIR, migrateToLatest, openStore } from '../../src/storage/db.ts'
import { removeTree } from '../helpers/engine.ts'
import { forEachBackend, testDatabase, testStore } from '../helpers/backends.ts'
import { postgresAvailable } from '../helpers/postgres.ts'

const migrationNames = () => readdirSync(MIGRATIONS_DIR).filter((name) => name.endsWith('.ts')).map((name) => name.replace(/\.ts$/, '')).sort()

t.test('the store is a WAL SQLite file with foreign keys on, migrated once', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-store-'))
  t.teardown(() => removeTree(dir))
  const file = path.join(dir, 'nested', 'slipway.db')
  const store = openStore(file)
  t.teardown(() => store.destroy())
  const expected = migrationNames()
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

forEachBackend(t, 'the same migrations, applied once, enforce the same constraints', async (t, backend) => {
  const store = (await testDatabase(t, backend)).open()
  t.equal(isPostgres(store), backend === 'postgres')
  t.same(await migrateToLatest(store), migrationNames(), 'every migration in migrations/, in order')
  t.same(await migrateToLatest(store), [], 'a second run applies nothing')
  const now = new Date().toISOString()
  await t.rejects(
    store.insertInto('groups').values({ id: 'g', name: 'g', profile: 'missing', selector: '{}', metadata: '{}', source: 'api', created_at: now, updated_at: now }).execute(),
    /FOREIGN KEY|foreign key/,
    'a group cannot name a profile that does not exist',
  )
  await t.rejects(
    store.insertInto('lock_groups').values({ name: 'g', slots: -1, ttl_seconds: null, updated_at: now }).execute(),
    /CHECK|check constraint/,
    'check constraints hold',
  )
  const lease = { mac: '52:54:00:00:00:01', client_id: null, hostname: null, expires_at: now, updated_at: now }
  await store.insertInto('dhcp_leases').values({ ip: '10.0.0.5', state: 'bound', ...lease }).execute()
  await t.rejects(store.insertInto('dhcp_leases').values({ ip: '10.0.0.6', state: 'offered', ...lease }).execute(), 'the partial unique index: one active lease per MAC')
  await store.insertInto('dhcp_leases').values({ ip: '10.0.0.7', state: 'released', ...lease }).execute()
  t.pass('released leases are history, outside the partial index')
})

// PostgreSQL only: replicas share PostgreSQL, never a SQLite file (SQLite has no migration lock).
t.test('replicas starting together on PostgreSQL migrate once', { skip: postgresAvailable() ? false : 'PostgreSQL is not available here' }, async (t) => {
  const database = await testDatabase(t, 'postgres')
  const applied = await Promise.all([migrateToLatest(database.open()), migrateToLatest(database.open()), migrateToLatest(database.open())])
  t.same(applied.flat().sort(), migrationNames(), 'each migration applied by exactly one of them')
})

forEachBackend(t, 'values come back as they went in: 64-bit sizes, bytes, coordinates, counts, generated ids', async (t, backend) => {
  const store = await testStore(t, backend)
  const now = new Date().toISOString()
  const terabytes = 7_681_501_126_656 // a 7.68 TB disk: beyond 32 bits
  const machine = { boot_mac: '52:54:00:00:00:01', boot_random_id: null, state: 'discovered' as const, state_changed_at: now, facts: '{}', first_seen_at: now, last_seen_at: now, created_at: now, updated_at: now }
  await store.insertInto('machines').values({ uuid: 'u1', ...machine }).execute()
  await store.insertInto('machine_disks').values({ uuid: 'u1', path: '/dev/nvme0n1', size_bytes: terabytes, model: null, serial: null }).execute()
  const disk = await store.selectFrom('machine_disks').selectAll().executeTakeFirstOrThrow()
  t.equal(disk.size_bytes, terabytes)
  t.equal(typeof disk.size_bytes, 'number')

  const sealed = Buffer.from([0, 1, 2, 255, 254, 0, 128])
  await store.insertInto('engine_secrets').values({ name: 'k', public_part: null, sealed, created_at: now }).execute()
  const secret = await store.selectFrom('engine_secrets').select('sealed').executeTakeFirstOrThrow()
  t.ok(Buffer.from(secret.sealed).equals(sealed), 'bytes, including NUL and high bytes')

  const latitude = 48.856614
  const longitude = 2.3522219
  await store.insertInto('cluster_registry').values({ name: 'paris', source: 'manual', credential_kind: 'token', latitude, longitude, created_at: now, updated_at: now }).execute()
  const entry = await store.selectFrom('cluster_registry').select(['latitude', 'longitude', 'labels', 'ingress_addresses']).executeTakeFirstOrThrow()
  t.same([entry.latitude, entry.longitude], [latitude, longitude], 'coordinates exactly (double precision)')
  t.same([entry.labels, entry.ingress_addresses], ['{}', '[]'], 'column defaults')

  const count = await store.selectFrom('machines').select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()
  t.equal(count.count, 1)
  t.equal(typeof count.count, 'number', 'count(*) is a number on both')

  for (const reason of ['first', 'second']) await store.insertInto('machine_events').values({ uuid: 'u1', from_state: null, to_state: 'discovered', reason, at: now }).execute()
  const events = await store.selectFrom('machine_events').select(['id', 'reason']).orderBy('id').execute()
  t.same(events.map((event) => event.reason), ['first', 'second'])
  t.ok(events[0]!.id < events[1]!.id, 'generated ids grow')
  t.equal(typeof events[0]!.id, 'number')

  const deleted = await store.deleteFrom('machine_events').where('reason', '=', 'first').executeTakeFirst()
  t.equal(Number(deleted.numDeletedRows), 1)
  t.same(await store.selectFrom('machines').select('uuid').where('uuid', '=', 'U1').execute(), [], 'text comparison is case-sensitive on both')
})

forEachBackend(t, 'runs stored before selector targeting keep their cluster (migration 0009)', async (t, backend) => {
  const store = (await testDatabase(t, backend)).open()
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

t.test('the database is described for logs without its password', async (t) => {
  t.equal(describeDatabase({ driver: 'sqlite', path: '/srv/slipway.db', url: '', poolSize: 10 }), 'sqlite:/srv/slipway.db')
  const described = describeDatabase({ driver: 'postgres', path: '', url: 'postgres://slipway:s3cret%21@db.example:5433/slipway?sslmode=require&password=other', poolSize: 10 })
  t.equal(described, 'postgres://slipway@db.example:5433/slipway')
  t.notMatch(described, /s3cret|other/)
})
