import pino from 'pino'
import t from 'tap'
import type { ScheduleReport } from '../../src/core/clusters/cluster-service.ts'
import { SchedulerLoop } from '../../src/jobs/scheduler-loop.ts'
import { sleep } from '../helpers/wait.ts'

const silent = pino({ level: 'silent' })

/** A fake pass that records overlap: `active` must never exceed 1. */
function fakeSchedule(durationMs: number) {
  const state = { passes: 0, active: 0, maxActive: 0 }
  const schedule = async (): Promise<ScheduleReport[]> => {
    state.active++
    state.maxActive = Math.max(state.maxActive, state.active)
    await sleep(durationMs)
    state.active--
    state.passes++
    return [{ cluster: 'c', state: 'pending', assignments: [], waiting: [`pass ${state.passes}`] }]
  }
  return { state, schedule }
}

t.test('passes never overlap; each caller gets the pass that ran after its call', async (t) => {
  const { state, schedule } = fakeSchedule(20)
  const loop = new SchedulerLoop(schedule, { intervalMs: 0, debounceMs: 10, logger: silent })
  const reports = await Promise.all([loop.runNow(), loop.runNow(), loop.runNow()])
  t.equal(state.maxActive, 1, 'one pass at a time')
  t.same(reports.map((report) => report[0]!.waiting[0]), ['pass 1', 'pass 2', 'pass 3'])
  await loop.stop()
})

t.test('triggers are ignored before start, debounced after, and a failing pass does not stop the loop', async (t) => {
  let fail = true
  const { state, schedule } = fakeSchedule(5)
  const loop = new SchedulerLoop(
    async () => {
      if (fail) {
        fail = false
        throw new Error('database is locked')
      }
      return schedule()
    },
    { intervalMs: 0, debounceMs: 30, logger: silent },
  )
  loop.trigger('discovery')
  await sleep(60)
  t.equal(state.passes, 0, 'not started: no pass (tests drive the scheduler explicitly)')
  loop.start() // the start pass fails
  await sleep(20)
  for (let i = 0; i < 20; i++) loop.trigger('discovery') // a burst of discoveries
  await sleep(100)
  t.equal(state.passes, 1, 'a burst of 20 triggers gives one pass, after the failed one')
  await t.resolves(loop.runNow(), 'the API still runs passes after a failure')
  await loop.stop()
  loop.trigger('late')
  await sleep(60)
  t.equal(state.passes, 2, 'nothing runs after stop')
})

t.test('the interval runs passes on its own', async (t) => {
  const { state, schedule } = fakeSchedule(1)
  const loop = new SchedulerLoop(schedule, { intervalMs: 25, debounceMs: 10, logger: silent })
  loop.start()
  await sleep(140)
  await loop.stop()
  t.ok(state.passes >= 4, `start + interval passes: ${state.passes}`)
})
