/**
 * Snapshots, restore and the inventory's JSON transfer against real SQLite files: snapshots taken
 * while the store writes, restores refused for every kind of bad snapshot and while an engine has the
 * database open (in this process or another), a killed engine's WAL kept in the database set aside,
 * inventory round trips, idempotence, and imports refused whole.
 */
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t, { type Test } from 'tap'
import { SlipwayError } from '../../src/core/errors.ts'
import { takeSnapshot } from '../../src/storage/backup.ts'
import { migrateToLatest, openStore } from '../../src/storage/db.ts'
import type { InventoryDocument } from '../../src/storage/inventory-document.ts'
import { exportInventory, importInventory } from '../../src/storage/inventory-transfer.ts'
import { restoreDatabase, RestoreError } from '../../src/storage/restore.ts'
import { SecretBox } from '../../src/storage/secret-box.ts'
import { testStore } from '../helpers/backends.ts'
import { discoveryReport, stormUuidOf } from '../helpers/discovery-reports.ts'
import { postgresAvailable } from '../helpers/postgres.ts'
import { auth, removeTree, startTestEngine, type TestEngine } from '../helpers/engine.ts'
import { discoveryProblems, openReadOnly, sqliteProblems } from '../helpers/sqlite-consistency.ts'
import { sleep } from '../helpers/wait.ts'

const require = createRequire(import.meta.url)

const scratchDir = (t: Test) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-backup-'))
  t.teardown(() => removeTree(dir))
  return dir
}

/** An engine with machines, a provisioned cluster (PKI sealed) and a hand-registered one (credential sealed). */
async function populatedEngine(t: Test, machines = 4): Promise<TestEngine> {
  const started = await startTestEngine()
  t.teardown(async () => {
    await started.engine.close().catch(() => {})
    removeTree(path.dirname(started.dataDir))
  })
  const app = started.engine.app
  for (let n = 1; n <= machines; n++) {
    const answer = await app.inject({ method: 'POST', url: '/discovery', payload: discoveryReport(n) })
    t.equal(answer.statusCode, 200, answer.body)
  }
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, headers: auth, payload })
  t.equal((await post('/api/v1/flavors', { name: 'small', control_plane_count: 1, nodes_min: 0, nodes_max: 2 })).statusCode, 201)
  t.equal((await post('/api/v1/clusters', { name: 'edge', flavor: 'small', labels: { env: 'lab' } })).statusCode, 201)
  t.equal((await post('/api/v1/scheduler/run', {})).statusCode, 200)
  await app.inject({ method: 'PUT', url: `/api/v1/machines/${stormUuidOf(4)}/labels`, headers: auth, payload: { rack: 'r1' } })
  const registered = await post('/api/v1/clusters', { name: 'far', server: 'https://127.0.0.1:1', credentials: { token: 'sekret-token-value' }, labels: { region: 'west' } })
  t.equal(registered.statusCode, 201, registered.body)
  return started
}

t.test('a snapshot taken while the store writes is one consistent commit', async (t) => {
  const dir = scratchDir(t)
  const databaseFile = path.join(dir, 'slipway.db')
  const store = openStore(databaseFile)
  t.teardown(() => store.destroy())
  await migrateToLatest(store)
  const { MachineService } = await import('../../src/core/machines/machine-service.ts')
  const { machineRepository } = await import('../../src/storage/repositories/machines.ts')
  const machines = new MachineService(machineRepository(store))
  let written = 0
  let writing = true
  const writer = (async () => {
    for (let n = 1; writing && n <= 5000; n++) {
      await machines.discover(discoveryReport(n))
      written = n
      // better-sqlite3 answers synchronously: yield, as an engine between two requests does.
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  while (written < 300) await sleep(5)
  const before = written
  const snapshot = await takeSnapshot({ databaseFile })
  const after = written
  writing = false
  await writer
  t.teardown(() => snapshot.dispose())
  t.match(path.basename(snapshot.file), /^slipway-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.sqlite3$/)
  t.ok(snapshot.latestMigration, 'the snapshot knows its schema level')
  const copy = openReadOnly(snapshot.file)
  t.teardown(() => copy.close())
  t.same(sqliteProblems(copy), [])
  t.same(discoveryProblems(copy, { interfaces: 1, disks: 1 }), [], 'no half-written discovery')
  const count = (copy.prepare('select count(*) as n from machines').get() as { n: number }).n
  t.ok(count >= before && count <= after, `${count} machines: between ${before} written before and ${after} after the snapshot`)
  t.notOk(existsSync(`${snapshot.file}-wal`), 'self-contained: no WAL beside it')
  snapshot.dispose()
  t.notOk(existsSync(path.dirname(snapshot.file)), 'dispose removes the temporary folder')
  t.same(readdirSync(dir).filter((name) => name.startsWith('.snapshot-')), [])
})

t.test('restore: refuses bad snapshots and an open database; keeps the replaced database with its WAL', async (t) => {
  const source = await populatedEngine(t)
  const snapshot = await takeSnapshot({ databaseFile: source.config.database.path })
  t.teardown(() => snapshot.dispose())
  await source.engine.close()

  const dir = scratchDir(t)
  const databaseFile = path.join(dir, 'var', 'slipway.db')
  const keyFile = source.config.secrets.keyFile
  const refusal = (options: Parameters<typeof restoreDatabase>[0]) => {
    try {
      restoreDatabase(options)
      return 'restored'
    } catch (error) {
      if (error instanceof RestoreError) return error.code
      throw error
    }
  }

  t.equal(refusal({ snapshotFile: path.join(dir, 'missing.sqlite3'), databaseFile }), 'SNAPSHOT_NOT_FOUND')
  const garbage = path.join(dir, 'garbage.sqlite3')
  writeFileSync(garbage, 'this is not a database at all, just some text that goes on for a while'.repeat(100))
  t.equal(refusal({ snapshotFile: garbage, databaseFile }), 'SNAPSHOT_UNREADABLE')
  const foreign = path.join(dir, 'foreign.sqlite3')
  const other = new SQLite(foreign)
  other.exec('create table notes (body text); insert into notes values (1)')
  other.close()
  t.equal(refusal({ snapshotFile: foreign, databaseFile }), 'SNAPSHOT_NOT_SLIPWAY')
  const newer = path.join(dir, 'newer.sqlite3')
  copyFileSync(snapshot.file, newer)
  const newerDb = new SQLite(newer)
  newerDb.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('29991231T0001_from_the_future', new Date().toISOString())
  newerDb.close()
  t.equal(refusal({ snapshotFile: newer, databaseFile }), 'SNAPSHOT_TOO_NEW')
  const corrupt = path.join(dir, 'corrupt.sqlite3')
  copyFileSync(snapshot.file, corrupt)
  const corruptDb = new SQLite(corrupt)
  // A dangling foreign key is what a torn copy or a hand edit leaves behind.
  corruptDb.pragma('foreign_keys = OFF')
  corruptDb.prepare("insert into machine_disks (uuid, path, size_bytes) values ('00000000-0000-4000-8000-000000000000', '/dev/x', 1)").run()
  corruptDb.close()
  t.equal(refusal({ snapshotFile: corrupt, databaseFile }), 'SNAPSHOT_CORRUPT')
  const otherKey = path.join(dir, 'other.key')
  writeFileSync(otherKey, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o600 })
  t.equal(refusal({ snapshotFile: snapshot.file, databaseFile, secretsKeyFile: otherKey }), 'SNAPSHOT_OTHER_SECRETS_KEY')
  t.notOk(existsSync(databaseFile), 'nothing was installed by a refused restore')

  // A target engine that ran and wrote, then was killed: its last commits live only in its WAL.
  const target = await startTestEngine({ env: { SLIPWAY_DATA_DIR: path.join(dir, 'var') } })
  const targetScratch = path.dirname(target.contentDir)
  t.teardown(() => removeTree(targetScratch))
  t.equal(target.config.database.path, databaseFile)
  t.equal(refusal({ snapshotFile: snapshot.file, databaseFile }), 'DATABASE_IN_USE', 'refused while an engine in this process has it open')
  await target.engine.close()
  await writeThenGetKilled(databaseFile, 'a0000000-0000-4000-8000-00000000dead')
  t.ok(existsSync(`${databaseFile}-wal`), 'the killed writer left its WAL')
  const holder = await holdOpenInChild(databaseFile)
  t.equal(refusal({ snapshotFile: snapshot.file, databaseFile }), 'DATABASE_IN_USE', 'refused while another process has it open')
  await holder.stop()

  const restored = restoreDatabase({ snapshotFile: snapshot.file, databaseFile, secretsKeyFile: keyFile, now: new Date('2026-01-02T03:04:05.678Z') })
  t.equal(restored.previousDatabase, `${databaseFile}.before-restore-2026-01-02T03-04-05-678Z`)
  t.notOk(existsSync(`${databaseFile}-wal`), 'no WAL of the old database left beside the new one')
  const kept = openReadOnly(restored.previousDatabase!)
  t.ok(kept.prepare("select 1 from machines where uuid = 'a0000000-0000-4000-8000-00000000dead'").get(), "the killed engine's last commit is in the database kept aside")
  kept.close()
  const installed = openReadOnly(databaseFile)
  t.same(sqliteProblems(installed), [])
  t.equal((installed.prepare('select count(*) as n from machines').get() as { n: number }).n, 4, 'the snapshot is the database now')
  installed.close()

  // An engine starts on the restored database with the original key and serves what it holds.
  copyFileSync(keyFile, path.join(dir, 'var', 'secrets.key'))
  const revived = await startTestEngine({ dataDir: path.join(dir, 'var'), contentDir: target.contentDir })
  t.teardown(() => revived.engine.close())
  const listed = await revived.engine.app.inject({ method: 'GET', url: '/api/v1/machines', headers: auth })
  t.equal(listed.json().length, 4)
  const cluster = await revived.engine.app.inject({ method: 'GET', url: '/api/v1/clusters/edge', headers: auth })
  t.equal(cluster.statusCode, 200, 'the provisioned cluster (sealed PKI) is readable with the restored key')
})

t.test('inventory: export, import into another engine with the same key, idempotent, all or nothing', async (t) => {
  const source = await populatedEngine(t)
  await source.engine.store.updateTable('cluster_registry').set({ tenant: 'team-a' }).where('name', '=', 'far').execute()
  const exported = await exportInventory(source.engine.store)
  t.equal(exported.slipway_inventory, 1)
  t.equal(exported.clusters.find((cluster) => cluster.name === 'far')?.tenant, 'team-a', "a cluster's tenant travels with it")
  t.equal(exported.machines.length, 4)
  t.ok(exported.machines.some((machine) => machine.role?.role === 'control-plane' && machine.role.group), 'roles travel with their per-machine group')
  const text = JSON.stringify(exported)
  t.notOk(text.includes('sekret-token-value'), 'no credential in clear')
  t.notOk(text.includes('PRIVATE KEY'), 'no private key in clear')
  const far = exported.clusters.find((cluster) => cluster.name === 'far')
  t.ok(far?.credential_sealed, 'the hand-registered credential travels sealed')
  t.ok(exported.clusters.find((cluster) => cluster.name === 'edge')?.provisioning?.pki?.sealed, 'the PKI travels sealed')
  const controlPlane = exported.machines.find((machine) => machine.role?.role === 'control-plane')!
  t.ok(controlPlane.role!.certificates?.sealed, "the member's issued certificates travel sealed (an import keeps them instead of issuing new keys)")
  t.equal((controlPlane.role!.certificates?.certificates as unknown[]).length, 12, 'with their public parts (12 for a control-plane member)')

  // Same key file, fresh database. First without the role profiles: refused, with where and why.
  const dir = scratchDir(t)
  const store = openStore(path.join(dir, 'slipway.db'))
  t.teardown(() => store.destroy())
  await migrateToLatest(store)
  const secrets = SecretBox.fromKeyFile(source.config.secrets.keyFile)
  await t.rejects(importInventory(store, secrets, exported), { code: 'INVENTORY_CONFLICT', details: { problems: [{ path: /^machines\[\d\]\.role\.group\.profile$/ }] } })
  t.equal((await store.selectFrom('machines').selectAll().execute()).length, 0, 'nothing written')
  const sample = await exportTemplatesFrom(source)
  for (const profile of sample) await store.insertInto('profiles').values(profile).execute()
  const first = await importInventory(store, secrets, exported)
  t.same(first, { machines: { created: 4, updated: 0 }, flavors: { created: 1, updated: 0 }, clusters: { created: 2, updated: 0 } })
  const again = await importInventory(store, secrets, exported)
  t.same(again, { machines: { created: 0, updated: 4 }, flavors: { created: 0, updated: 1 }, clusters: { created: 0, updated: 2 } })
  const reexported = await exportInventory(store)
  t.same({ ...reexported, exported_at: '' }, { ...exported, exported_at: '' }, 'a round trip changes nothing')
  const counts = await store.selectFrom('machine_interfaces').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  t.equal(Number(counts.n), 4, 'importing twice duplicates no interface')

  const expectRefusal = async (document: unknown, code: string, path: RegExp, key = secrets) => {
    const before = await exportInventory(store)
    try {
      await importInventory(store, key, document)
      t.fail(`expected ${code}`)
    } catch (error) {
      t.ok(error instanceof SlipwayError, String(error))
      t.equal((error as SlipwayError).code, code)
      const problems = (error as SlipwayError).details?.problems as { path: string }[] | undefined
      if (problems) t.ok(problems.some((problem) => path.test(problem.path)), `a problem at ${path}: ${JSON.stringify(problems)}`)
      else t.match((error as SlipwayError).message, path)
    }
    t.same({ ...(await exportInventory(store)), exported_at: '' }, { ...before, exported_at: '' }, `${code}: nothing changed`)
  }
  const edited = (change: (document: InventoryDocument) => void) => {
    const copy = structuredClone(exported) as InventoryDocument
    change(copy)
    return copy
  }
  await expectRefusal({ ...exported, slipway_inventory: 2 }, 'INVENTORY_FORMAT_UNSUPPORTED', /slipway_inventory is 2/)
  await expectRefusal(edited((doc) => (doc.machines[2]!.interfaces[0]!.mac = 'not-a-mac')), 'INVALID_INVENTORY', /^machines\[2\]\.interfaces\[0\]\.mac$/)
  await expectRefusal(edited((doc) => ((doc.machines[1] as { state: string }).state = 'flying')), 'INVALID_INVENTORY', /^machines\[1\]\.state$/)
  await expectRefusal(edited((doc) => (doc.clusters[0]!.tenant = 'Team A!')), 'INVALID_INVENTORY', /^clusters\[0\]\.tenant$/)
  await expectRefusal(edited((doc) => doc.machines.push({ ...doc.machines[0]!, labels: { new: 'machine' } })), 'INVALID_INVENTORY', /^machines\[4\]\.uuid$/)
  // A valid new machine next to a bad cluster: the new machine must not land either.
  await expectRefusal(
    edited((doc) => {
      doc.machines.push({ ...doc.machines[0]!, uuid: 'cccccccc-0000-4000-8000-000000000001', boot_mac: '52:54:0c:00:00:01', interfaces: [], role: null })
      doc.clusters.find((cluster) => cluster.name === 'far')!.credential_sealed = Buffer.from('not sealed by anyone here').toString('base64')
    }),
    'INVALID_INVENTORY',
    /^clusters\[\d\]\.credential_sealed$/,
  )
  const strangerKey = SecretBox.fromKey(Buffer.alloc(32, 9))
  await expectRefusal(exported, 'INVALID_INVENTORY', /^clusters\[\d\]\.provisioning\.pki\.sealed$/, strangerKey)
  await expectRefusal(exported, 'INVALID_INVENTORY', /^machines\[\d\]\.role\.certificates\.sealed$/, strangerKey)
  await expectRefusal(
    edited((doc) => {
      // One member's sealed set moved to another member: it was sealed for its own machine.
      const [first, second] = doc.machines.filter((machine) => machine.role?.certificates)
      if (first && second) [first.role!.certificates, second.role!.certificates] = [second.role!.certificates, first.role!.certificates]
      else first!.role!.certificates!.sealed = Buffer.from('not sealed by anyone here').toString('base64')
    }),
    'INVALID_INVENTORY',
    /^machines\[\d\]\.role\.certificates\.sealed$/,
  )
  await expectRefusal(
    edited((doc) => {
      const member = doc.machines.find((machine) => machine.role?.role === 'control-plane')!
      member.role = { ...member.role!, ordinal: 2 }
    }),
    'INVENTORY_CONFLICT',
    /^machines\[\d\]\.role$/,
  )
})

/** The source engine's profiles, as rows: the role groups of an import point at them. */
async function exportTemplatesFrom(source: TestEngine) {
  return source.engine.store.selectFrom('profiles').selectAll().execute()
}

/** A process that opens the database, commits a machine and SIGKILLs itself before closing. */
async function writeThenGetKilled(databaseFile: string, uuid: string): Promise<void> {
  const script = `
    const SQLite = require(${JSON.stringify(require.resolve('better-sqlite3'))})
    const db = new SQLite(${JSON.stringify(databaseFile)})
    db.pragma('journal_mode = WAL')
    const now = new Date().toISOString()
    db.prepare("insert into machines (uuid, boot_mac, state, state_changed_at, facts, first_seen_at, last_seen_at, created_at, updated_at) values (?, '52:54:0d:00:00:01', 'discovered', ?, '{}', ?, ?, ?, ?)").run(${JSON.stringify(uuid)}, now, now, now, now, now)
    process.kill(process.pid, 'SIGKILL')
  `
  await new Promise<void>((resolve) => spawn(process.execPath, ['-e', script], { stdio: 'inherit' }).once('exit', () => resolve()))
}

/** Another process with the database open (as an engine has), until stopped. */
async function holdOpenInChild(databaseFile: string): Promise<{ stop(): Promise<void> }> {
  const script = `
    const SQLite = require(${JSON.stringify(require.resolve('better-sqlite3'))})
    const db = new SQLite(${JSON.stringify(databaseFile)})
    db.pragma('journal_mode = WAL')
    db.prepare('select count(*) from machines').get()
    process.stdout.write('open\\n')
    setInterval(() => {}, 1000)
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()))
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve())
        child.kill('SIGKILL')
      }),
  }
}

const noPostgres = postgresAvailable() ? false : 'PostgreSQL is not installed and SLIPWAY_TEST_POSTGRES_URL is not set'
t.test('inventory: from a SQLite engine into a PostgreSQL store, and back out the same', { skip: noPostgres }, async (t) => {
  const source = await populatedEngine(t)
  const exported = await exportInventory(source.engine.store)
  const store = await testStore(t, 'postgres')
  for (const profile of await exportTemplatesFrom(source)) await store.insertInto('profiles').values(profile).execute()
  const secrets = SecretBox.fromKeyFile(source.config.secrets.keyFile)
  t.same(await importInventory(store, secrets, exported), { machines: { created: 4, updated: 0 }, flavors: { created: 1, updated: 0 }, clusters: { created: 2, updated: 0 } })
  t.same((await importInventory(store, secrets, exported)).machines, { created: 0, updated: 4 }, 'again: an upsert')
  t.same({ ...(await exportInventory(store)), exported_at: '' }, { ...exported, exported_at: '' }, 'PostgreSQL gives back the same document')
})
