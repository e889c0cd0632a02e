import t from 'tap'
import type { RolloutMachine, RolloutRun } from '../../src/core/lifecycle/rollout-service.ts'
import { parseRolloutSpec } from '../../src/core/lifecycle/rollout-plan.ts'
import { BrokenChartRepository, BrokenChartTool } from './chart-repository.ts'
import { BrokenEtcdGateway } from './etcd-gateway.ts'
import { BrokenMachineShell, EmptyMachineShell } from './machine-shell.ts'
import { BrokenMachineRepository, EmptyMachineRepository } from './machine-repository.ts'
import { BrokenNodeDrainer } from './node-drainer.ts'
import { BrokenReleaseApplier } from './release-applier.ts'
import { BrokenReleaseClusters } from './release-clusters.ts'
import { BrokenReleaseRenderer } from './release-renderer.ts'
import { BrokenReleaseRepository, FixedReleaseRepository } from './release-repository.ts'
import { BrokenRolloutLocks, EmptyRolloutLocks } from './rollout-locks.ts'
import { BrokenRolloutRepository, FixedRolloutRepository } from './rollout-repository.ts'
import { BrokenRolloutTargets } from './rollout-targets.ts'

const at = '2026-11-21T10:00:00.000Z'
const run: RolloutRun = { id: 'r', clusters: ['c'], spec: parseRolloutSpec({ cluster: 'c' }), state: 'running', failures: 0, createdAt: at, updatedAt: at, finishedAt: null }
const machine: RolloutMachine = { runId: 'r', uuid: 'u', cluster: 'c', role: 'node', hostname: 'n', phase: 'waiting', error: null, restartIssuedAt: null, startedAt: null, finishedAt: null, phaseChangedAt: at }

t.test('every call of a broken fake fails with the intentional error, naming the port and method', async (t) => {
  const broken = [
    new BrokenRolloutRepository(),
    new BrokenRolloutTargets(),
    new BrokenRolloutLocks(),
    new BrokenNodeDrainer(),
    new BrokenMachineShell(),
    new BrokenMachineRepository(),
    new BrokenReleaseRepository(),
    new BrokenReleaseClusters(),
    new BrokenReleaseRenderer(),
    new BrokenReleaseApplier(),
    new BrokenChartRepository(),
    new BrokenChartTool(),
    new BrokenEtcdGateway(),
  ]
  let calls = 0
  for (const fake of broken) {
    for (const method of Object.getOwnPropertyNames(Object.getPrototypeOf(fake)).filter((name) => name !== 'constructor')) {
      const call = (fake as unknown as Record<string, () => Promise<unknown>>)[method]!.bind(fake)
      await t.rejects(call(), { code: 'INTENTIONAL_ERROR', message: new RegExp(`\\.${method}: intentional error`) }, `${fake.constructor.name}.${method}`)
      calls++
    }
  }
  t.ok(calls >= 50, `${calls} methods`)
})

t.test('a transaction commits all its writes or none, and writes made beside it are kept', async (t) => {
  const store = new FixedRolloutRepository({ runs: [run], machines: [machine] })
  await t.rejects(
    store.transaction(async (draft) => {
      await draft.saveRun({ ...run, failures: 1 })
      await draft.appendEvent('r', { at, uuid: null, message: 'never' })
      throw new Error('rolled back')
    }),
  )
  t.same([store.run('r').failures, store.events('r')], [0, []], 'nothing of a failed transaction')

  let inside!: () => void
  const paused = new Promise<void>((resolve) => (inside = resolve))
  let resume!: () => void
  const transaction = store.transaction(async (draft) => {
    await draft.saveRun({ ...(await draft.findRun('r'))!, failures: 1 })
    inside()
    await new Promise<void>((resolve) => (resume = resolve))
  })
  await paused
  t.equal(store.run('r').failures, 0, 'not visible before the commit')
  await store.saveMachine({ ...machine, phase: 'locking' })
  resume()
  await transaction
  t.equal(store.run('r').failures, 1, 'committed')
  t.equal(store.machine('r', 'u').phase, 'locking', "a write beside the transaction is not lost at its commit")
})

t.test('the fixed stores keep the real tables\' rules', async (t) => {
  const rollouts = new FixedRolloutRepository({ runs: [run] })
  await rollouts.saveMachine({ ...machine, uuid: 'unknown' })
  t.same(await rollouts.listMachines('r'), [], 'saveMachine updates a row, it never inserts one')
  await rollouts.saveRun({ ...run, clusters: ['other'], state: 'paused' })
  t.match(rollouts.run('r'), { clusters: ['c'], state: 'paused' }, 'saveRun writes what a run changes, not its clusters')

  const releases = new FixedReleaseRepository()
  await t.rejects(releases.saveCluster('shop', 'web', { cluster: 'c', revision: 1, phase: 'pending', error: null, attempts: 0, retryAt: null, objects: [], updatedAt: at, readyAt: null }), /foreign key/)

  const machines = new EmptyMachineRepository()
  t.same(await machines.listMachines({}), [])
  const locks = new EmptyRolloutLocks()
  await locks.lock('c', 'a')
  await t.rejects(locks.lock('c', 'b'), { code: 'SEMAPHORE_FULL' }, 'a group made on first use has one slot')
  await t.rejects(new EmptyMachineShell().run({ host: '10.0.0.9', port: 22, username: 'core', privateKeyPem: '' }, 'true'), { code: 'ECONNREFUSED' })
})
