/**
 * Fault suite, scheduling and installs: clusters that need a quorum of three control-plane machines
 * are scheduled while machines report, and their members then take install slots and report, while
 * the engine process is SIGKILLed at random moments. After every kill the database left behind is
 * checked (quorum all or nothing, no machine with two roles, one scheduling event per member, groups
 * without members, install slots within the limit); at the end every member is installed exactly once
 * and no slot is left held.
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
import { sleep } from '../../helpers/wait.ts'
import { openAfterCrash, schedulingProblems, sqliteProblems } from '../../helpers/sqlite-consistency.ts'

const CLUSTERS = ['q1', 'q2', 'q3', 'q4']
const QUORUM = 3
const NODES_MAX = 2
const SPARES = 6
const MACHINES = CLUSTERS.length * (QUORUM + NODES_MAX) + SPARES
const MAX_INSTALLING = 3

t.test('SIGKILL while scheduling and installing: quorum all or nothing, one role per machine, no slot leaked', { timeout: 180_000 }, async (t) => {
  const seed = faultSeed()
  const random = seededRandom(seed)
  const kills = killCount(2)
  t.comment(`seed ${seed} (SLIPWAY_FAULT_SEED=${seed} replays it), ${kills} kills while scheduling, ${kills} while installing`)
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-fault-scheduling-'))
  t.teardown(() => removeTree(scratch))
  copySampleContent(path.join(scratch, 'content'))
  const databaseFile = path.join(scratch, 'var', 'slipway.db')
  const engine = new EngineProcess({
    dataDir: path.join(scratch, 'var'),
    contentDir: path.join(scratch, 'content'),
    port: await freePort(),
    env: { SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0', SLIPWAY_INSTALL_MAX_CONCURRENT: String(MAX_INSTALLING) },
  })
  t.teardown(() => engine.kill())
  let passed = false
  t.teardown(() => {
    if (!passed) t.comment(`--- engine output (seed ${seed})\n${engine.output.slice(-6000)}`)
  })
  const policy = { quorum: QUORUM, nodesMax: NODES_MAX, maxInstalling: MAX_INSTALLING }
  const checkAfterKill = (moment: string) => {
    const db = openAfterCrash(databaseFile)
    try {
      t.same([...sqliteProblems(db), ...schedulingProblems(db, policy)], [], `consistent after the kill ${moment}`)
    } finally {
      db.close()
    }
  }

  await engine.start()
  t.equal((await engine.call('POST', '/api/v1/flavors', { name: 'quorum', control_plane_count: QUORUM, nodes_min: 0, nodes_max: NODES_MAX })).status, 201)
  for (const name of CLUSTERS) t.equal((await engine.call('POST', '/api/v1/clusters', { name, flavor: 'quorum' })).status, 201)

  // Scheduling passes run after discoveries (debounced) and on demand; the kills land among them.
  const acknowledged = new Set<number>()
  const all = Array.from({ length: MACHINES }, (_, index) => index + 1)
  for (let round = 0; round < kills; round++) {
    if (!engine.running) await engine.start()
    const killAfterMs = Math.floor(random() * 1200)
    const storm = discoveryStorm(engine.baseUrl, all.filter((n) => !acknowledged.has(n)), { concurrency: 8, onAcknowledged: (n) => void acknowledged.add(n) })
    const passes = (async () => {
      for (let pass = 0; pass < 4; pass++) {
        await sleep(Math.floor(random() * 300))
        await engine.call('POST', '/api/v1/scheduler/run').catch(() => undefined)
      }
    })()
    await sleep(killAfterMs)
    await engine.kill()
    await Promise.all([storm, passes])
    t.comment(`scheduling round ${round + 1}: killed after ${killAfterMs} ms, ${acknowledged.size} of ${MACHINES} discovered`)
    checkAfterKill(`during scheduling round ${round + 1}`)
  }
  await engine.start()
  while (acknowledged.size < MACHINES) await discoveryStorm(engine.baseUrl, all.filter((n) => !acknowledged.has(n)), { concurrency: 8, onAcknowledged: (n) => void acknowledged.add(n) })
  const run = await engine.call('POST', '/api/v1/scheduler/run')
  t.equal(run.status, 200, run.text)
  const assignments = (await engine.call('GET', '/api/v1/scheduler')).json() as { uuid: string }[]
  t.equal(assignments.length, CLUSTERS.length * (QUORUM + NODES_MAX), 'every cluster complete after the restarts')
  const members = [...new Set(assignments.map((entry) => entry.uuid))]
  t.equal(members.length, assignments.length, 'no machine holds two roles')

  // The members install: ask for a slot until granted, install a moment, report; an answer lost in a
  // kill is asked again (a success report already applied answers 409 "installed": done).
  // Installers name their machine by both halves of its identity.
  const numberOfUuid = new Map(all.map((n) => [stormUuidOf(n), n]))
  const identity = (uuid: string) => `uuid=${uuid}&mac=${stormMacOf(numberOfUuid.get(uuid)!)}`
  const installed = new Set<string>()
  let machinesStop = false
  const installer = async (uuid: string) => {
    let granted = false
    while (!machinesStop && !installed.has(uuid)) {
      try {
        if (!granted) {
          const answer = await engine.call('POST', `/install-authorization?${identity(uuid)}`, {}, {})
          if (answer.status === 200) granted = true
          else if (answer.status !== 403) throw new Error(`install-authorization ${answer.status} ${answer.text}`)
          else await sleep(60)
          continue
        }
        await sleep(40 + Math.floor(random() * 80))
        const report = await engine.call('POST', `/lifecycle/install/success?${identity(uuid)}`, undefined, {})
        if (report.status === 200 || (report.status === 409 && report.json().details?.from === 'installed')) installed.add(uuid)
        else throw new Error(`install report ${report.status} ${report.text}`)
      } catch (error) {
        if (!(error instanceof TypeError)) throw error
        // The engine is down (fetch failed): the installer waits and asks again.
        await sleep(100)
      }
    }
  }
  const installers = Promise.all(members.map(installer))
  for (let round = 0; round < kills; round++) {
    const killAfterMs = 100 + Math.floor(random() * 900)
    await sleep(killAfterMs)
    await engine.kill()
    t.comment(`install round ${round + 1}: killed after ${killAfterMs} ms, ${installed.size} of ${members.length} installed`)
    checkAfterKill(`during installs round ${round + 1}`)
    await engine.start()
  }
  const deadline = setTimeout(() => (machinesStop = true), 60_000)
  await installers
  clearTimeout(deadline)
  t.equal(installed.size, members.length, 'every member installed')

  const machines = (await engine.call('GET', '/api/v1/machines')).json() as { uuid: string; state: string }[]
  t.equal(machines.length, MACHINES)
  t.equal(machines.filter((machine) => machine.state === 'installed').length, members.length, 'the API shows every member installed')
  t.same(machines.filter((machine) => !members.includes(machine.uuid)).map((machine) => machine.state), Array(SPARES).fill('discovered'), 'the spares were not touched')
  await engine.stop()

  const db = openAfterCrash(databaseFile)
  t.teardown(() => db.close())
  t.same([...sqliteProblems(db), ...schedulingProblems(db, { ...policy, maxInstalling: 0 })], [], 'consistent at the end, and no install slot held')
  const installs = db.prepare("select uuid, count(*) as n from machine_events where to_state = 'installed' group by uuid").all() as { uuid: string; n: number }[]
  t.equal(installs.length, members.length)
  t.ok(installs.every((row) => row.n === 1), 'each member installed exactly once')
  const controlPlanes = db.prepare("select cluster, count(*) as n from cluster_members where role = 'control-plane' group by cluster order by cluster").all()
  t.same(controlPlanes, CLUSTERS.map((cluster) => ({ cluster, n: QUORUM })), 'exactly the quorum of control-plane machines per cluster')
  t.ok(members.every((uuid) => all.map(stormUuidOf).includes(uuid)))
  passed = t.passing()
})
