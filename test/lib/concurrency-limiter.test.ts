import t from 'tap'
import { ConcurrencyLimiter, forEachLimited } from '../../src/lib/concurrency-limiter.ts'
import { sleep } from '../helpers/wait.ts'

/** A task the test finishes by hand, recording when it started. */
function gate(started: string[], name: string) {
  let open!: (value: string) => void
  let fail!: (error: Error) => void
  const done = new Promise<string>((resolve, reject) => {
    open = resolve
    fail = reject
  })
  return { task: () => (started.push(name), done), open: () => open(name), fail: (error: Error) => fail(error) }
}

const settle = () => new Promise((resolve) => setImmediate(resolve))

t.test('at most `limit` at once; the waiters start first come first served as slots free', async (t) => {
  const limiter = new ConcurrencyLimiter(2)
  const started: string[] = []
  const gates = ['a', 'b', 'c', 'd'].map((name) => gate(started, name))
  const results = gates.map((each) => limiter.run(each.task))
  await settle()
  t.same(started, ['a', 'b'], 'two start, two wait')
  t.same([limiter.running, limiter.queued], [2, 2])
  gates[1]!.open()
  await settle()
  t.same(started, ['a', 'b', 'c'], 'the oldest waiter takes the freed slot')
  gates[0]!.open()
  gates[2]!.open()
  gates[3]!.open()
  t.same(await Promise.all(results), ['a', 'b', 'c', 'd'], 'each caller gets its own result')
  t.same([limiter.running, limiter.queued], [0, 0], 'every slot back')
})

t.test('a freed slot goes to the queue, not to a newcomer', async (t) => {
  const limiter = new ConcurrencyLimiter(1)
  const started: string[] = []
  const first = gate(started, 'first')
  const queued = gate(started, 'queued')
  const late = gate(started, 'late')
  const running = [limiter.run(first.task), limiter.run(queued.task)]
  await settle()
  first.open()
  await settle()
  t.same(started, ['first', 'queued'], 'the slot went to the waiter')
  running.push(limiter.run(late.task))
  await settle()
  t.same(started, ['first', 'queued'], 'the newcomer waits: the slot is still taken')
  queued.open()
  late.open()
  await Promise.all(running)
  t.same(started, ['first', 'queued', 'late'])
})

t.test("a failure is the caller's and frees the slot, thrown or rejected", async (t) => {
  const limiter = new ConcurrencyLimiter(1)
  await t.rejects(
    limiter.run(() => {
      throw new Error('thrown')
    }),
    /thrown/,
  )
  await t.rejects(limiter.run(async () => Promise.reject(new Error('rejected'))), /rejected/)
  t.equal(await limiter.run(() => 'plain value'), 'plain value', 'the slot came back both times')
  t.same([limiter.running, limiter.queued], [0, 0])
})

t.test('the limit is a whole number of at least 1', async (t) => {
  for (const limit of [0, -1, 1.5, Number.NaN]) t.throws(() => new ConcurrencyLimiter(limit), RangeError, String(limit))
})

t.test('forEachLimited: items started in order, bounded, all done; nothing to do is done at once', async (t) => {
  const started: number[] = []
  let running = 0
  let most = 0
  await forEachLimited([1, 2, 3, 4, 5, 6, 7], 3, async (item) => {
    started.push(item)
    most = Math.max(most, ++running)
    await sleep((8 - item) * 2)
    running--
  })
  t.same(started, [1, 2, 3, 4, 5, 6, 7])
  t.equal(most, 3)
  await forEachLimited([], 3, async () => void t.fail('no item, no call'))
})

t.test('forEachLimited rejects with the first failure; the other items still run', async (t) => {
  const done: number[] = []
  await t.rejects(
    forEachLimited([1, 2, 3, 4], 2, async (item) => {
      await sleep(item)
      if (item === 1) throw new Error('item 1 failed')
      done.push(item)
    }),
    /item 1 failed/,
  )
  await sleep(30)
  t.same(done.sort(), [2, 3, 4])
})
