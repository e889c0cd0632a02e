/**
 * Fault suite, discovery storm: machines report concurrently over real HTTP (new reports mixed with
 * re-reports of known machines) while the engine process is SIGKILLed at random moments. Agents do
 * what Enjoliver's do: a report without an answer is sent again, to whichever engine answers next.
 * After the last restart every acknowledged report is stored exactly once: one machine per uuid and
 * boot MAC, each complete (interface, disk, one first event), no orphan rows, and the API serves them.
 *
 * The seed is printed; `SLIPWAY_FAULT_SEED` replays a run, `SLIPWAY_FAULT_KILLS` raises the kills.
 */
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { discoveryStorm, stormMacOf, stormUuidOf } from '../../helpers/discovery-reports.ts'
import { copySampleContent, removeTree } from '../../helpers/engine.ts'
import { EngineProcess, faultSeed, freePort, killCount, seededRandom } from '../../helpers/engine-process.ts'
import { discoveryProblems, machineUuids, openReadOnly, sqliteProblems } from '../../helpers/sqlite-consistency.ts'

const MACHINES = Number(process.env.SLIPWAY_FAULT_MACHINES ?? 300)
const CONCURRENCY = 20

t.test('SIGKILL during a discovery storm: every acknowledged report stored exactly once', { timeout: 180_000 }, async (t) => {
  const seed = faultSeed()
  const random = seededRandom(seed)
  const kills = killCount(3)
  t.comment(`seed ${seed} (SLIPWAY_FAULT_SEED=${seed} replays it), ${kills} kills, ${MACHINES} machines`)
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-fault-discovery-'))
  t.teardown(() => removeTree(scratch))
  copySampleContent(path.join(scratch, 'content'))
  const engine = new EngineProcess({ dataDir: path.join(scratch, 'var'), contentDir: path.join(scratch, 'content'), port: await freePort(), env: { SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' } })
  t.teardown(() => engine.kill())
  let passed = false
  t.teardown(() => {
    if (!passed) t.comment(`--- engine output (seed ${seed})\n${engine.output.slice(-6000)}`)
  })

  const acknowledged = new Set<number>()
  const all = Array.from({ length: MACHINES }, (_, index) => index + 1)
  for (let round = 0; round < kills; round++) {
    await engine.start()
    // What is not acknowledged yet, then re-reports of some known machines (shuffled together).
    const pending = all.filter((n) => !acknowledged.has(n))
    const rereports = [...acknowledged].filter(() => random() < 0.3)
    const batch = [...pending, ...rereports].sort(() => random() - 0.5)
    // The kill point is a random place in the batch: after that many answers, with 20 reports in flight.
    const killAfterAnswers = Math.floor(batch.length * (0.1 + random() * 0.8))
    let answers = 0
    let killing: Promise<void> | undefined
    const storm = discoveryStorm(engine.baseUrl, batch, {
      concurrency: CONCURRENCY,
      onAcknowledged: (n) => {
        acknowledged.add(n)
        if (++answers === killAfterAnswers) killing = engine.kill()
      },
    })
    const { failed } = await storm
    await killing
    await engine.kill()
    t.comment(`round ${round + 1}: killed after ${killAfterAnswers} of ${batch.length} answers; ${acknowledged.size} of ${MACHINES} acknowledged, ${failed.length} report(s) cut off`)
  }
  await engine.start()
  for (let attempt = 0; acknowledged.size < MACHINES && attempt < 5; attempt++) {
    await discoveryStorm(engine.baseUrl, all.filter((n) => !acknowledged.has(n)), { concurrency: CONCURRENCY, onAcknowledged: (n) => void acknowledged.add(n) })
  }
  t.equal(acknowledged.size, MACHINES, 'agents sending again got every report acknowledged')

  const listed = await engine.call('GET', '/api/v1/machines')
  t.equal(listed.status, 200)
  const served = listed.json() as { uuid: string; boot_mac: string; interfaces: unknown[]; disks: unknown[] }[]
  t.equal(served.length, MACHINES, 'the API serves one machine per agent')
  t.ok(served.every((machine) => machine.interfaces.length === 1 && machine.disks.length === 1), 'each with its interface and disk')
  await engine.stop()

  const db = openReadOnly(path.join(scratch, 'var', 'slipway.db'))
  t.teardown(() => db.close())
  t.same(sqliteProblems(db), [], 'integrity_check and foreign keys')
  t.same(discoveryProblems(db, { interfaces: 1, disks: 1 }), [], 'no half-written discovery, no duplicate MAC, no orphan event')
  t.same(machineUuids(db), all.map(stormUuidOf).sort(), 'exactly the machines that reported')
  const macs = db.prepare('select boot_mac from machines order by boot_mac').all() as { boot_mac: string }[]
  t.same(macs.map((row) => row.boot_mac), all.map(stormMacOf).sort(), 'one machine per boot MAC')
  const events = db.prepare('select count(*) as n from machine_events').get() as { n: number }
  t.equal(events.n, MACHINES, 'one discovery event per machine: a report sent again added none')
  passed = t.passing()
})
