import t from 'tap'
import { planFanout, retryDelayMs, type FanoutTarget } from '../../../src/core/releases/fanout-plan.ts'
import type { ClusterRelease, Release } from '../../../src/core/releases/release.ts'

const now = new Date('2026-11-21T12:00:00Z')
const release = (overrides: Partial<Release> = {}, rollout: Partial<Release['rollout']> = {}): Release => ({
  name: 'web',
  namespace: 'shop',
  selector: '',
  dns: { hostnames: [], policy: 'nearest', ttlSeconds: null, weights: {}, failover: [] },
  excludedClusters: [],
  revision: 2,
  state: 'active',
  rollout: { maxParallel: 2, canarySelector: null, maxFailures: 2, readyTimeoutSeconds: 60, ...rollout },
  createdAt: now.toISOString(),
  updatedAt: now.toISOString(),
  ...overrides,
})
const target = (cluster: string, canary = false): FanoutTarget => ({ cluster, canary })
const status = (cluster: string, revision: number, phase: ClusterRelease['phase'], extra: Partial<ClusterRelease> = {}): ClusterRelease => ({
  cluster,
  revision,
  phase,
  error: null,
  attempts: 1,
  retryAt: null,
  objects: [],
  updatedAt: now.toISOString(),
  readyAt: null,
  ...extra,
})

t.test('max_parallel clusters at once, in name order; stale revisions are brought up', async (t) => {
  const targets = ['c', 'a', 'd', 'b'].map((name) => target(name))
  t.same(planFanout(release(), targets, [], now).apply, ['a', 'b'])
  const plan = planFanout(release(), targets, [status('a', 2, 'applying'), status('b', 1, 'ready'), status('c', 2, 'ready')], now)
  t.same(plan.apply, ['b'], 'one slot left; b has the old revision, c is current')
  t.equal(plan.waiting, 'max_parallel 2 clusters applying')
  t.notOk(plan.complete)
  t.ok(planFanout(release(), targets, targets.map((x) => status(x.cluster, 2, 'ready')), now).complete)
})

t.test('canaries first: the others wait until every canary is ready', async (t) => {
  const targets = [target('a'), target('b'), target('canary-1', true), target('canary-2', true)]
  const wide = release({}, { maxParallel: 10 })
  t.same(planFanout(wide, targets, [], now).apply, ['canary-1', 'canary-2'])
  const oneReady = planFanout(wide, targets, [status('canary-1', 2, 'ready'), status('canary-2', 2, 'applying')], now)
  t.same(oneReady.apply, [])
  t.equal(oneReady.waiting, 'waiting for the canary clusters to be ready')
  t.same(planFanout(wide, targets, [status('canary-1', 2, 'ready'), status('canary-2', 2, 'ready')], now).apply, ['a', 'b'])
})

t.test('failures: halted at max_failures; a failed cluster retried when due; leaving clusters always removed', async (t) => {
  const targets = ['a', 'b', 'c', 'd'].map((name) => target(name))
  const later = new Date(now.getTime() + 60_000).toISOString()
  const failedOnce = planFanout(release(), targets, [status('a', 2, 'failed', { retryAt: later }), status('b', 2, 'ready')], now)
  t.same(failedOnce.apply, ['c', 'd'], 'one failure of 2 allowed: the others go on; a is not due yet')
  t.equal(failedOnce.failures, 1)
  t.same(planFanout(release(), targets, [status('a', 2, 'failed', { retryAt: now.toISOString() }), status('b', 2, 'ready')], now).apply, ['a', 'c'], 'a retry when due')
  const halted = planFanout(release(), targets, [status('a', 2, 'failed'), status('b', 2, 'failed'), status('gone', 2, 'ready')], now)
  t.same(halted.apply, [])
  t.match(halted.waiting, /^halted: 2 cluster\(s\) failed revision 2/)
  t.same(halted.remove, ['gone'], 'removal is not held back by a halt')
  t.same(planFanout(release({ state: 'paused' }), targets, [], now), { apply: [], remove: [], failures: 0, complete: false, waiting: 'paused' })
  t.same(planFanout(release(), [], [status('x', 1, 'removing')], now).remove, [], 'a removal in flight is not started twice')
  t.same(planFanout(release(), targets, [status('a', 2, 'pending'), status('b', 2, 'ready'), status('c', 2, 'ready'), status('d', 2, 'ready')], now).apply, ['a'], 'a retried (pending) cluster is due')
  // A resume puts failed clusters back to pending with their retryAt: they no longer count, and wait for it.
  const resumed = [status('a', 2, 'pending', { retryAt: later }), status('b', 2, 'pending', { retryAt: later })]
  t.same(planFanout(release(), targets, resumed, now), { apply: ['c', 'd'], remove: [], failures: 0, complete: false, waiting: null }, 'resumed failures do not halt; the others go on')
  t.same(planFanout(release(), targets, resumed, new Date(later)).apply, ['a', 'b'], 'each is due at its retryAt')
  t.same([1, 2, 3, 10].map(retryDelayMs), [15_000, 30_000, 60_000, 600_000])
})
