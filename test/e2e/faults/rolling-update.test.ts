/**
 * Fault suite, rolling update: a cluster of outdated machines is rolled one at a time (cordon, drain,
 * apply, restart, report, ready, uncordon, release) while the engine process is SIGKILLed at random
 * moments. The engine runs test/helpers/fault-engine-child.ts: its machine shell and node drainer
 * write a journal that survives the kills; the test plays the machines from it (a restart issued
 * happens, and the machine then reports the config it was given, to whichever engine is up).
 *
 * After the last restart the run completes, no lock slot is held, no node is left cordoned, no two
 * machines were ever in flight at once (max_parallel 1), and every machine runs the new config.
 *
 * The seed is printed; `SLIPWAY_FAULT_SEED` replays a run, `SLIPWAY_FAULT_KILLS` raises the kills.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { machineCredentials } from '../../helpers/machine-credentials.ts'
import { ipOf, macOf, uuidOf } from '../../fakes/rollout-fleet.ts'
import { copySampleContent, REPO_ROOT, removeTree } from '../../helpers/engine.ts'
import { EngineProcess, faultSeed, freePort, killCount, seededRandom } from '../../helpers/engine-process.ts'
import { sleep } from '../../helpers/wait.ts'
import type { JournalEntry } from '../../helpers/fault-engine-child.ts'
import { openAfterCrash, sqliteProblems } from '../../helpers/sqlite-consistency.ts'

const MACHINES = 5

t.test('SIGKILL during a rolling update: the run resumes and completes; no slot held, no node cordoned', { timeout: 180_000 }, async (t) => {
  const seed = faultSeed()
  const random = seededRandom(seed)
  const kills = killCount(3)
  t.comment(`seed ${seed} (SLIPWAY_FAULT_SEED=${seed} replays it), ${kills} kills`)
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-fault-rollout-'))
  t.teardown(() => removeTree(scratch))
  copySampleContent(path.join(scratch, 'content'))
  const dataDir = path.join(scratch, 'var')
  const journalFile = path.join(scratch, 'journal.jsonl')
  const engine = new EngineProcess({
    dataDir,
    contentDir: path.join(scratch, 'content'),
    port: await freePort(),
    entry: path.join(REPO_ROOT, 'test', 'helpers', 'fault-engine-child.ts'),
    env: { SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0', SLIPWAY_TEST_JOURNAL: journalFile },
  })
  t.teardown(() => engine.kill())
  let passed = false
  t.teardown(() => {
    if (!passed) t.comment(`--- engine output (seed ${seed})\n${engine.output.slice(-6000)}`)
  })
  const journal = (): JournalEntry[] => (existsSync(journalFile) ? readFileSync(journalFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as JournalEntry) : [])

  await engine.start()
  const credentials = machineCredentials(path.join(dataDir, 'secrets.key'))
  const numberOfHost = new Map(Array.from({ length: MACHINES }, (_, index) => [ipOf(index + 1), index + 1]))
  // Generation 1: the install grant started it.
  const report = (n: number, config: string) => engine.call('POST', '/lifecycle/ignition', config, { authorization: `Bearer ${credentials.issue(uuidOf(n), 1)}` })
  t.equal((await engine.call('POST', '/api/v1/flavors', { name: 'roll', control_plane_count: 1, nodes_min: 0, nodes_max: MACHINES - 1 })).status, 201)
  t.equal((await engine.call('POST', '/api/v1/clusters', { name: 'roll', flavor: 'roll' })).status, 201)
  for (let n = 1; n <= MACHINES; n++) {
    const answer = await engine.call('POST', '/discovery', { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n) }] }, {})
    t.equal(answer.status, 200, answer.text)
  }
  // The debounced pass after the reports may have scheduled them already: the listing is what counts.
  t.equal((await engine.call('POST', '/api/v1/scheduler/run')).status, 200)
  t.equal((await engine.call('GET', '/api/v1/scheduler')).json().length, MACHINES)
  for (let n = 1; n <= MACHINES; n++) {
    // As the discovery agent installs, from the machine's address: its slot, its role config, its report.
    const identity = `uuid=${uuidOf(n)}&mac=${macOf(n)}`
    t.equal((await engine.call('POST', `/install-authorization?${identity}`, {}, {}, ipOf(n))).status, 200)
    const config = (await engine.call('GET', `/ignition?${identity}&os=installed`, undefined, {}, ipOf(n))).text
    t.equal((await engine.call('POST', `/lifecycle/install/success?${identity}`, undefined, {}, ipOf(n))).status, 200)
    t.equal((await report(n, config)).json().state, 'up_to_date')
  }
  for (const template of ['kubernetes-control-plane.json', 'kubernetes-node.json']) {
    const body = (await engine.call('GET', `/api/v1/templates/ignition/${template}`)).json().body as string
    t.equal((await engine.call('PUT', `/api/v1/templates/ignition/${template}`, { body: body.replace('"/etc/slipway/role"', '"/etc/slipway/role.v2"') })).status, 200)
  }
  for (let attempt = 0; attempt < 200; attempt++) {
    const drift = (await engine.call('GET', '/lifecycle/ignition')).json() as { state: string }[]
    if (drift.length === MACHINES && drift.every((record) => record.state === 'outdated')) break
    await sleep(50)
  }

  // The machines are played from the journal and run no etcd: the gates on it are tested in etcd-quorum.test.ts.
  const created = await engine.call('POST', '/api/v1/rollouts', { cluster: 'roll', max_parallel: 1, strategy: 'reboot', drain: { timeout_seconds: 20 }, etcd: { enabled: false }, ready_timeout_seconds: 120 })
  t.equal(created.status, 201, created.text)
  const runId = created.json().id as string

  // The machines: each restart in the journal is played once, after a short boot, until reported.
  let playing = true
  const played = new Set<number>()
  const machines = (async () => {
    while (playing) {
      const entries = journal()
      for (let index = 0; index < entries.length; index++) {
        const entry = entries[index]!
        if (entry.kind !== 'run' || played.has(index)) continue
        const config = entries.slice(0, index).filter((candidate) => candidate.kind === 'write' && candidate.host === entry.host).at(-1)
        if (!config || config.kind !== 'write') throw new Error(`a restart of ${entry.host} without a config written first`)
        if (Date.now() - entry.at < 300) continue
        const answer = await report(numberOfHost.get(entry.host)!, config.content).catch(() => undefined)
        if (answer?.status === 200) played.add(index)
      }
      await sleep(50)
    }
  })()

  // Kill points are places in the run: after the n-th call to a machine or node (5 per machine:
  // cordon, drain, write, restart, uncordon), plus up to 200 ms; so they land inside the run.
  const calls = MACHINES * 5
  const killPoints = Array.from({ length: kills }, () => 1 + Math.floor(random() * (calls - 1))).sort((a, b) => a - b)
  for (let round = 0; round < kills; round++) {
    while (journal().length < killPoints[round]!) {
      const state = (await engine.call('GET', `/api/v1/rollouts/${runId}`)).json()
      if (state.finished_at) break
      await sleep(20)
    }
    const killAfterMs = Math.floor(random() * 200)
    await sleep(killAfterMs)
    const phases = (await engine.call('GET', `/api/v1/rollouts/${runId}`).catch(() => undefined))?.json().machines.map((machine: { phase: string }) => machine.phase)
    await engine.kill()
    t.comment(`round ${round + 1}: killed ${killAfterMs} ms after call ${killPoints[round]} of ${calls}, phases ${JSON.stringify(phases)}`)
    const db = openAfterCrash(path.join(dataDir, 'slipway.db'))
    t.same(sqliteProblems(db), [], `the database is consistent after kill ${round + 1}`)
    const holders = db.prepare('select count(*) as n from lock_holders').get() as { n: number }
    t.ok(holders.n <= 1, `at most one slot held after kill ${round + 1}`)
    db.close()
    await engine.start()
  }

  const deadline = Date.now() + 120_000
  let run: { state: string; finished_at: string | null; machines: { hostname: string; phase: string }[]; events: { message: string }[] }
  for (;;) {
    run = (await engine.call('GET', `/api/v1/rollouts/${runId}`)).json()
    if (run.finished_at || Date.now() > deadline) break
    await sleep(200)
  }
  playing = false
  await machines
  t.equal(run.state, 'completed', JSON.stringify(run.events.slice(-8)))
  t.same(run.machines.map((machine) => machine.phase), Array(MACHINES).fill('done'))
  t.same((await engine.call('GET', '/api/v1/locks/roll')).json().holders, [], 'no slot left held')
  const drift = (await engine.call('GET', '/lifecycle/ignition')).json() as { state: string }[]
  t.ok(drift.length === MACHINES && drift.every((record) => record.state === 'up_to_date'), 'every machine runs the new config')

  // Replay the drainer's journal: what was cordoned at the end, and how many nodes at once.
  const cordoned = new Set<string>()
  let mostAtOnce = 0
  const restarts = new Map<string, number>()
  for (const entry of journal()) {
    if (entry.kind === 'cordon') cordoned.add(entry.node)
    if (entry.kind === 'uncordon') cordoned.delete(entry.node)
    if (entry.kind === 'run') restarts.set(entry.host, (restarts.get(entry.host) ?? 0) + 1)
    mostAtOnce = Math.max(mostAtOnce, cordoned.size)
  }
  t.same([...cordoned], [], 'no node left cordoned')
  t.equal(mostAtOnce, 1, 'never two nodes out at once (max_parallel 1), across the kills')
  t.equal(restarts.size, MACHINES, 'every machine restarted')
  const repeated = [...restarts].filter(([, count]) => count > 1)
  t.comment(`restarts per machine: ${JSON.stringify(Object.fromEntries(restarts))}`)
  // A machine is restarted again only when a kill fell between its restart and the engine recording it.
  t.ok(repeated.length <= kills, `at most one repeated restart per kill (${repeated.length})`)
  await engine.stop()
  const db = openAfterCrash(path.join(dataDir, 'slipway.db'))
  t.teardown(() => db.close())
  t.same(sqliteProblems(db), [])
  t.same(db.prepare('select * from lock_holders').all(), [], 'no lock_holders row left')
  passed = t.passing()
})
