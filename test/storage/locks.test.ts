/**
 * The reboot lock semaphore's store on both backends: its semantics through the LockService, and
 * concurrent lockers from two engine replicas (two connection pools on one PostgreSQL database; on
 * SQLite, where one engine owns the file, two services on one store) never holding more slots than
 * the group has, observed three ways: each lock's own answer, the holders this test knows to be in
 * their slot at the moment a lock succeeds, and a loop counting the stored holders meanwhile.
 */
import t from 'tap'
import { LockService } from '../../src/core/lifecycle/lock-service.ts'
import { SlipwayError } from '../../src/core/errors.ts'
import { migrateToLatest } from '../../src/storage/db.ts'
import type { Db } from '../../src/storage/database.ts'
import { lockRepository } from '../../src/storage/repositories/locks.ts'
import { forEachBackend, testDatabase, type BackendName } from '../helpers/backends.ts'
import { sampleLockHolders } from '../helpers/lock-holder-sampler.ts'
import { sleep } from '../helpers/wait.ts'

const isFull = (error: unknown) => error instanceof SlipwayError && error.code === 'SEMAPHORE_FULL'

/** Two replicas' lock services (and a third store to watch from) on one fresh database. */
async function replicas(t: Parameters<Parameters<typeof forEachBackend>[2]>[0], backend: BackendName, defaultSlots = 1) {
  const database = await testDatabase(t, backend)
  const first = database.open()
  await migrateToLatest(first)
  const stores: Db[] = backend === 'postgres' ? [first, database.open(), database.open()] : [first, first, first]
  const settings = { defaultSlots, defaultTtlSeconds: null }
  return { services: [new LockService(lockRepository(stores[0]!), settings), new LockService(lockRepository(stores[1]!), settings)] as const, watcher: stores[2]! }
}

const storedHolders = async (store: Db, group: string) =>
  (await store.selectFrom('lock_holders').select('holder').where('lock_group', '=', group).orderBy('holder').execute()).map((row) => row.holder)

forEachBackend(t, 'lock, recursive lock, full, unlock and group changes', async (t, backend) => {
  const { services, watcher } = await replicas(t, backend)
  const [a, b] = services
  t.same((await a.lock('default', 'm1')).alreadyHeld, false, 'a group is created on first use')
  t.same((await b.lock('default', 'm1')).alreadyHeld, true, 'locking again (on the other replica) keeps the one slot')
  await t.rejects(b.lock('default', 'm2'), { code: 'SEMAPHORE_FULL' })
  await a.putGroup('default', 2, 60)
  t.same((await b.getGroup('default')).holders.map((holder) => holder.id), ['m1'], 'changing slots keeps the holders')
  const second = await b.lock('default', 'm2')
  t.ok(second.group.holders.find((holder) => holder.id === 'm2')?.expiresAt, 'a slot taken after a TTL was set carries it')
  await t.rejects(a.unlock('default', 'm3'), { code: 'NOT_LOCK_HOLDER' })
  t.equal(await a.unlockIfHeld('default', 'm1'), true)
  t.equal(await b.unlockIfHeld('default', 'm1'), false, 'unlocking a slot not held is a no-op')
  await t.rejects(a.deleteGroup('default'), { code: 'LOCK_GROUP_HELD' })
  await b.forceRelease('default', 'm2')
  await a.deleteGroup('default')
  t.same(await storedHolders(watcher, 'default'), [])
  await t.rejects(a.getGroup('default'), { code: 'LOCK_GROUP_NOT_FOUND' })
})

forEachBackend(t, 'the first use of a group from both replicas at once creates it once and loses no holder', async (t, backend) => {
  const { services, watcher } = await replicas(t, backend, 3)
  for (let round = 0; round < 5; round++) {
    const group = `fresh-${round}`
    const attempts = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => services[i % 2]!.lock(group, `m${i}`)))
    const winners = attempts.flatMap((attempt, i) => (attempt.status === 'fulfilled' ? [`m${i}`] : []))
    t.ok(attempts.every((attempt) => attempt.status === 'fulfilled' || isFull(attempt.reason)), 'every attempt either locked or found the group full')
    t.equal(winners.length, 3, `round ${round}: three of forty got a slot`)
    t.same(await storedHolders(watcher, group), winners.sort(), 'the store holds exactly the ones that were told they got a slot')
  }
})

forEachBackend(t, '1,000 concurrent lock attempts from two replicas never hold more slots than there are', async (t, backend) => {
  const slots = 3
  const { services, watcher } = await replicas(t, backend)
  await services[0].putGroup('fleet', slots, null)

  const sampler = sampleLockHolders(watcher, 'fleet', 1)
  let sampled = { samples: 0, maxStored: 0 }

  // Machines arrive over two seconds (all in flight together, so that slots change hands under
  // contention); one takes a slot, keeps it a moment (re-locking: a recursive lock is idempotent) and
  // gives it back.
  const live = new Set<string>()
  let maxLive = 0
  let locked = 0
  let full = 0
  let relocked = 0
  let wrongAnswers = 0
  const attempt = async (i: number) => {
    const holder = `machine-${i}`
    const service = services[i % 2]!
    await sleep(Math.random() * 2000)
    try {
      const { group, alreadyHeld } = await service.lock('fleet', holder)
      if (alreadyHeld || group.holders.length > slots || !group.holders.some((h) => h.id === holder)) wrongAnswers++
      live.add(holder)
      maxLive = Math.max(maxLive, live.size)
      locked++
    } catch (error) {
      if (!isFull(error)) throw error
      full++
      return
    }
    await sleep(Math.random() * 4)
    if (i % 4 === 0) {
      // Refused would mean the holder's own slot was lost (a wrong answer, not a failure of the test run).
      const again = await services[(i + 1) % 2]!.lock('fleet', holder).catch(() => undefined)
      if (!again?.alreadyHeld || again.group.holders.length > slots) wrongAnswers++
      relocked++
    }
    // Out of `live` before the release starts: nobody can take the slot before the release commits.
    live.delete(holder)
    if (!(await service.unlockIfHeld('fleet', holder))) wrongAnswers++
  }
  const started = performance.now()
  let churnMs: number
  let wave: PromiseSettledResult<unknown>[]
  try {
    await Promise.all(Array.from({ length: 1000 }, (_, i) => attempt(i)))
    churnMs = performance.now() - started
    // Then a last wave that keeps its slots: exactly `slots` of them end up holding one.
    wave = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => services[i % 2]!.lock('fleet', `final-${i}`)))
  } finally {
    sampled = await sampler.stop()
  }
  const { samples, maxStored } = sampled
  const winners = wave.flatMap((result, i) => (result.status === 'fulfilled' ? [`final-${i}`] : []))

  t.equal(wrongAnswers, 0, 'every lock and unlock answered consistently (a new slot, never more holders than slots)')
  t.ok(locked >= slots && locked + full === 1000, `${locked} attempts got a slot, ${full} found the group full, ${relocked} re-locked (${Math.round(churnMs)} ms)`)
  t.ok(maxLive <= slots, `at most ${slots} machines knew themselves holders at once (max ${maxLive})`)
  t.ok(maxStored <= slots && samples > 10, `at most ${slots} holders stored at any of ${samples} samples (max ${maxStored})`)
  t.ok(wave.every((result) => result.status === 'fulfilled' || isFull(result.reason)), 'the last wave either locked or found the group full')
  t.equal(winners.length, slots, 'the last wave filled exactly the slots')
  t.same(await storedHolders(watcher, 'fleet'), winners.sort(), 'and the store holds exactly those')
})
