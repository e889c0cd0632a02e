import t from 'tap'
import { ChartService } from '../../../src/core/releases/chart-service.ts'
import type { ReleaseClusters, ReleaseRepository } from '../../../src/core/releases/ports.ts'
import { ReleaseExecutor } from '../../../src/core/releases/release-executor.ts'
import { ReleaseService } from '../../../src/core/releases/release-service.ts'
import { rolloutSettingsOf, type ClusterRelease, type Release, type ReleaseRevision } from '../../../src/core/releases/release.ts'
import { until } from '../../helpers/wait.ts'
import { BrokenChartTool, FixedChartRepository, storedChart } from '../../fakes/chart-repository.ts'
import { ManualClock } from '../../fakes/manual-clock.ts'
import { FixedReleaseApplier } from '../../fakes/release-applier.ts'
import { BrokenReleaseClusters, FixedReleaseClusters, releaseCluster } from '../../fakes/release-clusters.ts'
import { BrokenReleaseRenderer, FixedReleaseRenderer } from '../../fakes/release-renderer.ts'
import { BrokenReleaseRepository, EmptyReleaseRepository, FixedReleaseRepository } from '../../fakes/release-repository.ts'
import type { CallJournal } from '../../fakes/scripted-fake.ts'

const NS = 'shop'
const NAME = 'web'
const OBJECTS = [
  { apiVersion: 'v1', kind: 'ConfigMap', namespace: NS, name: 'web-values' },
  { apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: 'web' },
]

interface WorldOptions {
  clusters?: ReturnType<typeof releaseCluster>[]
  repository?: ReleaseRepository
  registry?: ReleaseClusters
  renderer?: 'broken'
  /** Told of every renderer and applier call, before it is recorded. */
  onCall?: (call: string) => void
}

/**
 * The registry's clusters, the chart repository (web 1.0.0 and 1.1.0), helm and the clusters' API
 * servers, each a fake, the real ReleaseService over them, and a manual clock (retries wait on it).
 */
function world(t: { teardown(fn: () => unknown): void }, options: WorldOptions = {}) {
  const clock = new ManualClock()
  const calls: string[] = []
  const journal: CallJournal = { push: (call: string) => (options.onCall?.(call), calls.push(call)) }
  const repository = (options.repository ?? new EmptyReleaseRepository()) as FixedReleaseRepository
  const charts = new ChartService(new FixedChartRepository([storedChart('web', '1.0.0'), storedChart('web', '1.1.0', '2026-11-21T09:30:00.000Z')]), new BrokenChartTool(), 1_000_000, clock.now)
  const renderer = options.renderer === 'broken' ? new BrokenReleaseRenderer() : new FixedReleaseRenderer(journal)
  const applier = new FixedReleaseApplier({}, journal)
  const registry = options.registry ?? new FixedReleaseClusters(options.clusters ?? [releaseCluster('eu-1', { env: 'prod' }), releaseCluster('us-1', { env: 'prod' })])
  const service = new ReleaseService(repository, charts, renderer, registry, clock.now)
  const logs: Array<{ level: string; message: string }> = []
  const executors: ReleaseExecutor[] = []
  /** An engine's reconciler: passes never overlap, and a wake asks for one soon (as SerialJob does). */
  const start = () => {
    let tail: Promise<void> = Promise.resolve()
    const errors: unknown[] = []
    const tick = () => (tail = tail.then(() => executor.tick()).catch((error: unknown) => void errors.push(error)))
    const executor = new ReleaseExecutor({ repository, charts, renderer, applier, service, clock: clock.now, log: ({ level, message }) => void logs.push({ level, message }) }, () => void setImmediate(tick))
    executors.push(executor)
    return { executor, tick, errors }
  }
  t.teardown(async () => {
    applier.releaseAll()
    for (const executor of executors) await executor.stop(100)
  })
  const install = (document: Record<string, unknown> = {}) =>
    service.install({ name: NAME, namespace: NS, chart: { name: 'web', version: '1.0.0' }, selector: 'env=prod', values: { replicas: 2 }, ...document })
  const status = (cluster: string) => repository.status(NS, NAME, cluster)
  /** The phase of every cluster that has a status. */
  const phases = () => Object.fromEntries(['canary-1', 'eu-1', 'us-1', 'dev-1', 'c1', 'c2', 'c3', 'c4', 'c5'].flatMap((cluster) => (status(cluster) ? [[cluster, status(cluster)!.phase]] : [])))
  const messages = () => repository.events(NS, NAME).map((event) => (event.cluster ? `${event.cluster}: ${event.message}` : event.message))
  const settled = (clusters: string[], phase: ClusterRelease['phase'] = 'ready') => until(`${clusters.join(', ')} to be ${phase}`, () => clusters.every((cluster) => status(cluster)?.phase === phase))
  return { clock, calls, repository, renderer, applier, registry: registry as FixedReleaseClusters, service, logs, start, install, status, phases, messages, settled }
}

const at = '2026-11-21T09:00:00.000Z'
/** The manual clock's start: when `install` creates the release. */
const INSTALLED_AT = '2026-11-21T10:00:00.000Z'
/** A release as a previous engine left it, with its first revision. */
function stored(overrides: Partial<Release> = {}): { release: Release; revision: ReleaseRevision & { namespace: string; name: string } } {
  return {
    release: {
      name: NAME,
      namespace: NS,
      selector: 'env=prod',
      dns: { hostnames: [], policy: 'nearest', ttlSeconds: null, weights: {}, failover: [] },
      excludedClusters: [],
      revision: 1,
      state: 'active',
      rollout: rolloutSettingsOf({ max_parallel: 10, max_failures: 3, ready_timeout_seconds: 300 }),
      createdAt: at,
      updatedAt: at,
      tenant: null,
      ...overrides,
    },
    revision: { namespace: NS, name: NAME, revision: 1, chartName: 'web', chartVersion: '1.0.0', values: { replicas: 2 }, clusterValues: false, description: 'Install', createdAt: at },
  }
}
const statusOf = (cluster: string, phase: ClusterRelease['phase'], extra: Partial<ClusterRelease> = {}): ClusterRelease & { namespace: string; name: string } => ({
  namespace: NS,
  name: NAME,
  cluster,
  revision: 1,
  phase,
  error: null,
  attempts: 0,
  retryAt: null,
  objects: OBJECTS,
  updatedAt: at,
  readyAt: phase === 'ready' ? at : null,
  ...extra,
})

t.test('each selected, joined cluster gets the revision applied, then waited for; others are left alone', async (t) => {
  const w = world(t, {
    clusters: [
      releaseCluster('eu-1', { env: 'prod' }),
      releaseCluster('us-1', { env: 'prod' }),
      releaseCluster('dev-1', { env: 'dev' }),
      releaseCluster('new-1', { env: 'prod' }, { joined: false }),
    ],
  })
  await w.install()
  const installCalls = w.calls.length
  const { executor, tick } = w.start()
  await tick()
  await w.settled(['eu-1', 'us-1'])

  const calls = w.calls.slice(installCalls)
  t.same(calls.filter((call) => call.startsWith('apply') || call.startsWith('waitReady')).sort(), ['apply eu-1 shop/web#1', 'apply us-1 shop/web#1', 'waitReady eu-1', 'waitReady us-1'])
  t.ok(calls.indexOf('apply eu-1 shop/web#1') < calls.indexOf('waitReady eu-1'), 'applied, then waited for')
  t.same(calls.filter((call) => call.startsWith('render')), ['render shop/web {"replicas":2}'], 'one render for clusters whose values are equal')
  t.equal(executor.renders, 1)
  for (const cluster of ['eu-1', 'us-1']) {
    t.match(w.status(cluster), { revision: 1, phase: 'ready', error: null, attempts: 0, retryAt: null, objects: OBJECTS, readyAt: String })
    t.same(w.applier.objectsOn(cluster, NS, NAME), OBJECTS)
  }
  t.equal(w.status('dev-1'), undefined, 'not selected')
  t.equal(w.status('new-1'), undefined, 'not joined yet')
  const eu = w.applier.applied.find((apply) => apply.cluster === 'eu-1')!
  t.match(eu.input, { releaseName: NAME, namespace: NS, revision: 1, description: 'Install', values: { replicas: 2 }, chart: { name: 'web', version: '1.0.0' }, firstDeployedAt: INSTALLED_AT })
  t.same(eu.previous, [], 'nothing to prune on a first install')
  t.same(w.messages().filter((message) => message.startsWith('eu-1')), ['eu-1: applying revision 1', 'eu-1: revision 1 ready (2 object(s))'])
})

t.test('cluster values: each cluster renders with its own facts; an upgrade prunes with the objects the cluster had', async (t) => {
  const w = world(t)
  await w.install({ cluster_values: true })
  const { executor, tick } = w.start()
  await tick()
  await w.settled(['eu-1', 'us-1'])
  t.equal(executor.renders, 2, 'one render per distinct set of values')
  t.match(w.applier.applied.find((apply) => apply.cluster === 'us-1')!.input.values, { replicas: 2, slipway: { cluster: { name: 'us-1', labels: { env: 'prod' } } } })

  w.clock.advance(60_000)
  await w.service.upgrade(NS, NAME, { chart: { name: 'web', version: '1.1.0' } })
  await tick()
  await until('revision 2 to be ready everywhere', () => ['eu-1', 'us-1'].every((cluster) => w.status(cluster)?.revision === 2 && w.status(cluster)?.phase === 'ready'))
  const upgrade = w.applier.applied.find((apply) => apply.cluster === 'eu-1' && apply.input.revision === 2)!
  t.match(upgrade.input, { description: 'Upgrade', chart: { version: '1.1.0' } })
  t.same(upgrade.previous, OBJECTS, "revision 1's objects, for the applier to prune what revision 2 no longer has")
  t.equal(upgrade.input.firstDeployedAt, INSTALLED_AT, "Helm's first_deployed: when revision 1 became ready there")
  t.equal(w.status('eu-1')!.readyAt, w.clock.iso(), 'readyAt moves on with the new revision')
})

t.test('canaries first: the other clusters wait until every canary is ready', async (t) => {
  const w = world(t, { clusters: [releaseCluster('canary-1', { env: 'prod', tier: 'canary' }), releaseCluster('eu-1', { env: 'prod' }), releaseCluster('us-1', { env: 'prod' })] })
  await w.install({ rollout: { canary_selector: 'tier=canary' } })
  const letCanaryBeReady = w.applier.holdOn('waitReady canary-1')
  const { tick } = w.start()
  await tick()
  await until('the canary to be waited for', () => w.calls.includes('waitReady canary-1'))
  await tick()
  t.same(w.phases(), { 'canary-1': 'applying' }, 'nothing else starts while the canary is not ready')
  t.notOk(w.calls.some((call) => call.startsWith('apply eu-1') || call.startsWith('apply us-1')))

  letCanaryBeReady()
  await w.settled(['canary-1', 'eu-1', 'us-1'])
  const canaryReady = w.messages().indexOf('canary-1: revision 1 ready (2 object(s))')
  t.ok(canaryReady >= 0 && canaryReady < w.messages().indexOf('eu-1: applying revision 1'), 'the others started after the canary was ready')
})

t.test('max_parallel: never more clusters applying at once', async (t) => {
  let busiest = 0
  const w = world(t, {
    clusters: ['c1', 'c2', 'c3', 'c4', 'c5'].map((name) => releaseCluster(name, { env: 'prod' })),
    onCall: (call) => {
      if (call.startsWith('apply')) busiest = Math.max(busiest, ['c1', 'c2', 'c3', 'c4', 'c5'].filter((cluster) => w.status(cluster)?.phase === 'applying').length)
    },
  })
  await w.install({ rollout: { max_parallel: 2 } })
  const releases = ['c1', 'c2', 'c3', 'c4', 'c5'].map((cluster) => w.applier.holdOn(`waitReady ${cluster}`))
  const { tick } = w.start()
  await tick()
  await until('two clusters to be waited for', () => w.calls.filter((call) => call.startsWith('waitReady')).length === 2)
  await tick()
  t.same(w.phases(), { c1: 'applying', c2: 'applying' }, 'the first two by name')

  releases[0]!()
  await until('c3 to start once c1 is ready', () => w.status('c3')?.phase === 'applying')
  t.same(w.phases(), { c1: 'ready', c2: 'applying', c3: 'applying' })
  for (const release of releases) release()
  await w.settled(['c1', 'c2', 'c3', 'c4', 'c5'])
  t.equal(busiest, 2)
})

t.test('max_failures reached: the rollout halts, no new cluster starts, and the halt is recorded', async (t) => {
  const w = world(t, { clusters: ['c1', 'c2', 'c3'].map((name) => releaseCluster(name, { env: 'prod' })) })
  w.applier.unready.add('c2')
  await w.install({ rollout: { max_parallel: 1, max_failures: 1, ready_timeout_seconds: 60 } })
  const { tick } = w.start()
  await tick()
  await until('the rollout to halt', () => w.repository.release(NS, NAME)?.state === 'halted')
  await tick()
  t.same(w.phases(), { c1: 'ready', c2: 'failed' }, 'c3 never started')
  t.match(w.status('c2'), { phase: 'failed', attempts: 1, error: 'not ready after 60000 ms: Deployment shop/web', retryAt: w.clock.iso(15_000) })
  t.ok(w.messages().includes('rollout halted: 1 cluster(s) failed revision 1 (max_failures 1); retry or resume to go on'))
  t.ok(w.logs.some((log) => log.level === 'warn' && log.message.startsWith('rollout halted')))

  // An operator's retry takes the failure back and the rollout goes on.
  w.applier.unready.delete('c2')
  await w.service.retry(NS, NAME)
  await tick()
  await w.settled(['c1', 'c2', 'c3'])
  t.equal(w.repository.release(NS, NAME)!.state, 'active')
})

t.test('below max_failures: the rollout goes on, and the failed cluster is tried again once its retryAt has passed', async (t) => {
  const w = world(t, { clusters: ['c1', 'c2', 'c3'].map((name) => releaseCluster(name, { env: 'prod' })) })
  w.applier.unready.add('c2')
  await w.install({ rollout: { max_parallel: 1, max_failures: 2 } })
  const { tick } = w.start()
  await tick()
  await w.settled(['c1', 'c3'])
  t.match(w.status('c2'), { phase: 'failed', attempts: 1 })
  t.equal(w.repository.release(NS, NAME)!.state, 'active', 'not halted')

  w.clock.advance(14_000)
  await tick()
  t.equal(w.status('c2')!.phase, 'failed', 'not before its retryAt (15 s after the first failure)')
  w.clock.advance(1_000)
  await tick()
  await until('the second attempt', () => w.status('c2')!.attempts === 2)
  t.match(w.status('c2'), { phase: 'failed', retryAt: w.clock.iso(30_000) }, 'the next wait doubles')
  w.applier.unready.delete('c2')
  w.clock.advance(30_000)
  await tick()
  await w.settled(['c2'])
  t.match(w.status('c2'), { attempts: 0, retryAt: null, error: null })
})

t.test('a broken renderer fails every cluster with its error, counted toward max_failures', async (t) => {
  const w = world(t, { renderer: 'broken', clusters: ['c1', 'c2'].map((name) => releaseCluster(name, { env: 'prod' })) })
  // Installing renders first: a broken helm refuses the install itself; the release here was stored by an earlier engine.
  await t.rejects(w.install(), { code: 'INTENTIONAL_ERROR' })
  const { release, revision } = stored({ rollout: rolloutSettingsOf({ max_parallel: 10, max_failures: 2, ready_timeout_seconds: 300 }) })
  await w.repository.insert(release, revision)
  const { tick } = w.start()
  await tick()
  await w.settled(['c1', 'c2'], 'failed')
  t.match(w.status('c1'), { error: 'ReleaseRenderer.render: intentional error of a broken fake', attempts: 1 })
  await tick()
  t.equal(w.repository.release(NS, NAME)!.state, 'halted')
  t.same(w.applier.applied, [], 'nothing was applied')
})

t.test('pause: clusters applying finish, no new one starts; resume goes on', async (t) => {
  const w = world(t)
  await w.install({ rollout: { max_parallel: 1 } })
  const letEuBeReady = w.applier.holdOn('waitReady eu-1')
  const { tick } = w.start()
  await tick()
  await until('eu-1 to be waited for', () => w.calls.includes('waitReady eu-1'))
  await w.service.pause(NS, NAME)
  letEuBeReady()
  await w.settled(['eu-1'])
  await tick()
  t.same(w.phases(), { 'eu-1': 'ready' }, 'us-1 waits while paused')
  await w.service.resume(NS, NAME)
  await tick()
  await w.settled(['eu-1', 'us-1'])
})

t.test('a cluster that stops matching gets the release removed; a deleted release is removed everywhere, then forgotten', async (t) => {
  const w = world(t)
  await w.install()
  const { tick } = w.start()
  await tick()
  await w.settled(['eu-1', 'us-1'])

  w.registry.set([releaseCluster('eu-1', { env: 'prod' }), releaseCluster('us-1', { env: 'staging' })])
  await tick()
  await until('us-1 to be removed', () => w.status('us-1') === undefined)
  t.equal(w.applier.objectsOn('us-1', NS, NAME), undefined)
  t.ok(w.messages().includes('us-1: removing (no longer selected)'))
  t.ok(w.messages().includes('us-1: removed (2 object(s) deleted)'))

  await w.service.remove(NS, NAME)
  await tick()
  await until('the release to be forgotten', () => w.repository.release(NS, NAME) === undefined)
  t.ok(w.calls.includes('uninstall eu-1 shop/web'))
  t.equal(w.applier.objectsOn('eu-1', NS, NAME), undefined)
})

t.test('resume after a restart: a cluster left applying is applied again, one left removing is removed; ready ones are left alone', async (t) => {
  const { release, revision } = stored()
  const repository = new FixedReleaseRepository({
    releases: [release],
    revisions: [revision],
    clusters: [statusOf('eu-1', 'applying', { objects: [] }), statusOf('dev-1', 'removing'), statusOf('us-1', 'ready')],
  })
  const w = world(t, { repository, clusters: [releaseCluster('eu-1', { env: 'prod' }), releaseCluster('us-1', { env: 'prod' }), releaseCluster('dev-1', { env: 'dev' })] })
  const { tick } = w.start()
  await tick()
  await w.settled(['eu-1', 'us-1'])
  await until('dev-1 to be removed', () => w.status('dev-1') === undefined)
  t.same(w.calls.filter((call) => !call.startsWith('render')).sort(), ['apply eu-1 shop/web#1', 'uninstall dev-1 shop/web', 'waitReady eu-1'])
  const { namespace: _namespace, name: _name, ...untouched } = statusOf('us-1', 'ready')
  t.same(w.status('us-1'), untouched, 'us-1 is left as it was')
})

t.test('resume after a crash in the middle of an apply: the next engine applies again', async (t) => {
  const w = world(t)
  await w.install({ rollout: { max_parallel: 1 } })
  const letApplyGo = w.applier.holdOn('apply eu-1 shop/web#1')
  const first = w.start()
  await first.tick()
  await until('eu-1 to be applying', () => w.calls.includes('apply eu-1 shop/web#1'))
  // The engine dies: its apply never returns (here: fails after it stopped, which it must ignore).
  w.applier.failOn('apply eu-1 shop/web#1', new Error('socket hang up'))
  const stopped = first.executor.stop(1000)
  letApplyGo()
  await stopped
  t.equal(w.status('eu-1')!.phase, 'applying', 'the failure after the stop was not recorded')
  w.applier.cure('apply eu-1 shop/web#1')

  const second = w.start()
  await second.tick()
  await w.settled(['eu-1', 'us-1'])
  t.equal(w.calls.filter((call) => call === 'apply eu-1 shop/web#1').length, 2, 'applied again (server-side apply is safe to repeat)')
  t.equal(w.status('eu-1')!.attempts, 0, 'the interrupted attempt did not count as a failure')
})

t.test('an empty store: a pass reads nothing else; a broken store: the pass fails with its error', async (t) => {
  const empty = world(t, { repository: new EmptyReleaseRepository(), registry: new BrokenReleaseClusters() })
  await empty.start().executor.tick()
  t.same(empty.calls, [], 'no render, no apply, and the registry was not even asked')

  const broken = world(t, { repository: new BrokenReleaseRepository() })
  await t.rejects(broken.start().executor.tick(), { code: 'INTENTIONAL_ERROR', message: 'ReleaseRepository.list: intentional error of a broken fake' })
})

t.test(
  'resume of a halted rollout goes on, as the halt event says',
  async (t) => {
    const w = world(t, { clusters: ['c1', 'c2', 'c3'].map((name) => releaseCluster(name, { env: 'prod' })) })
    w.applier.unready.add('c2')
    await w.install({ rollout: { max_parallel: 1, max_failures: 1 } })
    const { tick } = w.start()
    await tick()
    await until('the rollout to halt', () => w.repository.release(NS, NAME)?.state === 'halted')
    await w.service.resume(NS, NAME)
    await tick()
    await tick()
    t.equal(w.repository.release(NS, NAME)!.state, 'active', 'still active after a pass')
    t.not(w.status('c3'), undefined, 'the next cluster started')
    await w.settled(['c3'])
    t.match(w.status('c2'), { phase: 'pending', attempts: 1, retryAt: w.clock.iso(15_000) }, 'the failed cluster no longer counts and waits for its next retry')
    t.ok(w.messages().includes('resumed by an operator; going on past 1 failed cluster(s), tried again at their next retry: c2'))

    // At its retryAt it is tried again; failing again counts again.
    w.clock.advance(15_000)
    await tick()
    await until('the rollout to halt again', () => w.repository.release(NS, NAME)?.state === 'halted')
    t.match(w.status('c2'), { phase: 'failed', attempts: 2, retryAt: w.clock.iso(30_000) })
  },
)

t.test(
  'halting never undoes an upgrade made during the same pass',
  async (t) => {
    let upgraded = false
    const { release, revision } = stored({ rollout: rolloutSettingsOf({ max_parallel: 10, max_failures: 1, ready_timeout_seconds: 300 }) })
    const repository = new FixedReleaseRepository({ releases: [release], revisions: [revision], clusters: [statusOf('eu-1', 'failed', { retryAt: '2026-11-21T11:00:00.000Z' })] })
    // The operator's upgrade lands while the pass reads the registry, after it listed the releases.
    const registry: ReleaseClusters = {
      list: async () => {
        if (!upgraded) {
          upgraded = true
          await w.service.upgrade(NS, NAME, { chart: { name: 'web', version: '1.1.0' } })
        }
        return [releaseCluster('eu-1', { env: 'prod' })]
      },
    }
    const w = world(t, { repository, registry })
    await w.start().executor.tick()
    t.match(w.repository.release(NS, NAME), { revision: 2, state: 'active' }, 'the upgrade is still the current revision, and revision 2 was not halted for revision 1')
    t.notOk(w.messages().some((message) => message.startsWith('rollout halted')), 'no halt recorded')
    t.same((await w.repository.listRevisions(NS, NAME)).map((candidate) => candidate.revision), [1, 2])
  },
)

t.test('resume of a paused rollout keeps its failures below max_failures; one paused after it halted goes on past them', async (t) => {
  for (const [maxFailures, phase] of [
    [2, 'failed'],
    [1, 'pending'],
  ] as const) {
    const { release, revision } = stored({ state: 'paused', rollout: rolloutSettingsOf({ max_parallel: 10, max_failures: maxFailures, ready_timeout_seconds: 300 }) })
    const retryAt = '2026-11-21T11:00:00.000Z'
    const repository = new FixedReleaseRepository({ releases: [release], revisions: [revision], clusters: [statusOf('eu-1', 'failed', { attempts: 1, retryAt }), statusOf('us-1', 'ready')] })
    const w = world(t, { repository })
    t.equal((await w.service.resume(NS, NAME)).state, 'active')
    t.match(w.status('eu-1'), { phase, attempts: 1, retryAt }, `max_failures ${maxFailures}: eu-1 ${phase}, its next retry kept`)
    await t.rejects(w.service.resume(NS, NAME), { code: 'INVALID_RELEASE_TRANSITION' }, 'an active release is not resumed')
  }
})
