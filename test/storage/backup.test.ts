/**
 * Snapshots, restore and the inventory's JSON transfer against real SQLite files: snapshots taken
 * while the store writes, restores refused for every kind of bad snapshot and while an engine has the
 * database open (in this process or another), a killed engine's WAL kept in the database set aside,
 * inventory round trips (BMC records with their sealed passwords included), idempotence, and imports
 * refused whole.
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
import { bmcRepository } from '../../src/storage/repositories/bmcs.ts'
import { deprovisionRepository } from '../../src/storage/repositories/deprovisions.ts'
import { machineRepository } from '../../src/storage/repositories/machines.ts'
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

/** BMC passwords of populatedEngine: never to be seen in an export. */
const IPMI_PASSWORD = 'Ipmi-pw-5521-x'
const REDFISH_PASSWORD = 'Redfish-pw-7731-longer-than-any-ipmi-one'
/** A machine the engine has never seen, enrolled by its BMC (a rack before its first boot). */
const ENROLLED_UUID = 'e0000000-0000-4000-8000-0000000000b1'

/**
 * An engine with machines, a provisioned cluster (PKI sealed), a hand-registered one (credential
 * sealed), and two BMCs (passwords sealed): an IPMI one of a known machine, a Redfish one of a machine
 * not seen yet.
 */
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
  const put = (uuid: string, payload: object) => app.inject({ method: 'PUT', url: `/api/v1/machines/${uuid}/bmc`, headers: auth, payload })
  const ipmi = await put(stormUuidOf(1), { protocol: 'ipmi', host: '10.0.9.21', username: 'admin', password: IPMI_PASSWORD, ipmi: { cipher_suite: 17, privilege: 'OPERATOR' } })
  t.equal(ipmi.statusCode, 200, ipmi.body)
  const redfish = await put(ENROLLED_UUID, { protocol: 'redfish', host: 'bmc-b1.rack.example', port: 8443, username: 'root', password: REDFISH_PASSWORD, redfish: { system_path: '/redfish/v1/Systems/1', verify_tls: false } })
  t.equal(redfish.statusCode, 200, redfish.body)
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
  t.match(exported.bmcs, [
    { machine_uuid: stormUuidOf(1), protocol: 'ipmi', host: '10.0.9.21', port: 623, username: 'admin', password_sealed: String, ipmi: { cipher_suite: 17, privilege: 'OPERATOR' }, redfish: null, updated_at: String },
    { machine_uuid: ENROLLED_UUID, protocol: 'redfish', host: 'bmc-b1.rack.example', port: 8443, username: 'root', password_sealed: String, ipmi: null, redfish: { system_path: '/redfish/v1/Systems/1', verify_tls: false, ca_bundle: null }, updated_at: String },
  ], "every BMC travels, a machine's that the engine has not seen yet too")
  t.equal(exported.bmcs?.length, 2)
  t.notOk('power' in exported.bmcs![0]!, "what the exporting engine last saw of the BMC stays behind: the importing engine asks it")
  for (const password of [IPMI_PASSWORD, REDFISH_PASSWORD]) {
    t.notOk(text.includes(password) || text.includes(Buffer.from(password).toString('base64')), 'no BMC password in clear (nor merely in base64)')
  }

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
  t.same(first, { machines: { created: 4, updated: 0 }, flavors: { created: 1, updated: 0 }, clusters: { created: 2, updated: 0 }, bmcs: { created: 2, updated: 0 } })
  // The engine's own way to a BMC password (what the power service hands the BMC client) opens them.
  const bmcs = bmcRepository(store, secrets)
  t.match(await bmcs.targetOf(stormUuidOf(1)), { protocol: 'ipmi', host: '10.0.9.21', port: 623, username: 'admin', password: IPMI_PASSWORD, ipmi: { cipherSuite: 17, privilege: 'OPERATOR' }, redfish: null })
  t.match(await bmcs.targetOf(ENROLLED_UUID), { protocol: 'redfish', host: 'bmc-b1.rack.example', port: 8443, username: 'root', password: REDFISH_PASSWORD, ipmi: null, redfish: { systemPath: '/redfish/v1/Systems/1', verifyTls: false, caBundle: null } })
  t.equal((await bmcs.find(ENROLLED_UUID))?.power, 'unknown', 'the importing engine has not asked the BMC yet')
  await bmcs.recordObservation(stormUuidOf(1), { power: 'on', checkedAt: '2026-12-08T10:00:00.000Z', error: null })
  const again = await importInventory(store, secrets, exported)
  t.same(again, { machines: { created: 0, updated: 4 }, flavors: { created: 0, updated: 1 }, clusters: { created: 0, updated: 2 }, bmcs: { created: 0, updated: 2 } })
  t.match(await bmcs.find(stormUuidOf(1)), { power: 'on', powerCheckedAt: '2026-12-08T10:00:00.000Z' }, 'the same BMC again: what this engine saw of it is kept')
  const reexported = await exportInventory(store)
  t.same({ ...reexported, exported_at: '' }, { ...exported, exported_at: '' }, 'a round trip changes nothing')
  const counts = await store.selectFrom('machine_interfaces').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  t.equal(Number(counts.n), 4, 'importing twice duplicates no interface')

  const moved = structuredClone(exported)
  moved.bmcs![0]!.host = '10.0.9.99'
  t.same((await importInventory(store, secrets, moved)).bmcs, { created: 0, updated: 2 })
  t.match(await bmcs.find(stormUuidOf(1)), { host: '10.0.9.99', power: 'unknown', powerCheckedAt: null }, 'a BMC at another address is another BMC: what was seen of the old one goes')
  t.equal((await bmcs.targetOf(stormUuidOf(1)))?.password, IPMI_PASSWORD)
  await importInventory(store, secrets, exported)

  // A document from before BMC records travelled: imported, and the BMCs here are left as they are.
  const older = structuredClone(exported) as Partial<InventoryDocument>
  delete older.bmcs
  t.same(await importInventory(store, secrets, older), { machines: { created: 0, updated: 4 }, flavors: { created: 0, updated: 1 }, clusters: { created: 0, updated: 2 }, bmcs: { created: 0, updated: 0 } })
  t.equal((await bmcs.targetOf(ENROLLED_UUID))?.password, REDFISH_PASSWORD, 'an import without bmcs removes none')

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

  // BMC records: the sealed password must open here, in its own machine's row, and be one its protocol takes.
  const tampered = (sealed: string) => {
    const bytes = Buffer.from(sealed, 'base64')
    bytes[bytes.length - 1]! ^= 0x01
    return bytes.toString('base64')
  }
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.password_sealed = tampered(doc.bmcs![0]!.password_sealed))), 'INVALID_INVENTORY', /^bmcs\[0\]\.password_sealed$/)
  await expectRefusal(
    edited((doc) => ([doc.bmcs![0]!.password_sealed, doc.bmcs![1]!.password_sealed] = [doc.bmcs![1]!.password_sealed, doc.bmcs![0]!.password_sealed])),
    'INVALID_INVENTORY',
    /^bmcs\[[01]\]\.password_sealed$/,
  )
  await expectRefusal(edited((doc) => (doc.bmcs![1]!.machine_uuid = stormUuidOf(2))), 'INVALID_INVENTORY', /^bmcs\[1\]\.password_sealed$/)
  await expectRefusal(exported, 'INVALID_INVENTORY', /^bmcs\[\d\]\.password_sealed$/, strangerKey)
  await expectRefusal(
    edited((doc) => Object.assign(doc.bmcs![1]!, { protocol: 'ipmi', ipmi: { cipher_suite: 3, privilege: 'ADMINISTRATOR' }, redfish: null })),
    'INVALID_INVENTORY',
    /^bmcs\[1\]\.password_sealed$/,
  )
  await expectRefusal(edited((doc) => ((doc.bmcs![0] as { protocol: string }).protocol = 'telnet')), 'INVALID_INVENTORY', /^bmcs\[0\]\.protocol$/)
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.port = 70_000)), 'INVALID_INVENTORY', /^bmcs\[0\]\.port$/)
  await expectRefusal(edited((doc) => Object.assign(doc.bmcs![0]!, { password: IPMI_PASSWORD })), 'INVALID_INVENTORY', /^bmcs\[0\]$/)
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.host = 'h'.repeat(1_000_000))), 'INVALID_INVENTORY', /^bmcs\[0\]\.host$/)
  await expectRefusal(edited((doc) => (doc.bmcs![1]!.username = 'u'.repeat(100_000))), 'INVALID_INVENTORY', /^bmcs\[1\]\.username$/)
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.password_sealed = 'A'.repeat(100_000))), 'INVALID_INVENTORY', /^bmcs\[0\]\.password_sealed$/)
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.machine_uuid = 'not-a-machine')), 'INVALID_INVENTORY', /^bmcs\[0\]\.machine_uuid$/)
  // What the API refuses of a BMC, an import refuses too (the same rules).
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.host = 'http://10.0.9.21')), 'INVALID_INVENTORY', /^bmcs\[0\]\.host$/)
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.ipmi!.cipher_suite = 0)), 'INVALID_INVENTORY', /^bmcs\[0\]\.ipmi\.cipher_suite$/)
  await expectRefusal(edited((doc) => (doc.bmcs![0]!.redfish = { system_path: null, verify_tls: true, ca_bundle: null })), 'INVALID_INVENTORY', /^bmcs\[0\]\.redfish$/)
  await expectRefusal(edited((doc) => (doc.bmcs![1]!.redfish!.system_path = '/redfish/v1/Managers/1')), 'INVALID_INVENTORY', /^bmcs\[1\]\.redfish\.system_path$/)
  await expectRefusal(edited((doc) => doc.bmcs!.push({ ...doc.bmcs![0]! })), 'INVALID_INVENTORY', /^bmcs\[2\]\.machine_uuid$/)
  // All or nothing across sections: a good BMC change does not land beside a bad machine, nor a new machine beside a bad BMC.
  await expectRefusal(
    edited((doc) => {
      doc.bmcs![0]!.host = '10.0.9.77'
      doc.machines[2]!.interfaces[0]!.mac = 'not-a-mac'
    }),
    'INVALID_INVENTORY',
    /^machines\[2\]\.interfaces\[0\]\.mac$/,
  )
  await expectRefusal(
    edited((doc) => {
      doc.machines.push({ ...doc.machines[0]!, uuid: 'cccccccc-0000-4000-8000-000000000002', boot_mac: '52:54:0c:00:00:02', interfaces: [], role: null })
      doc.bmcs![1]!.password_sealed = tampered(doc.bmcs![1]!.password_sealed)
    }),
    'INVALID_INVENTORY',
    /^bmcs\[1\]\.password_sealed$/,
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
t.test('inventory: a machine taken out of service stays out of the pool in the engine it is imported into', async (t) => {
  const source = await populatedEngine(t)
  const exported = await exportInventory(source.engine.store)
  const free = exported.machines.find((machine) => machine.role === null)!
  t.ok(exported.machines.every((machine) => machine.deprovision === null), 'no machine is being deprovisioned yet: each says so (null)')
  const deprovision = { machineUuid: free.uuid, state: 'done' as const, requestedBy: 'api:ops', requestedAt: '2026-12-08T09:00:00.000Z', wipedAt: '2026-12-08T09:01:00.000Z', poweredOffAt: '2026-12-08T09:01:03.000Z', message: '1 disk(s) wiped' }
  await deprovisionRepository(source.engine.store).save(deprovision)
  const withDeprovision = await exportInventory(source.engine.store)
  t.same(withDeprovision.machines.find((machine) => machine.uuid === free.uuid)!.deprovision, { state: 'done', requested_by: 'api:ops', requested_at: '2026-12-08T09:00:00.000Z', wiped_at: '2026-12-08T09:01:00.000Z', powered_off_at: '2026-12-08T09:01:03.000Z', message: '1 disk(s) wiped' })

  const store = openStore(path.join(scratchDir(t), 'slipway.db'))
  t.teardown(() => store.destroy())
  await migrateToLatest(store)
  for (const profile of await exportTemplatesFrom(source)) await store.insertInto('profiles').values(profile).execute()
  const secrets = SecretBox.fromKeyFile(source.config.secrets.keyFile)
  await importInventory(store, secrets, withDeprovision)
  t.same(await deprovisionRepository(store).find(free.uuid), deprovision, 'the deprovision arrives whole')
  const pool = (await machineRepository(store).listMachines({ inService: true })).map((machine) => machine.uuid)
  t.notOk(pool.includes(free.uuid), "it is not in the importing engine's pool")
  t.same({ ...(await exportInventory(store)), exported_at: '' }, { ...withDeprovision, exported_at: '' }, 'a round trip changes nothing')

  // An older document (no deprovision field) leaves it; null says the machine has none.
  const older = structuredClone(withDeprovision)
  for (const machine of older.machines) delete machine.deprovision
  await importInventory(store, secrets, older)
  t.ok(await deprovisionRepository(store).find(free.uuid), 'an export from before deprovisions travelled removes none')
  await importInventory(store, secrets, exported)
  t.equal(await deprovisionRepository(store).find(free.uuid), undefined, "the exporting engine's null returns the machine to the pool")

  // A member cannot be out of service; a bad deprovision is refused; either way nothing changes.
  for (const [change, path] of [
    [(doc: InventoryDocument) => (doc.machines.find((machine) => machine.role !== null)!.deprovision = withDeprovision.machines.find((machine) => machine.uuid === free.uuid)!.deprovision), /^machines\[\d\]\.deprovision$/],
    [(doc: InventoryDocument) => ((doc.machines.find((machine) => machine.uuid === free.uuid)!.deprovision as { state: string }).state = 'vanished'), /^machines\[\d\]\.deprovision\.state$/],
    [(doc: InventoryDocument) => ((doc.machines.find((machine) => machine.uuid === free.uuid)!.deprovision as Record<string, unknown>).erase = 'all'), /^machines\[\d\]\.deprovision/],
  ] as const) {
    const bad = structuredClone(withDeprovision)
    change(bad)
    const before = await exportInventory(store)
    await t.rejects(importInventory(store, secrets, bad), { code: 'INVALID_INVENTORY', details: { problems: [{ path }] } })
    t.same({ ...(await exportInventory(store)), exported_at: '' }, { ...before, exported_at: '' }, 'nothing changed')
  }
})

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
  t.same(await importInventory(store, secrets, exported), { machines: { created: 4, updated: 0 }, flavors: { created: 1, updated: 0 }, clusters: { created: 2, updated: 0 }, bmcs: { created: 2, updated: 0 } })
  t.same((await importInventory(store, secrets, exported)).machines, { created: 0, updated: 4 }, 'again: an upsert')
  t.equal((await bmcRepository(store, secrets).targetOf(ENROLLED_UUID))?.password, REDFISH_PASSWORD, 'the BMC password stored in PostgreSQL opens')
  t.same({ ...(await exportInventory(store)), exported_at: '' }, { ...exported, exported_at: '' }, 'PostgreSQL gives back the same document')
})
