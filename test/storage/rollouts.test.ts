/**
 * The rollout store's conditional start on both backends: a machine starts only while its run is
 * running and under max_failures, checked and written in one transaction; and raced against an
 * operator's cancel from another replica (a second connection pool on PostgreSQL), never leaves a
 * finished run with a machine in flight.
 */
import t from 'tap'
import { parseRolloutSpec } from '../../src/core/lifecycle/rollout-plan.ts'
import { RolloutService, type RolloutMachine, type RolloutRun, type RolloutTargets } from '../../src/core/lifecycle/rollout-service.ts'
import { migrateToLatest } from '../../src/storage/db.ts'
import type { Db } from '../../src/storage/database.ts'
import { rolloutRepository } from '../../src/storage/repositories/rollouts.ts'
import { forEachBackend, testDatabase } from '../helpers/backends.ts'
import { sleep } from '../helpers/wait.ts'

const at = '2026-11-21T10:00:00.000Z'
const later = '2026-11-21T10:01:00.000Z'
const runOf = (id: string, overrides: Partial<RolloutRun> = {}): RolloutRun => ({
  id,
  clusters: ['c'],
  spec: parseRolloutSpec({ cluster: 'c', max_failures: 1 }),
  state: 'running',
  failures: 0,
  createdAt: at,
  updatedAt: at,
  finishedAt: null,
  ...overrides,
})
const machineOf = (runId: string, uuid: string): RolloutMachine => ({
  runId,
  uuid,
  cluster: 'c',
  role: 'node',
  hostname: uuid,
  phase: 'waiting',
  error: null,
  restartIssuedAt: null,
  startedAt: null,
  finishedAt: null,
  phaseChangedAt: at,
})
const locking = (machine: RolloutMachine): RolloutMachine => ({ ...machine, phase: 'locking', startedAt: later, phaseChangedAt: later })
const phaseOf = async (store: Db, runId: string, uuid: string) =>
  (await store.selectFrom('rollout_machines').select('phase').where('run_id', '=', runId).where('uuid', '=', uuid).executeTakeFirstOrThrow()).phase

forEachBackend(t, 'startMachine: only a waiting machine of a run still running under max_failures', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const store = database.open()
  await migrateToLatest(store)
  const repository = rolloutRepository(store)
  const run = runOf('r1')
  const [m1, m2] = [machineOf('r1', 'm1'), machineOf('r1', 'm2')]
  await repository.insertRun(run, [m1, m2])

  t.equal(await repository.startMachine(locking(m1)), true)
  t.match((await repository.listMachines('r1')).find((machine) => machine.uuid === 'm1'), { phase: 'locking', startedAt: later })
  t.equal(await repository.startMachine(locking(m1)), false, 'a machine no longer waiting is not started again')

  const refusals: Array<[string, Partial<RolloutRun>]> = [
    ['paused', { state: 'paused' }],
    ['cancelled', { state: 'cancelled' }],
    ['at max_failures', { failures: 1 }],
  ]
  for (const [why, change] of refusals) {
    await repository.saveRun({ ...run, ...change })
    t.equal(await repository.startMachine(locking(m2)), false, `${why}: refused`)
    t.equal(await phaseOf(store, 'r1', 'm2'), 'waiting', `${why}: the machine is left waiting`)
  }
  await repository.saveRun(run)
  t.equal(await repository.startMachine(locking(m2)), true, 'running again, under max_failures: started')
  t.equal(await repository.startMachine(locking(machineOf('none', 'm1'))), false, 'a run that does not exist starts nothing')
})

forEachBackend(t, 'a start raced against a cancel from another replica never leaves a finished run with a machine in flight', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const first = database.open()
  await migrateToLatest(first)
  const second = backend === 'postgres' ? database.open() : first
  const runner = rolloutRepository(first)
  const operator = new RolloutService(rolloutRepository(second), {} as RolloutTargets, { setSlots: async () => undefined }, () => new Date(later))
  let started = 0
  let refused = 0
  for (let round = 0; round < 40; round++) {
    const id = `race-${round}`
    const machine = machineOf(id, 'm')
    await runner.insertRun(runOf(id), [machine])
    const [start] = await Promise.all([(async () => (await sleep(Math.random() * 3), runner.startMachine(locking(machine))))(), (async () => (await sleep(Math.random() * 3), operator.cancel(id)))()])
    const stored = (await runner.findRun(id))!
    const phase = await phaseOf(first, id, 'm')
    t.equal(stored.state, 'cancelled')
    if (start) {
      started++
      if (phase !== 'locking' || stored.finishedAt !== null) t.fail(`round ${round}: started, yet the run is ${stored.finishedAt ? 'finished' : 'open'} with the machine ${phase}`)
    } else {
      refused++
      if (phase !== 'waiting' || stored.finishedAt === null) t.fail(`round ${round}: refused, yet the run is ${stored.finishedAt ? 'finished' : 'open'} with the machine ${phase}`)
    }
  }
  t.equal(started + refused, 40, `${started} starts before the cancel (the run stays open for the machine in flight), ${refused} refused after it (the run settled)`)
})
