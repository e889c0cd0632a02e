/**
 * The README's PostgreSQL backup guidance, done as written: `pg_dump -Fc --no-owner` of a live
 * engine's database, `pg_restore --no-owner --exit-on-error` into an empty one, an engine started on
 * the restored database with the same key file. It must serve the same machines and keep writing:
 * identity columns (the audit log's ids) continue after the restored rows instead of colliding.
 */
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import t from 'tap'
import { discoveryReport, stormUuidOf } from '../../helpers/discovery-reports.ts'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { freshPostgresDatabase, postgresAvailable, postgresTool } from '../../helpers/postgres.ts'

const MACHINES = 20

if (!postgresAvailable()) {
  t.plan(0, 'PostgreSQL is not installed and SLIPWAY_TEST_POSTGRES_URL is not set')
} else {
  t.test('pg_dump of a running engine restores into a database another engine serves and writes', async (t) => {
    const [source, target] = await Promise.all([freshPostgresDatabase(), freshPostgresDatabase()])
    t.teardown(() => Promise.all([source.drop(), target.drop()]))
    const postgresEnv = (url: string) => ({ SLIPWAY_DATABASE_DRIVER: 'postgres', SLIPWAY_DATABASE_URL: url })

    const first = await startTestEngine({ env: postgresEnv(source.url) })
    t.teardown(() => removeTree(path.dirname(first.dataDir)))
    for (let n = 0; n < MACHINES; n++) {
      const report = await first.engine.app.inject({ method: 'POST', url: '/discovery', payload: discoveryReport(n) })
      t.equal(report.statusCode, 200, report.body)
    }
    const labelled = await first.engine.app.inject({ method: 'PUT', url: `/api/v1/machines/${stormUuidOf(0)}/labels`, headers: auth, payload: { rack: 'r1' } })
    t.equal(labelled.statusCode, 200, labelled.body)

    // Taken while the engine is up, as the README says: pg_dump reads one snapshot.
    const dumpFile = path.join(path.dirname(first.dataDir), 'slipway.dump')
    const dump = spawnSync(postgresTool('pg_dump'), ['-Fc', '--no-owner', '-d', source.url, '-f', dumpFile], { encoding: 'utf8' })
    t.equal(dump.status, 0, `pg_dump: ${dump.stderr}`)
    await first.engine.close()

    const restore = spawnSync(postgresTool('pg_restore'), ['--no-owner', '--exit-on-error', '-d', target.url, dumpFile], { encoding: 'utf8' })
    t.equal(restore.status, 0, `pg_restore: ${restore.stderr}`)

    // Same data folder: the same secrets key file, which the restored sealed values need.
    const second = await startTestEngine({ dataDir: first.dataDir, contentDir: first.contentDir, env: postgresEnv(target.url) })
    t.teardown(() => second.engine.close())
    const app = second.engine.app
    const machines = (await app.inject({ method: 'GET', url: '/api/v1/machines', headers: auth })).json() as { uuid: string; labels: Record<string, string> }[]
    t.same(machines.map((machine) => machine.uuid).sort(), Array.from({ length: MACHINES }, (_, n) => stormUuidOf(n)).sort(), 'every machine restored')
    t.same(machines.find((machine) => machine.uuid === stormUuidOf(0))?.labels, { rack: 'r1' }, 'with its labels')

    const before = (await app.inject({ method: 'GET', url: '/api/v1/audit', headers: auth })).json() as { entries: { id: number; route: string }[] }
    t.ok(before.entries.some((entry) => entry.route === '/api/v1/machines/:uuid/labels'), 'the audit log restored')
    const relabel = await app.inject({ method: 'PUT', url: `/api/v1/machines/${stormUuidOf(1)}/labels`, headers: auth, payload: { rack: 'r2' } })
    t.equal(relabel.statusCode, 200, relabel.body)
    const newReport = await app.inject({ method: 'POST', url: '/discovery', payload: discoveryReport(MACHINES) })
    t.equal(newReport.statusCode, 200, newReport.body)
    const after = (await app.inject({ method: 'GET', url: '/api/v1/audit', headers: auth })).json() as { entries: { id: number }[] }
    const restoredIds = new Set(before.entries.map((entry) => entry.id))
    const newest = after.entries[0]!
    t.notOk(restoredIds.has(newest.id), `a new audit entry gets a new id (${newest.id}), after the restored ones`)
    t.ok(newest.id > Math.max(...restoredIds), 'identity columns continue after the restored rows')
  })
}
