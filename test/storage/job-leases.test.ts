/**
 * Job leases on both backends: the repository's one-statement claim (free, renewed, expired, taken
 * over, released, contended by many replicas at once), and the lease service that gates a job's
 * background passes, with its gain/loss log lines and forwarded triggers.
 */
import pino from 'pino'
import t from 'tap'
import { JobLease, type JobLeaseEvent } from '../../src/jobs/job-lease.ts'
import { SerialJob } from '../../src/jobs/serial-job.ts'
import { migrateToLatest } from '../../src/storage/db.ts'
import { jobLeaseRepository } from '../../src/storage/repositories/job-leases.ts'
import { forEachBackend, testDatabase } from '../helpers/backends.ts'
import { sleep, until } from '../helpers/wait.ts'

function capturingLogger() {
  const lines: { msg: string; job?: string; replica?: string }[] = []
  return { lines, logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }) }
}

forEachBackend(t, 'a lease is taken when free or expired, renewed by its holder, refused to others and released', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const first = database.open()
  await migrateToLatest(first)
  const replicaA = jobLeaseRepository(first)
  const replicaB = jobLeaseRepository(database.open())

  const taken = await replicaA.claim('scheduler', 'replica-a', 400)
  t.equal(taken.held, true)
  t.equal(taken.holder, 'replica-a')
  const [record] = await replicaA.list()
  t.ok(record && record.expiresAt - record.now > 300 && record.expiresAt - record.now <= 400, `expires in the TTL by the database's clock: ${record && record.expiresAt - record.now} ms`)

  const refused = await replicaB.claim('scheduler', 'replica-b', 400)
  t.same({ held: refused.held, holder: refused.holder }, { held: false, holder: 'replica-a' }, 'another replica is refused and told who holds it')
  t.equal(await replicaB.release('scheduler', 'replica-b'), false, 'a non-holder cannot release it')

  await sleep(20)
  t.equal((await replicaA.claim('scheduler', 'replica-a', 400)).held, true, 'the holder renews')
  const [renewed] = await replicaA.list()
  t.equal(renewed!.acquiredAt, record!.acquiredAt, 'a renewal keeps when it was taken')
  t.ok(renewed!.renewedAt > record!.renewedAt && renewed!.expiresAt > record!.expiresAt, 'and moves its expiry')

  t.equal((await replicaB.claim('other-job', 'replica-b', 400)).held, true, 'each job has its own lease')

  await sleep(450)
  const takeover = await replicaB.claim('scheduler', 'replica-b', 400)
  t.same({ held: takeover.held, holder: takeover.holder }, { held: true, holder: 'replica-b' }, 'an expired lease goes to the next replica that claims it')
  t.equal((await replicaA.claim('scheduler', 'replica-a', 400)).held, false, 'the old holder does not get it back')
  const [takenOver] = (await replicaA.list()).filter((lease) => lease.name === 'scheduler')
  t.ok(takenOver!.acquiredAt > record!.acquiredAt, 'a take-over starts a new acquisition time')

  t.equal(await replicaB.release('scheduler', 'replica-b'), true)
  t.equal((await replicaA.claim('scheduler', 'replica-a', 400)).held, true, 'a released lease is free at once')

  await replicaB.request('scheduler')
  const asked = await replicaA.claim('scheduler', 'replica-a', 400)
  t.ok(asked.requestedAt !== null && asked.requestedAt > 0, "the holder's renewal reads a pass another replica asked for")
})

forEachBackend(t, 'an engine alone on its database (SQLite) takes over the lease its crashed earlier start left', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const store = database.open()
  await migrateToLatest(store)
  const exclusive = jobLeaseRepository(store, { exclusive: true })
  t.equal((await exclusive.claim('scheduler', 'engine-before-crash', 60_000)).held, true)
  const restarted = await exclusive.claim('scheduler', 'engine-after-restart', 60_000)
  t.same({ held: restarted.held, holder: restarted.holder }, { held: true, holder: 'engine-after-restart' }, 'taken at once, not after the TTL')
})

forEachBackend(t, 'twenty replicas claiming one lease at once: exactly one holds it, every round', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const store = database.open()
  await migrateToLatest(store)
  // PostgreSQL: two pools (two replicas' worth of connections); SQLite: one engine per file, one store.
  const repositories = backend === 'postgres' ? [jobLeaseRepository(store), jobLeaseRepository(database.open())] : [jobLeaseRepository(store)]
  for (let round = 0; round < 10; round++) {
    const name = `job-${round}`
    const claims = await Promise.all(Array.from({ length: 20 }, (_, replica) => repositories[replica % repositories.length]!.claim(name, `replica-${replica}`, 60_000)))
    const holders = claims.filter((claim) => claim.held)
    t.equal(holders.length, 1, `round ${round}: one holder`)
    const [record] = (await repositories[0]!.list()).filter((lease) => lease.name === name)
    t.equal(record!.holder, holders[0]!.holder, 'the store agrees on who')
    t.ok(claims.every((claim) => claim.holder === record!.holder), 'and every refused replica was told who')
  }
})

forEachBackend(t, "the lease service gates a job's background passes; a crashed holder's lease is taken over after the TTL", async (t, backend) => {
  const database = await testDatabase(t, backend)
  const first = database.open()
  await migrateToLatest(first)
  // Long enough that a busy machine's stalls do not pass for a crash, and that a hand-over (a renewal
  // period) and a take-over (the TTL) are told apart.
  const ttlMs = 1500
  const { lines, logger } = capturingLogger()
  const events: JobLeaseEvent[] = []
  const passes: { replica: string; reason: string }[] = []

  // Wired as the engine wires its singleton jobs: the lease is the job's gate and asks it for passes.
  const replica = (id: string, store: typeof first) => {
    const lease: JobLease = new JobLease({ name: 'test-job', holder: id, ttlMs, store: jobLeaseRepository(store), logger, observe: (event) => events.push(event) })
    const job: SerialJob<void> = new SerialJob(
      async (reason) => {
        passes.push({ replica: id, reason })
      },
      { name: 'test job', intervalMs: 50, debounceMs: 5, logger, gate: lease },
    )
    return { job, lease }
  }
  const a = replica('replica-a', first)
  const b = replica('replica-b', backend === 'postgres' ? database.open() : first)
  await a.lease.start()
  await b.lease.start()
  a.job.start()
  b.job.start()
  t.teardown(async () => {
    for (const { job, lease } of [a, b]) {
      await job.stop()
      await lease.stop()
    }
  })

  t.equal(a.lease.mayRun(), true, 'the first replica holds the lease')
  t.equal(b.lease.mayRun(), false, 'the second does not')
  t.equal(b.lease.holder(), 'replica-a', 'and knows who does')
  await sleep(300)
  t.ok(passes.filter((pass) => pass.replica === 'replica-a').length >= 3, 'the holder runs its timer passes')
  t.equal(passes.filter((pass) => pass.replica === 'replica-b').length, 0, 'the other replica runs none')

  // A trigger on the replica that does not hold the lease reaches the holder at its next renewal.
  const before = passes.length
  b.job.trigger('machine changed')
  await until('the forwarded pass', () => passes.slice(before).some((pass) => pass.replica === 'replica-a' && pass.reason === 'asked by another replica'), 5000, 10)
  t.pass('a trigger on the non-holder becomes a pass on the holder')
  t.notOk(passes.some((pass) => pass.replica === 'replica-b'), 'and never a pass on the non-holder')

  // runNow (the API) answers on the replica that was asked, lease or not.
  await b.job.runNow('api')
  t.same(passes.at(-1), { replica: 'replica-b', reason: 'api' })

  // A crash: the holder stops renewing without releasing. The other takes over after the TTL.
  const crashedAt = performance.now()
  a.lease.abandon()
  await a.job.stop()
  await until('the take-over', () => b.lease.mayRun(), ttlMs * 4, 10)
  const takeoverMs = performance.now() - crashedAt
  t.ok(takeoverMs >= ttlMs * 0.5 && takeoverMs <= ttlMs + ttlMs / 3 + 1000, `taken over ${Math.round(takeoverMs)} ms after the crash (TTL ${ttlMs} ms)`)
  await until('a pass on the new holder', () => passes.some((pass) => pass.replica === 'replica-b' && pass.reason === 'lease gained'), 5000, 10)
  t.pass('the new holder runs a pass at once')
  t.ok(
    lines.some((line) => line.job === 'test-job' && line.replica === 'replica-b' && /now runs the test-job \(gained its lease\)/.test(line.msg)),
    'a log line says which replica gained the lease',
  )

  // A graceful stop releases the lease: the other replica takes it at its next renewal, not after a TTL.
  const c = replica('replica-c', backend === 'postgres' ? database.open() : first)
  await c.lease.start()
  t.equal(c.lease.mayRun(), false)
  const stoppedAt = performance.now()
  await b.job.stop()
  await b.lease.stop()
  await until('the hand-over', () => c.lease.mayRun(), ttlMs * 2, 10)
  t.ok(performance.now() - stoppedAt < ttlMs / 3 + 400, `handed over within a renewal period (${Math.round(performance.now() - stoppedAt)} ms)`)
  await c.lease.stop()
  await c.job.stop()
  t.same(
    events.map((event) => `${event.holder} ${event.change}`),
    ['replica-a gained', 'replica-b gained', 'replica-b released', 'replica-c gained', 'replica-c released'],
    'gains and releases are observed (metrics)',
  )
})

forEachBackend(t, 'a holder that cannot reach the database stops running the job within the TTL and says so', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const store = database.open()
  await migrateToLatest(store)
  const { lines, logger } = capturingLogger()
  const repository = jobLeaseRepository(store)
  let reachable = true
  const flaky = {
    ...repository,
    claim: async (name: string, holder: string, ttlMs: number) => {
      if (!reachable) throw new Error('connection refused')
      return repository.claim(name, holder, ttlMs)
    },
  }
  const lease = new JobLease({ name: 'rollout-runner', holder: 'replica-a', ttlMs: 300, store: flaky, logger })
  await lease.start()
  t.teardown(() => lease.stop())
  t.equal(lease.mayRun(), true)
  reachable = false
  await until('the lease to lapse', () => !lease.mayRun(), 3000, 10)
  await until('the loss to be logged', () => lines.some((line) => /no longer runs the rollout-runner/.test(line.msg)), 3000, 10)
  t.pass('not held once a TTL passed without a renewal, and logged')
  reachable = true
  await until('the lease to be retaken', () => lease.mayRun(), 3000, 10)
  t.pass('retaken once the database answers (nobody else had it)')
})
