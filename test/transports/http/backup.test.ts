/**
 * Backups and inventory transfer over HTTP, on a listening engine with a real SQLite file: a backup
 * taken while 1,000 discovery reports are being written restores to a consistent database that a new
 * engine serves; Enjoliver's POST /backup/db; the inventory routes; tokens required; a machine's BMC
 * carried to a fresh engine that then drives the real BMC (ipmi_sim) with the password it opened.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { restoreDatabase } from '../../../src/storage/restore.ts'
import { discoveryReport, discoveryStorm, stormUuidOf } from '../../helpers/discovery-reports.ts'
import { auth, copySampleContent, removeTree, startTestEngine, type TestEngine } from '../../helpers/engine.ts'
import { startIpmiSim } from '../../helpers/ipmi-sim.ts'
import { discoveryProblems, machineUuids, openReadOnly, sqliteProblems } from '../../helpers/sqlite-consistency.ts'

const REPORTS = 1000
const CONCURRENCY = 20

t.test('a backup taken while 1,000 discoveries are written restores to a consistent database', { timeout: 240_000 }, async (t) => {
  const source = await startTestEngine({ env: { SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_HTTP_PORT: '0' } })
  t.teardown(async () => {
    await source.engine.close().catch(() => {})
    removeTree(path.dirname(source.dataDir))
  })
  const base = await source.engine.start()
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-backup-http-'))
  t.teardown(() => removeTree(scratch))
  const snapshotFile = path.join(scratch, 'download.sqlite3')

  let ackedWhenBackupStarted = -1
  let ackedWhenBackupFinished = -1
  let backup: Promise<void> | undefined
  let acknowledgedSoFar: number[] = []
  const startedAt = Date.now()
  const storm = discoveryStorm(base, Array.from({ length: REPORTS }, (_, index) => index + 1), {
    concurrency: CONCURRENCY,
    onAcknowledged: (n, count) => {
      acknowledgedSoFar.push(n)
      if (count !== 400 || backup) return
      // In the middle of the storm: the download runs while the remaining reports keep arriving.
      ackedWhenBackupStarted = count
      backup = (async () => {
        const response = await fetch(`${base}/api/v1/backup`, { headers: auth })
        t.equal(response.status, 200)
        t.equal(response.headers.get('content-type'), 'application/octet-stream')
        t.match(response.headers.get('content-disposition'), /^attachment; filename="slipway-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.sqlite3"$/)
        t.ok(response.headers.get('x-slipway-schema'), 'the schema level is announced')
        writeFileSync(snapshotFile, Buffer.from(await response.arrayBuffer()))
        ackedWhenBackupFinished = acknowledgedSoFar.length
      })()
    },
  })
  const result = await storm
  await backup
  const stormMs = Date.now() - startedAt
  t.same(result.failed, [], 'every report was acknowledged')
  t.equal(result.acknowledged.length, REPORTS)
  t.ok(ackedWhenBackupFinished > ackedWhenBackupStarted, `reports kept being acknowledged during the backup (${ackedWhenBackupStarted} -> ${ackedWhenBackupFinished})`)
  t.comment(`${REPORTS} reports, ${CONCURRENCY} at a time, in ${stormMs} ms; backup started at ${ackedWhenBackupStarted} acknowledged, finished at ${ackedWhenBackupFinished}; snapshot ${statSync(snapshotFile).size} bytes`)
  t.same(
    readdirSync(path.dirname(source.config.database.path)).filter((name) => name.startsWith('.snapshot-')),
    [],
    'the temporary snapshot was removed after the download',
  )

  // Restore into a fresh data folder (with the source's secrets key), then start an engine on it.
  const dataDir = path.join(scratch, 'var')
  const contentDir = path.join(scratch, 'content')
  copySampleContent(contentDir)
  mkdirSync(dataDir, { recursive: true })
  copyFileSync(source.config.secrets.keyFile, path.join(dataDir, 'secrets.key'))
  const databaseFile = path.join(dataDir, 'slipway.db')
  const restored = restoreDatabase({ snapshotFile, databaseFile, secretsKeyFile: path.join(dataDir, 'secrets.key') })
  t.notOk(restored.previousDatabase, 'nothing to set aside in a fresh folder')

  const copy = openReadOnly(databaseFile)
  const inSnapshot = machineUuids(copy)
  t.same(sqliteProblems(copy), [], 'integrity_check and foreign_key_check pass')
  t.same(discoveryProblems(copy, { interfaces: 1, disks: 1 }), [], 'every machine is complete: row, interface, disk, first event')
  copy.close()
  t.ok(
    inSnapshot.length >= ackedWhenBackupStarted && inSnapshot.length <= ackedWhenBackupFinished + CONCURRENCY,
    `${inSnapshot.length} machines: at least the ${ackedWhenBackupStarted} acknowledged before the backup, at most the ${ackedWhenBackupFinished} acknowledged after it (+${CONCURRENCY} in flight)`,
  )
  const firstAcknowledged = new Set(result.acknowledged.slice(0, ackedWhenBackupStarted).map(stormUuidOf))
  const snapshotSet = new Set(inSnapshot)
  t.same([...firstAcknowledged].filter((uuid) => !snapshotSet.has(uuid)), [], 'every report acknowledged before the backup started is in it')

  const revived = await startTestEngine({ dataDir, contentDir })
  t.teardown(() => revived.engine.close())
  const listed = await revived.engine.app.inject({ method: 'GET', url: '/api/v1/machines', headers: auth })
  t.equal(listed.statusCode, 200)
  t.same((listed.json() as { uuid: string }[]).map((machine) => machine.uuid).sort(), [...inSnapshot].sort(), 'the restored engine serves exactly the snapshot')
  const one = await revived.engine.app.inject({ method: 'GET', url: `/api/v1/machines/${inSnapshot[0]}`, headers: auth })
  t.equal(one.statusCode, 200)
  t.equal(one.json().interfaces.length, 1)
  const again = await revived.engine.app.inject({ method: 'POST', url: '/discovery', payload: discoveryReport(REPORTS) })
  t.equal(again.statusCode, 200, 'and keeps taking reports')
})

t.test('backup, POST /backup/db and the inventory routes: tokens, shapes, refusals', async (t) => {
  const started = await startTestEngine()
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  const app = started.engine.app
  for (let n = 1; n <= 3; n++) await app.inject({ method: 'POST', url: '/discovery', payload: discoveryReport(n) })

  for (const [method, url] of [
    ['GET', '/api/v1/backup'],
    ['POST', '/backup/db'],
    ['GET', '/api/v1/inventory/export'],
    ['POST', '/api/v1/inventory/import'],
  ] as const) {
    const answer = await app.inject({ method, url })
    t.equal(answer.statusCode, 401, `${method} ${url} without a token`)
    t.equal(answer.json().code, 'TOKEN_REQUIRED')
  }

  // An operator runs the fleet but does not take its secrets home.
  const operator = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth, payload: { name: 'ops-1', role: 'operator' } })
  t.equal(operator.statusCode, 201, operator.body)
  const operatorAuth = { authorization: `Bearer ${operator.json().token}` }
  for (const [method, url] of [
    ['GET', '/api/v1/backup'],
    ['POST', '/backup/db'],
    ['GET', '/api/v1/inventory/export'],
    ['POST', '/api/v1/inventory/import'],
  ] as const) {
    const answer = await app.inject({ method, url, headers: operatorAuth })
    t.equal(answer.statusCode, 403, `${method} ${url} with an operator token`)
    t.equal(answer.json().code, 'FORBIDDEN')
  }
  t.notOk(existsSync(path.join(started.config.dataDir, 'backups')), 'the refused POST /backup/db wrote nothing')

  const snapshot = await app.inject({ method: 'GET', url: '/api/v1/backup', headers: auth })
  t.equal(snapshot.statusCode, 200)
  t.equal(snapshot.rawPayload.subarray(0, 16).toString('latin1'), 'SQLite format 3\0', 'a SQLite database file')
  t.equal(Number(snapshot.headers['content-length']), snapshot.rawPayload.length)

  const enjoliver = await app.inject({ method: 'POST', url: '/backup/db', headers: auth })
  t.equal(enjoliver.statusCode, 200, enjoliver.body)
  const written = enjoliver.json()
  t.match(written, { copy: true, upload: false, source_fs: started.config.database.path, dest_s3: null, ts: Number, b_size: Number })
  t.equal(path.dirname(written.dest_fs), path.join(started.config.dataDir, 'backups'), "written into the engine's backup folder")
  t.ok(existsSync(written.dest_fs))
  t.equal(statSync(written.dest_fs).size, written.b_size)
  const checked = openReadOnly(written.dest_fs)
  t.same(sqliteProblems(checked), [])
  t.equal(machineUuids(checked).length, 3)
  checked.close()

  const exported = await app.inject({ method: 'GET', url: '/api/v1/inventory/export', headers: auth })
  t.equal(exported.statusCode, 200)
  t.match(exported.headers['content-disposition'], /^attachment; filename="slipway-inventory-.+\.json"$/)
  const document = exported.json()
  t.equal(document.slipway_inventory, 1)
  t.equal(document.machines.length, 3)

  const imported = await app.inject({ method: 'POST', url: '/api/v1/inventory/import', headers: auth, payload: document })
  t.equal(imported.statusCode, 200, imported.body)
  t.same(imported.json(), { machines: { created: 0, updated: 3 }, flavors: { created: 0, updated: 0 }, clusters: { created: 0, updated: 0 }, bmcs: { created: 0, updated: 0 } })

  const renamed = structuredClone(document)
  renamed.machines.push({ ...renamed.machines[0], uuid: 'dddddddd-0000-4000-8000-000000000001', boot_mac: '52:54:0d:00:00:09', interfaces: [], disks: [{ path: '/dev/sda', size_bytes: -5, model: null, serial: null }] })
  const refused = await app.inject({ method: 'POST', url: '/api/v1/inventory/import', headers: auth, payload: renamed })
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().code, 'INVALID_INVENTORY')
  t.same(refused.json().details.problems.map((problem: { path: string }) => problem.path), ['machines[3].disks[0].size_bytes'])
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/machines', headers: auth })).json().length, 3, 'a refused import wrote nothing')

  const notJson = await app.inject({ method: 'POST', url: '/api/v1/inventory/import', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"slipway_inventory": 1,' })
  t.equal(notJson.statusCode, 400)
  t.equal(notJson.json().code, 'MALFORMED_JSON')
  const wrongShape = await app.inject({ method: 'POST', url: '/api/v1/inventory/import', headers: auth, payload: { machines: 'all of them' } })
  t.equal(wrongShape.statusCode, 400)
  t.match(wrongShape.json().message, /slipway_inventory/)
})

t.test("a machine's BMC travels sealed to a fresh engine with the same key, which then drives the real BMC", async (t) => {
  const bmc = await startIpmiSim({ password: 'Bmc-travel-4417' })
  t.teardown(() => bmc.stop())
  const started = async (env: Record<string, string> = {}) => {
    const engine = await startTestEngine({ env })
    t.teardown(async () => {
      await engine.engine.close()
      removeTree(path.dirname(engine.dataDir))
    })
    return engine
  }
  const api = (engine: TestEngine, method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => engine.engine.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) })
  // Enrolled by its BMC before it ever booted: the engine knows no machine of that UUID.
  const uuid = 'b3c1a000-0000-4000-8000-000000000001'
  const source = await started()
  const set = await api(source, 'PUT', `/api/v1/machines/${uuid}/bmc`, { protocol: 'ipmi', host: bmc.host, port: bmc.port, username: bmc.username, password: bmc.password })
  t.equal(set.statusCode, 200, set.body)
  const exported = await api(source, 'GET', '/api/v1/inventory/export')
  t.equal(exported.statusCode, 200)
  t.notOk(exported.body.includes(bmc.password), 'the password is not in the export')
  const document = exported.json()
  t.match(document.bmcs, [{ machine_uuid: uuid, protocol: 'ipmi', host: bmc.host, port: bmc.port, username: bmc.username, password_sealed: String }])

  // An engine with another key cannot open the password: refused, with where, and nothing written.
  const stranger = await started()
  const refused = await api(stranger, 'POST', '/api/v1/inventory/import', document)
  t.equal(refused.statusCode, 400, refused.body)
  t.equal(refused.json().code, 'INVALID_INVENTORY')
  t.same(refused.json().details.problems.map((problem: { path: string }) => problem.path), ['bmcs[0].password_sealed'])
  t.same((await api(stranger, 'GET', '/api/v1/bmcs')).json(), [], 'nothing written')

  const target = await started({ SLIPWAY_SECRETS_KEY_FILE: source.config.secrets.keyFile })
  const imported = await api(target, 'POST', '/api/v1/inventory/import', document)
  t.equal(imported.statusCode, 200, imported.body)
  t.same(imported.json().bmcs, { created: 1, updated: 0 })
  t.match((await api(target, 'GET', `/api/v1/machines/${uuid}/bmc`)).json(), { machine_uuid: uuid, protocol: 'ipmi', host: bmc.host, port: bmc.port, password_set: true, power: 'unknown' })
  const asked = await api(target, 'POST', `/api/v1/machines/${uuid}/power/query`)
  t.equal(asked.statusCode, 200, `the BMC took the password the importing engine opened: ${asked.body}`)
  t.match(asked.json(), { power: 'off', attempts: 1 })
  const on = await api(target, 'POST', `/api/v1/machines/${uuid}/power`, { action: 'on' })
  t.equal(on.statusCode, 200, on.body)
  t.ok(bmc.machineOn(), 'the imported BMC powered its machine on')
})
