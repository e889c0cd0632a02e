import t from 'tap'
import type { NodeDrainer } from '../../../src/core/lifecycle/ports.ts'
import { EtcdQuorum } from '../../../src/core/clusters/etcd-quorum.ts'
import { upstreamFailed } from '../../../src/core/errors.ts'
import { RolloutExecutor, type RolloutPorts } from '../../../src/core/lifecycle/rollout-executor.ts'
import { parseRolloutSpec, type Phase } from '../../../src/core/lifecycle/rollout-plan.ts'
import { RolloutService, type RolloutMachine, type RolloutRepository, type RolloutRun } from '../../../src/core/lifecycle/rollout-service.ts'
import { until } from '../../helpers/wait.ts'
import { BrokenEtcdGateway, FixedEtcdGateway } from '../../fakes/etcd-gateway.ts'
import { FixedMachineShell, type FakeMachine } from '../../fakes/machine-shell.ts'
import { ManualClock } from '../../fakes/manual-clock.ts'
import { BrokenNodeDrainer, EmptyNodeDrainer, FixedNodeDrainer } from '../../fakes/node-drainer.ts'
import { FixedRolloutLocks } from '../../fakes/rollout-locks.ts'
import { FixedRolloutPower } from '../../fakes/rollout-power.ts'
import { BrokenRolloutRepository, EmptyRolloutRepository, FixedRolloutRepository } from '../../fakes/rollout-repository.ts'
import { FixedRolloutTargets } from '../../fakes/rollout-targets.ts'
import type { CallJournal } from '../../fakes/scripted-fake.ts'

const CLUSTER = 'roll'
const RUN = 'run-1'
const uuidOf = (n: number) => `5e110000-0000-4000-8000-${String(n).padStart(12, '0')}`
const nodeOf = (n: number) => `node-${n}`
const hostOf = (n: number) => `10.0.0.${n}`
const numberOfUuid = (uuid: string) => Number(uuid.slice(-12))
const APPLY = (n: number, strategy = 'reboot') => `run ${hostOf(n)} /opt/slipway/bin/apply-config '/var/lib/slipway/next.ign' ${strategy}`
const configOf = (uuid: string) => JSON.stringify({ ignition: { version: '3.4.0' }, storage: { files: [{ path: '/etc/slipway/role.v2', contents: { source: `data:,${uuid}` } }] } })

/** Every action of one machine's update, in the order the executor must take them. */
const ACTIONS = (n: number) => [
  `lock ${CLUSTER} ${uuidOf(n)}`,
  `cordon ${nodeOf(n)}`,
  `drain ${nodeOf(n)}`,
  `writeFile ${hostOf(n)} /var/lib/slipway/next.ign`,
  APPLY(n),
  `isReady ${nodeOf(n)}`,
  `uncordon ${nodeOf(n)}`,
  `unlock ${CLUSTER} ${uuidOf(n)}`,
]

interface WorldOptions {
  /** Machines node-1..node-N, all outdated members of the cluster. */
  count?: number
  spec?: Record<string, unknown>
  /** Machines whose apply command exits with these. */
  machines?: Record<number, FakeMachine>
  /** Machines that never report their new config after the restart. */
  silent?: number[]
  /** Machines with a BMC the executor can drive. */
  bmcs?: number[]
  /** Machines that hang on their restart and come back (report) only once power-cycled. */
  hangUntilCycled?: number[]
  /** The store as a previous engine left it (default: empty, and the run is created through RolloutService). */
  content?: { runs: RolloutRun[]; machines: RolloutMachine[] }
  /** The lock group's holders when the world starts. */
  holders?: string[]
  drainer?: NodeDrainer
  repository?: RolloutRepository
  /** Told of every call of the drainer, shell and locks, before it is recorded. */
  onCall?: (call: string) => void
  /** The cluster's control-plane member count (a test may act while the executor awaits it). */
  members?: () => Promise<number>
  /**
   * Machines that are control-plane members (hostnames node-N all the same): the cluster's etcd has a
   * member of each name, and a member restarting is down for the next two looks at etcd.
   */
  controlPlane?: number[]
  /** The cluster's etcd (default: healthy members named after the control-plane machines; none may be asked without them). */
  etcd?: FixedEtcdGateway
}

/**
 * A cluster of `count` outdated nodes and everything the executor reaches, each a fake: the store,
 * the lock, the API server, the machines over SSH (a machine that restarts reports its new config a
 * second later, unless it is silent), the drift records and a manual clock.
 */
function world(t: { teardown(fn: () => unknown): void }, options: WorldOptions = {}) {
  const count = options.count ?? 1
  const clock = new ManualClock()
  const calls: string[] = []
  const journal: CallJournal = { push: (call: string) => (options.onCall?.(call), calls.push(call)) }
  const repository = (options.repository ?? new FixedRolloutRepository(options.content ?? {})) as FixedRolloutRepository
  const locks = new FixedRolloutLocks({ [CLUSTER]: { slots: 1, holders: options.holders ?? [] } }, journal)
  const nodes = Object.fromEntries(Array.from({ length: count }, (_, index) => [nodeOf(index + 1), { pods: [`shop/web-${index + 1}`] }]))
  const drainer = options.drainer ?? new FixedNodeDrainer(nodes, journal)
  const drift = new Map<string, { state: string; reportedAt: string }>()
  for (let n = 1; n <= count; n++) drift.set(uuidOf(n), { state: 'outdated', reportedAt: '2026-11-20T00:00:00.000Z' })
  const controlPlane = new Set(options.controlPlane ?? [])
  const etcd = options.etcd ?? (controlPlane.size ? new FixedEtcdGateway({ [CLUSTER]: [...controlPlane].map(nodeOf) }, journal) : undefined)
  const silent = new Set(options.silent ?? [])
  const hanging = new Set(options.hangUntilCycled ?? [])
  const boots = (n: number) => drift.set(uuidOf(n), { state: 'up_to_date', reportedAt: clock.iso(1000) })
  // A machine powered on (after its poweroff) or power-cycled (after it hung) boots its new config.
  const power = new FixedRolloutPower((options.bmcs ?? []).map(uuidOf), journal, (uuid, action) => {
    const n = numberOfUuid(uuid)
    if (!silent.has(n) && (action === 'on' || hanging.has(n))) boots(n)
  })
  const restarted = (host: string, command: string) => {
    const n = Number(host.split('.').at(-1))
    // `poweroff` leaves the machine off until something powers it on (its BMC, or a person).
    if (command.endsWith(' poweroff')) return power.turnedOff(uuidOf(n))
    if (controlPlane.has(n)) etcd?.down(CLUSTER, nodeOf(n), 'restarting', 2)
    // The machine boots its new config and its agent reports it a second after the restart.
    if (!silent.has(n) && !hanging.has(n)) boots(n)
  }
  const machines = Object.fromEntries(Array.from({ length: count }, (_, index) => [hostOf(index + 1), options.machines?.[index + 1] ?? {}]))
  const shell = new FixedMachineShell(machines, journal, restarted)
  const pinned = new Map<string, string>()
  const logs: Array<{ level: string; message: string }> = []
  const ports: RolloutPorts = {
    repository,
    power,
    locks,
    drainerFor: async () => drainer,
    shell,
    sshTargetFor: async (uuid, run) => ({
      host: hostOf(numberOfUuid(uuid)),
      port: run.spec.ssh.port,
      username: run.spec.ssh.user,
      privateKeyPem: 'engine key',
      ...(pinned.has(uuid) ? { hostKey: pinned.get(uuid)! } : {}),
    }),
    pinHostKey: async (uuid, hostKey) => void pinned.set(uuid, hostKey),
    expectedConfig: async (uuid) => configOf(uuid),
    driftOf: async (uuid) => drift.get(uuid),
    controlPlaneMembers: options.members ?? (async () => controlPlane.size),
    etcd: new EtcdQuorum(etcd ?? new BrokenEtcdGateway(), clock.now),
    clock: clock.now,
    sleep: clock.sleep,
    log: ({ level, message }) => void logs.push({ level, message }),
  }
  const executors: RolloutExecutor[] = []
  /**
   * An engine's rollout runner: ticks never overlap, and a wake asks for one soon (as SerialJob does).
   * `onWake` is told of each wake first, while the executor is as the wake found it.
   */
  const start = (leading: () => boolean = () => true, onWake?: (executor: RolloutExecutor) => void) => {
    let tail: Promise<void> = Promise.resolve()
    const errors: unknown[] = []
    const tick = () => (tail = tail.then(() => executor.tick()).catch((error: unknown) => void errors.push(error)))
    const executor = new RolloutExecutor(ports, () => (onWake?.(executor), void setImmediate(tick)), leading)
    executors.push(executor)
    return { executor, tick, errors }
  }
  t.teardown(async () => {
    for (const fake of [locks, drainer, shell]) if ('releaseAll' in fake) fake.releaseAll()
    for (const executor of executors) await executor.stop()
  })
  const service = new RolloutService(repository, new FixedRolloutTargets([CLUSTER], Array.from({ length: count }, (_, index) => ({
    uuid: uuidOf(index + 1),
    cluster: CLUSTER,
    labels: {},
    role: controlPlane.has(index + 1) ? ('control-plane' as const) : ('node' as const),
    hostname: nodeOf(index + 1),
    machineState: 'installed',
    drift: 'outdated' as const,
  }))), locks, clock.now)
  /** Creates the run as an operator would. */
  const create = async (spec: Record<string, unknown> = options.spec ?? {}) => (await service.create({ cluster: CLUSTER, ...spec })).id
  const machine = (runId: string, n: number) => repository.machine(runId, uuidOf(n))
  const messages = (runId: string) => repository.events(runId).map((event) => event.message)
  const finished = (runId: string) => until(`run ${runId} to finish`, () => repository.run(runId).finishedAt !== null)
  return { clock, calls, repository, locks, drainer: drainer as FixedNodeDrainer, shell, power, drift, pinned, logs, service, start, create, machine, messages, finished, etcd }
}

/** The store as an engine that stopped with node-1 in `phase` left it (its lock, cordon and restart as that phase implies). */
function leftIn(phase: Phase): { content: { runs: RolloutRun[]; machines: RolloutMachine[] }; holders: string[]; cordoned: boolean; restartIssuedAt: string | null } {
  const at = '2026-11-21T09:59:00.000Z'
  const order: Phase[] = ['locking', 'draining', 'applying', 'restarting', 'uncordoning', 'releasing']
  const index = order.indexOf(phase)
  const restartIssuedAt = index >= order.indexOf('restarting') ? '2026-11-21T09:59:30.000Z' : null
  const run: RolloutRun = { id: RUN, clusters: [CLUSTER], spec: parseRolloutSpec({ cluster: CLUSTER }), state: 'running', failures: 0, createdAt: at, updatedAt: at, finishedAt: null }
  const machine: RolloutMachine = { runId: RUN, uuid: uuidOf(1), cluster: CLUSTER, role: 'node', hostname: nodeOf(1), phase, error: null, restartIssuedAt, startedAt: at, finishedAt: null, phaseChangedAt: at }
  return {
    content: { runs: [run], machines: [machine] },
    // A machine past locking holds its slot; past draining (and not yet uncordoned) its node is cordoned.
    holders: index > 0 ? [uuidOf(1)] : [],
    cordoned: index > 1 && index <= order.indexOf('uncordoning'),
    restartIssuedAt,
  }
}

t.test('one machine: lock, cordon and drain, apply, wait for its report and Ready, uncordon, release; each phase stored before its action', async (t) => {
  let runId = ''
  const trace: string[] = []
  const w = world(t, { onCall: (call) => void (runId && trace.push(`${call} @${w.machine(runId, 1).phase}`)) })
  runId = await w.create()
  t.same(w.locks.slots(CLUSTER), 1, "the run's max_parallel became the cluster's slots")
  const { tick } = w.start()
  await tick()
  await w.finished(runId)

  t.same(trace, [
    `lock ${CLUSTER} ${uuidOf(1)} @locking`,
    `cordon ${nodeOf(1)} @draining`,
    `drain ${nodeOf(1)} @draining`,
    `writeFile ${hostOf(1)} /var/lib/slipway/next.ign @applying`,
    `${APPLY(1)} @applying`,
    `isReady ${nodeOf(1)} @restarting`,
    `uncordon ${nodeOf(1)} @uncordoning`,
    `unlock ${CLUSTER} ${uuidOf(1)} @releasing`,
  ])
  t.same(w.messages(runId).slice(1), [
    'node-1: starting',
    'node-1: draining',
    'node-1: evicting 1 pod(s)',
    'node-1: drained: 1 pod(s) evicted, 0 left (DaemonSet or mirror)',
    'node-1: applying',
    'node-1: restarting',
    'node-1: uncordoning',
    'node-1: releasing',
    'node-1: updated',
    'run completed: 1 updated, 0 failed',
  ])
  const machine = w.machine(runId, 1)
  t.match(machine, { phase: 'done', error: null, startedAt: String, finishedAt: String, restartIssuedAt: String })
  t.same(w.shell.files.get(`${hostOf(1)}:/var/lib/slipway/next.ign`), { content: configOf(uuidOf(1)), mode: 0o600 }, 'the config the engine serves now, readable by root only')
  t.same(w.drainer.drains, [{ node: nodeOf(1), options: { timeoutMs: 600_000, evictionRetryMs: 5_000, force: false, deleteEmptyDirData: false } }], "the spec's drain settings")
  t.equal(w.pinned.get(uuidOf(1)), `ssh-ed25519 AAAAfake${hostOf(1)}`, 'the host key seen first is pinned')
  t.same(w.locks.holders(CLUSTER), [], 'the slot is free again')
  t.same([...w.drainer.cordoned], [], 'the node is schedulable again')
  t.match(w.repository.run(runId), { state: 'completed', failures: 0, finishedAt: String })
})

t.test('without drain: no cordon, no drain, no readiness check, no uncordon', async (t) => {
  const w = world(t, { spec: { drain: { enabled: false }, strategy: 'kexec' } })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.same(w.calls.slice(1), [`lock ${CLUSTER} ${uuidOf(1)}`, `writeFile ${hostOf(1)} /var/lib/slipway/next.ign`, APPLY(1, 'kexec'), `unlock ${CLUSTER} ${uuidOf(1)}`])
  t.equal(w.machine(runId, 1).phase, 'done')
})

t.test('a machine waits in locking while the cluster has no free slot, and goes on once one is released', async (t) => {
  const w = world(t, { holders: ['fleetlock-client'] })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await until('the machine to wait for a slot', () => w.messages(runId).some((message) => message.startsWith('node-1: waiting for a reboot slot: lock group "roll" is full')))
  t.equal(w.machine(runId, 1).phase, 'locking')
  t.notOk(w.calls.includes(`cordon ${nodeOf(1)}`), 'nothing else happens before the slot')
  await w.locks.unlockIfHeld(CLUSTER, 'fleetlock-client')
  await w.finished(runId)
  t.equal(w.machine(runId, 1).phase, 'done')
})

/** The failure cases: where it fails, what the machine's error says. */
const failures: Array<{ name: string; options: WorldOptions; script?: (w: ReturnType<typeof world>) => void; phase: Phase; error: RegExp }> = [
  {
    name: 'a failed drain',
    options: {},
    script: (w) => void w.drainer.failOn(`drain ${nodeOf(1)}`, Object.assign(new Error('DRAIN_TIMEOUT: 1 pod(s) left: shop/web-1'), { code: 'DRAIN_TIMEOUT' })),
    phase: 'draining',
    error: /^draining: DRAIN_TIMEOUT: 1 pod\(s\) left: shop\/web-1$/,
  },
  {
    name: 'an apply command that exits non-zero',
    options: { machines: { 1: { exitCode: 1, stderr: 'apply-config: disk full\n' } } },
    phase: 'applying',
    error: /^applying: \/opt\/slipway\/bin\/apply-config exited 1: apply-config: disk full$/,
  },
  {
    name: 'a machine that cannot be reached over SSH',
    options: {},
    script: (w) => void w.shell.failOn(`writeFile ${hostOf(1)} /var/lib/slipway/next.ign`, new Error(`connect ECONNREFUSED ${hostOf(1)}:22`)),
    phase: 'applying',
    error: /^applying: connect ECONNREFUSED 10\.0\.0\.1:22$/,
  },
  {
    name: 'a machine that does not report its new config in time',
    options: { silent: [1], spec: { ready_timeout_seconds: 5 } },
    phase: 'restarting',
    error: /^restarting: node-1 did not come back within 5 s: it did not report its new config \(last report: outdated at 2026-11-20T00:00:00\.000Z\)$/,
  },
  {
    name: 'a node that does not turn Ready in time',
    options: { spec: { ready_timeout_seconds: 5 } },
    script: (w) => w.drainer.setReady(nodeOf(1), false),
    phase: 'restarting',
    error: /^restarting: node-1 did not come back within 5 s: its node is not Ready$/,
  },
]

for (const failure of failures) {
  t.test(`${failure.name}: the node is uncordoned and the slot released before the machine is marked failed`, async (t) => {
    let runId = ''
    const trace: string[] = []
    const w = world(t, { ...failure.options, onCall: (call) => void (runId && trace.push(`${call} @${w.machine(runId, 1).phase}`)) })
    failure.script?.(w)
    runId = await w.create()
    const { tick } = w.start()
    await tick()
    await w.finished(runId)

    // Cleaning up happens while the machine still shows the phase that failed: before it is marked failed.
    t.same(trace.slice(-2), [`uncordon ${nodeOf(1)} @${failure.phase}`, `unlock ${CLUSTER} ${uuidOf(1)} @${failure.phase}`])
    const machine = w.machine(runId, 1)
    t.equal(machine.phase, 'failed')
    t.match(machine.error, failure.error)
    t.equal(machine.finishedAt, machine.phaseChangedAt)
    t.same(w.locks.holders(CLUSTER), [], 'no slot is held by nobody')
    t.same([...w.drainer.cordoned], [], 'no node is left cordoned')
    t.match(w.messages(runId).at(-2), new RegExp(`^node-1 failed while ${failure.phase}: .* \\(uncordoned, slot released\\)$`))
    t.match(w.repository.run(runId), { state: 'failed', failures: 1, finishedAt: String })
    t.equal(w.messages(runId).at(-1), 'run failed: 0 updated, 1 failed')
    t.ok(w.logs.some((log) => log.level === 'error' && log.message.startsWith('failed: ')), 'the failure is logged as an error')
    if (failure.phase === 'restarting') {
      const elapsed = Date.parse(machine.finishedAt!) - Date.parse(machine.restartIssuedAt!)
      t.ok(elapsed > 5000 && elapsed <= 6000, `failed once ready_timeout_seconds had passed since the restart (${elapsed} ms)`)
    }
  })
}

t.test('a failed lock: nothing to uncordon, the machine fails without touching its node', async (t) => {
  const w = world(t)
  w.locks.failOn(`lock ${CLUSTER} ${uuidOf(1)}`, new Error('database is locked'))
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.same(w.calls.slice(1), [`lock ${CLUSTER} ${uuidOf(1)}`, `unlock ${CLUSTER} ${uuidOf(1)}`])
  t.match(w.machine(runId, 1), { phase: 'failed', error: 'locking: database is locked' })
  t.equal(w.messages(runId).at(-2), 'node-1 failed while locking: database is locked')
})

t.test('when cleaning up fails too, the machine is still marked failed and the event says what was left', async (t) => {
  const w = world(t, { drainer: new BrokenNodeDrainer() })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.match(w.machine(runId, 1), { phase: 'failed', error: 'draining: NodeDrainer.cordon: intentional error of a broken fake' })
  t.equal(
    w.messages(runId).at(-2),
    'node-1 failed while draining: NodeDrainer.cordon: intentional error of a broken fake (uncordon failed too: NodeDrainer.uncordon: intentional error of a broken fake, slot released)',
  )
  t.same(w.locks.holders(CLUSTER), [])
})

t.test('a cluster without the node (empty): the 404 fails the machine in draining', async (t) => {
  const w = world(t, { drainer: new EmptyNodeDrainer() })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.match(w.machine(runId, 1), { phase: 'failed', error: 'draining: nodes "node-1" not found' })
})

t.test('max_failures: once reached, no new machine starts; machines in flight finish', async (t) => {
  // node-1 fails at once; node-2, started beside it, is held until then and then finishes; node-3 never starts.
  const w = world(t, { count: 3, machines: { 1: { exitCode: 1 } }, spec: { max_parallel: 2, max_failures: 1 } })
  const letNode2Go = w.drainer.holdOn(`drain ${nodeOf(2)}`)
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await until('node-1 to fail', () => w.machine(runId, 1).phase === 'failed')
  await tick()
  letNode2Go()
  await w.finished(runId)
  t.same([1, 2, 3].map((n) => w.machine(runId, n).phase), ['failed', 'done', 'waiting'])
  t.notOk(w.calls.some((call) => call.endsWith(uuidOf(3)) || call.includes(nodeOf(3))), 'node-3 was never touched')
  t.match(w.repository.run(runId), { state: 'failed', failures: 1 })
  t.equal(w.messages(runId).at(-1), 'run failed: 1 updated, 1 failed, 1 not started')
})

t.test('max_failures 2 with one machine at a time: a success does not reset the count', async (t) => {
  const w = world(t, { count: 4, machines: { 1: { exitCode: 1 }, 3: { exitCode: 2 } }, spec: { max_failures: 2 } })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.same([1, 2, 3, 4].map((n) => w.machine(runId, n).phase), ['failed', 'done', 'failed', 'waiting'])
  t.equal(w.messages(runId).at(-1), 'run failed: 1 updated, 2 failed, 1 not started')
})

for (const phase of ['locking', 'draining', 'applying', 'restarting', 'uncordoning', 'releasing'] as const) {
  t.test(`resume after a restart: a machine stored in ${phase} goes on from ${phase}`, async (t) => {
    const left = leftIn(phase)
    const w = world(t, { content: left.content, holders: left.holders })
    if (left.cordoned) w.drainer.cordoned.add(nodeOf(1))
    // A machine left restarting restarted before the engine did: its report of the new config arrives.
    if (phase === 'restarting') w.drift.set(uuidOf(1), { state: 'up_to_date', reportedAt: '2026-11-21T09:59:45.000Z' })
    const { tick } = w.start()
    await tick()
    await w.finished(RUN)

    const order: Phase[] = ['locking', 'draining', 'applying', 'restarting', 'uncordoning', 'releasing']
    const firstAction = [0, 1, 3, 5, 6, 7][order.indexOf(phase)]!
    t.same(w.calls, ACTIONS(1).slice(firstAction), `only the actions from ${phase} on, in order`)
    t.equal(w.machine(RUN, 1).phase, 'done')
    t.same(w.locks.holders(CLUSTER), [])
    t.same([...w.drainer.cordoned], [])
    t.equal(w.messages(RUN).at(-1), 'run completed: 1 updated, 0 failed')
  })
}

t.test('resume after a crash in the middle of an apply: the next engine applies again; the stopped one writes nothing more', async (t) => {
  const w = world(t)
  const runId = await w.create()
  const letApplyGo = w.shell.holdOn(APPLY(1))
  const first = w.start()
  await first.tick()
  await until('the apply to be under way', () => w.calls.includes(APPLY(1)))
  await first.executor.stop()
  const stored = w.machine(runId, 1)
  t.equal(stored.phase, 'applying', 'the phase stored is the one in flight')

  const second = w.start()
  await second.tick()
  await until('the second engine to apply again', () => w.calls.filter((call) => call === APPLY(1)).length === 2)
  letApplyGo()
  await w.finished(runId)
  t.same(w.calls.slice(1), [...ACTIONS(1).slice(0, 5), ...ACTIONS(1).slice(3)], 'write and run again, then the rest once')
  t.equal(w.messages(runId).filter((message) => message === 'node-1: restarting').length, 1, 'the stopped engine did not go on to restarting')
  t.equal(w.machine(runId, 1).phase, 'done')
})

t.test('a replica that loses the lead leaves a machine where it is; the one that takes over resumes it', async (t) => {
  let leading = true
  const w = world(t)
  // The machine is back but its node not Ready yet: the worker is caught in the middle of restarting.
  w.drainer.setReady(nodeOf(1), false)
  const letCheckGo = w.drainer.holdOn(`isReady ${nodeOf(1)}`)
  const runId = await w.create()
  const first = w.start(() => leading)
  await first.tick()
  await until('the readiness check', () => w.calls.includes(`isReady ${nodeOf(1)}`))
  leading = false
  letCheckGo()
  // Only the executor knows when its worker has left; the double uncordon below would show one that did not.
  await until("the first replica's worker to leave", () => (Reflect.get(first.executor, 'workers') as Map<string, unknown>).size === 0)
  t.equal(w.machine(runId, 1).phase, 'restarting', 'left where it was')
  w.drainer.setReady(nodeOf(1), true)
  const second = w.start()
  await second.tick()
  await w.finished(runId)
  t.equal(w.machine(runId, 1).phase, 'done')
  t.equal(w.calls.filter((call) => call === `uncordon ${nodeOf(1)}`).length, 1, 'one replica finished it')
})

t.test('pause stops new machines (the one in flight finishes); resume goes on', async (t) => {
  const w = world(t, { count: 2 })
  const letDrainGo = w.drainer.holdOn(`drain ${nodeOf(1)}`)
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await until('node-1 to drain', () => w.calls.includes(`drain ${nodeOf(1)}`))
  await w.service.pause(runId)
  letDrainGo()
  await until('node-1 to finish', () => w.machine(runId, 1).phase === 'done')
  await tick()
  t.equal(w.machine(runId, 2).phase, 'waiting', 'node-2 did not start while paused')
  t.match(w.repository.run(runId), { state: 'paused', finishedAt: null }, 'a paused run is not finished')
  await w.service.resume(runId)
  await tick()
  await w.finished(runId)
  t.same([1, 2].map((n) => w.machine(runId, n).phase), ['done', 'done'])
})

t.test('cancel: the machine in flight finishes and releases its slot, the others never start', async (t) => {
  const w = world(t, { count: 2 })
  const letDrainGo = w.drainer.holdOn(`drain ${nodeOf(1)}`)
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await until('node-1 to drain', () => w.calls.includes(`drain ${nodeOf(1)}`))
  await w.service.cancel(runId)
  letDrainGo()
  await w.finished(runId)
  t.match(w.repository.run(runId), { state: 'cancelled' })
  t.same([1, 2].map((n) => w.machine(runId, n).phase), ['done', 'waiting'])
  t.same(w.locks.holders(CLUSTER), [])
})

t.test('an empty store: a tick does nothing', async (t) => {
  const w = world(t, { repository: new EmptyRolloutRepository() })
  const { executor } = w.start()
  await executor.tick()
  t.same(w.calls, [])
})

t.test('a broken store: the tick fails with the store error and touches nothing', async (t) => {
  const w = world(t, { repository: new BrokenRolloutRepository() })
  const { executor } = w.start()
  await t.rejects(executor.tick(), { code: 'INTENTIONAL_ERROR', message: 'RolloutRepository.listRuns: intentional error of a broken fake' })
  t.same(w.calls, [])
})

t.test(
  'pause is final for new machines: one the operator pauses while a tick is under way does not start a machine afterwards',
  async (t) => {
    let runId = ''
    let paused = false
    // The pause lands while the tick is between reading the run and starting machines (it awaits the member count there).
    const w = world(t, {
      count: 2,
      members: async () => {
        if (!paused && runId) {
          paused = true
          await w.service.pause(runId)
        }
        return 0
      },
    })
    const runs = w.start()
    runId = await w.create()
    await runs.tick()
    t.equal(w.repository.run(runId).state, 'paused')
    t.same([1, 2].map((n) => w.machine(runId, n).phase), ['waiting', 'waiting'], 'no machine started after the pause was committed')
  },
)

t.test('a cancel or a failure budget spent while a tick is under way starts no machine either', async (t) => {
  const changes = {
    cancel: async (w: ReturnType<typeof world>, runId: string) => void (await w.service.cancel(runId)),
    // What a worker's failure commits: the run's failure count reaching max_failures (1).
    failure: (w: ReturnType<typeof world>, runId: string) => w.repository.transaction(async (repository) => void (await repository.saveRun({ ...(await repository.findRun(runId))!, failures: 1 }))),
  }
  for (const [name, change] of Object.entries(changes)) {
    let runId = ''
    let changed = false
    const w = world(t, {
      count: 2,
      members: async () => {
        if (!changed && runId) {
          changed = true
          await change(w, runId)
        }
        return 0
      },
    })
    const runs = w.start()
    runId = await w.create()
    await runs.tick()
    t.same([1, 2].map((n) => w.machine(runId, n).phase), ['waiting', 'waiting'], `${name}: no machine started`)
    t.same(w.calls.slice(1), [], `${name}: nothing was locked`)
    await runs.tick()
    t.match(w.repository.run(runId), { state: name === 'cancel' ? 'cancelled' : 'failed', finishedAt: String }, `${name}: the next tick finishes the run as it is stored`)
  }
})

t.test('a finished machine asks for the next tick only once its worker is gone', async (t) => {
  const inFlight: number[] = []
  const w = world(t, { count: 2, machines: { 2: { exitCode: 1 } } })
  const runId = await w.create()
  const { tick } = w.start(undefined, (executor) => void inFlight.push((Reflect.get(executor, 'workers') as Map<string, unknown>).size))
  await tick()
  await w.finished(runId)
  t.same([1, 2].map((n) => w.machine(runId, n).phase), ['done', 'failed'])
  t.same(inFlight, [0, 0], 'one wake per finished machine (done, then failed), each with no worker left')
})

t.test('a drain progress event the store cannot record is logged; the machine goes on', async (t) => {
  class ProgressLosingRepository extends FixedRolloutRepository {
    override async appendEvent(runId: string, event: { at: string; uuid: string | null; message: string }): Promise<void> {
      if (event.message.includes('evicting')) throw new Error('database is locked')
      return super.appendEvent(runId, event)
    }
  }
  const w = world(t, { repository: new ProgressLosingRepository() })
  const runId = await w.create()
  const { tick, errors } = w.start()
  await tick()
  await w.finished(runId)
  t.equal(w.machine(runId, 1).phase, 'done')
  t.notOk(w.messages(runId).some((message) => message.includes('evicting')))
  t.ok(w.logs.some((log) => log.level === 'warn' && log.message === 'drain progress not recorded (evicting 1 pod(s)): database is locked'), w.logs.map((log) => log.message).join('\n'))
  t.same(errors, [])
})

t.test('poweroff with a BMC: once the machine is off it is powered on again through its BMC, reports and the run completes', async (t) => {
  const w = world(t, { bmcs: [1], spec: { strategy: 'poweroff', drain: { enabled: false } } })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.match(w.machine(runId, 1), { phase: 'done', error: null, powerCycledAt: null })
  t.same(
    w.calls.filter((call) => call.startsWith('power')),
    [`power on ${uuidOf(1)}`],
    'powered on once, never cycled',
  )
  t.ok(w.messages(runId).includes('node-1: powered off by its poweroff restart: powered on again through its BMC'))
  t.equal(w.power.stateOf(uuidOf(1)), 'on')
})

t.test('poweroff without a BMC: nothing powers the machine on and it fails at its timeout, without a cycle', async (t) => {
  const w = world(t, { spec: { strategy: 'poweroff', drain: { enabled: false }, ready_timeout_seconds: 5 } })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.match(w.machine(runId, 1), { phase: 'failed', error: /^restarting: node-1 did not come back within 5 s: it did not report its new config/ })
  t.same(w.calls.filter((call) => call.startsWith('power')), [])
})

t.test('a machine that hangs on its restart gets one power cycle and a new timeout; it comes back and the run completes', async (t) => {
  const w = world(t, { bmcs: [1], hangUntilCycled: [1], spec: { drain: { enabled: false }, ready_timeout_seconds: 5 } })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.match(w.machine(runId, 1), { phase: 'done', error: null, powerCycledAt: String })
  t.same(w.calls.filter((call) => call.startsWith('power')), [`power cycle ${uuidOf(1)}`])
  t.match(w.messages(runId).slice(4, 7), ['node-1: restarting', /^node-1: did not come back within 5 s \(it did not report its new config .*\): power-cycled through its BMC; it has 5 s more$/, 'node-1: uncordoning'])
  t.match(w.repository.run(runId), { state: 'completed', failures: 0 })
})

t.test('a machine still silent after its power cycle fails at the second timeout; one cycle only; none when the spec says no', async (t) => {
  const silent = world(t, { bmcs: [1], silent: [1], spec: { drain: { enabled: false }, ready_timeout_seconds: 5 } })
  const runId = await silent.create()
  const { tick } = silent.start()
  const started = silent.clock.now().getTime()
  await tick()
  await silent.finished(runId)
  const machine = silent.machine(runId, 1)
  t.match(machine, { phase: 'failed', error: /^restarting: node-1 did not come back within 5 s and again within 5 s of a power cycle: it did not report its new config/ })
  t.same(silent.calls.filter((call) => call.startsWith('power')), [`power cycle ${uuidOf(1)}`], 'cycled once')
  t.ok(Date.parse(machine.finishedAt!) - started >= 10_000, 'given the timeout twice')

  const refused = world(t, { bmcs: [1], silent: [1], spec: { drain: { enabled: false }, ready_timeout_seconds: 5, power_cycle_on_timeout: false } })
  const refusedRun = await refused.create()
  await refused.start().tick()
  await refused.finished(refusedRun)
  t.match(refused.machine(refusedRun, 1), { phase: 'failed', error: /^restarting: node-1 did not come back within 5 s: / })
  t.same(refused.calls.filter((call) => call.startsWith('power')), [], 'power_cycle_on_timeout: false')
})

t.test('a run resumed after a crash that followed the power cycle does not cycle again, and counts its time from the cycle', async (t) => {
  const left = leftIn('restarting')
  const cycledAt = '2026-11-21T10:00:02.000Z' // 32 s after the restart was issued, 2 s before the clock now
  left.content.machines[0]!.powerCycledAt = cycledAt
  left.content.runs[0]!.spec = parseRolloutSpec({ cluster: CLUSTER, drain: { enabled: false }, ready_timeout_seconds: 30 })
  const w = world(t, { content: left.content, holders: left.holders, bmcs: [1], silent: [1] })
  await w.start().tick()
  await w.finished(RUN)
  const machine = w.machine(RUN, 1)
  t.match(machine, { phase: 'failed', error: /and again within 30 s of a power cycle/ })
  t.same(w.calls.filter((call) => call.startsWith('power')), [], 'no second cycle')
  t.ok(Date.parse(machine.finishedAt!) >= Date.parse(cycledAt) + 30_000, 'the time is counted from the cycle')
})

t.test('a BMC that fails is told in the run and asked again: the poweroff machine is powered on once it answers; a failed cycle still ends at the second timeout', async (t) => {
  // The BMC fails the first power-on and answers the second (cured as the second call arrives).
  const powerOn = `power on ${uuidOf(1)}`
  let tries = 0
  const w: ReturnType<typeof world> = world(t, { bmcs: [1], spec: { strategy: 'poweroff', drain: { enabled: false } }, onCall: (call) => void (call === powerOn && ++tries === 2 && w.power.cure(powerOn)) })
  w.power.failOn(powerOn, new Error('BMC 10.0.9.1 did not answer'))
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await w.finished(runId)
  t.ok(w.messages(runId).some((message) => message.includes('powering it back on through its BMC failed (tried again in 2 s): BMC 10.0.9.1 did not answer')), 'the failure is told')
  t.match(w.machine(runId, 1), { phase: 'done' })
  t.equal(w.calls.filter((call) => call === powerOn).length, 2, 'asked again, once')
  t.ok(w.messages(runId).includes('node-1: powered off by its poweroff restart: powered on again through its BMC'))

  const broken = world(t, { bmcs: [1], silent: [1], spec: { drain: { enabled: false }, ready_timeout_seconds: 5 } })
  broken.power.failOn(`power cycle ${uuidOf(1)}`, new Error('BMC 10.0.9.1 refused: chassis power cycle'))
  const brokenRun = await broken.create()
  await broken.start().tick()
  await broken.finished(brokenRun)
  t.match(broken.machine(brokenRun, 1), { phase: 'failed', error: /and again within 5 s of a power cycle/ })
  t.ok(broken.messages(brokenRun).some((message) => /the power cycle through its BMC failed: BMC 10\.0\.9\.1 refused/.test(message)), 'the failed cycle is in the run')
  t.same(broken.calls.filter((call) => call.startsWith('power')), [`power cycle ${uuidOf(1)}`], 'one try, never a second cycle')
})

/** The most slots held at once, by the lock and unlock calls in order. */
function mostHeld(calls: readonly string[]): number {
  const held = new Set<string>()
  let most = 0
  for (const call of calls) {
    const [verb, , holder] = call.split(' ')
    if (verb === 'lock') held.add(holder!)
    if (verb === 'unlock') held.delete(holder!)
    most = Math.max(most, held.size)
  }
  return most
}

/** How many looks at etcd came between two calls. */
const looksBetween = (calls: readonly string[], from: string, to: string) => calls.slice(calls.indexOf(from), calls.indexOf(to)).filter((call) => call === `members ${CLUSTER}`).length

const unreachable = () => upstreamFailed('ETCD_UNREACHABLE', 'no etcd member of cluster "roll" answered: https://10.0.0.2:2379: connect ECONNREFUSED', false)

t.test('etcd gates: max_parallel 2 on three members rolls one at a time; each slot is released only once its etcd member is back', async (t) => {
  const w = world(t, { count: 3, controlPlane: [1, 2, 3], spec: { max_parallel: 2, drain: { enabled: false } } })
  const runId = await w.create()
  await w.start().tick()
  await w.finished(runId)
  t.same([1, 2, 3].map((n) => w.machine(runId, n).phase), ['done', 'done', 'done'])
  t.equal(mostHeld(w.calls), 1, 'one control-plane member at a time, whatever max_parallel says')
  for (const n of [1, 2, 3]) {
    // Down for two looks after its restart, healthy at the third: the slot waits for that one.
    t.equal(looksBetween(w.calls, APPLY(n), `unlock ${CLUSTER} ${uuidOf(n)}`), 3, `node-${n}: its slot was released at the first look that found its member back`)
    t.ok(w.messages(runId).includes(`node-${n}: back with its new config; waiting for etcd: its etcd member is not healthy (restarting)`), `node-${n}: the wait is told`)
  }
  t.match(w.repository.run(runId), { state: 'completed', failures: 0 })
})

t.test('etcd gates: a restarted member behind the leader keeps its slot until it has caught up; within the bound it has', async (t) => {
  const behind = world(t, { count: 1, controlPlane: [1], spec: { drain: { enabled: false } }, onCall: (call) => void (call === APPLY(1) && behind.etcd!.lag(CLUSTER, nodeOf(1), 500, 4)) })
  const runId = await behind.create()
  await behind.start().tick()
  await behind.finished(runId)
  t.equal(behind.machine(runId, 1).phase, 'done')
  t.equal(looksBetween(behind.calls, APPLY(1), `unlock ${CLUSTER} ${uuidOf(1)}`), 5, 'two looks down, two behind, released at the fifth')
  t.ok(
    behind.messages(runId).includes("node-1: back with its new config; waiting for etcd: its etcd member has not caught up: applied index 500, the leader's commit index 1000 (at most 100 behind counts)"),
    behind.messages(runId).join('\n'),
  )

  const close = world(t, { count: 1, controlPlane: [1], spec: { drain: { enabled: false } }, onCall: (call) => void (call === APPLY(1) && close.etcd!.lag(CLUSTER, nodeOf(1), 100)) })
  const closeRun = await close.create()
  await close.start().tick()
  await close.finished(closeRun)
  t.equal(looksBetween(close.calls, APPLY(1), `unlock ${CLUSTER} ${uuidOf(1)}`), 3, '100 entries behind counts as caught up')
  t.notOk(close.messages(closeRun).some((message) => message.includes('caught up')))
})

t.test('etcd gates: the timeout says which etcd condition was not met; a member that never catches up fails and gives its slot back', async (t) => {
  const w = world(t, { count: 1, controlPlane: [1], spec: { drain: { enabled: false }, ready_timeout_seconds: 5 }, onCall: (call) => void (call === APPLY(1) && w.etcd!.lag(CLUSTER, nodeOf(1), 500)) })
  const runId = await w.create()
  await w.start().tick()
  await w.finished(runId)
  t.match(w.machine(runId, 1), { phase: 'failed', error: "restarting: node-1 did not come back within 5 s: its etcd member has not caught up: applied index 500, the leader's commit index 1000 (at most 100 behind counts)" })
  t.same(w.locks.holders(CLUSTER), [], 'its slot was given back')
})

t.test('etcd gates: another member unhealthy while one restarts holds the slot until it is healthy again', async (t) => {
  const w = world(t, { count: 3, controlPlane: [1, 2, 3], spec: { drain: { enabled: false } }, onCall: (call) => void (call === APPLY(1) && w.etcd!.down(CLUSTER, nodeOf(3), 'connect ECONNREFUSED', 4)) })
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await until('node-1 done', () => w.machine(runId, 1).phase === 'done')
  t.equal(looksBetween(w.calls, APPLY(1), `unlock ${CLUSTER} ${uuidOf(1)}`), 5, 'released once node-3 answered again')
  t.ok(w.messages(runId).includes('node-1: back with its new config; waiting for etcd: another etcd member is not healthy: node-3 (connect ECONNREFUSED)'), w.messages(runId).join('\n'))
  await w.finished(runId)
})

t.test('etcd gates: with one of three members unhealthy no control-plane member starts; the run says why once; they start once it is healthy', async (t) => {
  const w = world(t, { count: 3, controlPlane: [1, 2, 3], spec: { drain: { enabled: false } } })
  w.etcd!.unhealthy(CLUSTER, nodeOf(3), 'etcdserver: mvcc: database space exceeded')
  const runId = await w.create()
  const { tick } = w.start()
  for (let round = 0; round < 3; round++) await tick()
  t.same([1, 2, 3].map((n) => w.machine(runId, n).phase), ['waiting', 'waiting', 'waiting'], 'nothing started')
  t.same(w.calls.filter((call) => call.startsWith('lock')), [], 'nothing locked')
  const held = w.messages(runId).filter((message) => message.startsWith('etcd of cluster roll'))
  t.same(held, ['etcd of cluster roll: not healthy: node-3 (etcdserver: mvcc: database space exceeded); with 3 voting member(s) 1 may be down at once, so no control-plane member starts until etcd is healthy again'], 'said once over three ticks')
  t.ok(w.logs.some((log) => log.level === 'warn' && log.message === held[0]))

  w.etcd!.up(CLUSTER, nodeOf(3))
  await tick()
  await w.finished(runId)
  t.match(w.repository.run(runId), { state: 'completed' })
  t.equal(mostHeld(w.calls), 1)
})

t.test('etcd gates: etcd that cannot be asked starts no control-plane member (fail closed) and says so once; nodes roll meanwhile', async (t) => {
  const w = world(t, { count: 2, controlPlane: [2], spec: { max_parallel: 2, drain: { enabled: false } } })
  w.etcd!.failOn(`members ${CLUSTER}`, unreachable())
  const runId = await w.create()
  const { tick } = w.start()
  await tick()
  await until('node-1 (a node) done', () => w.machine(runId, 1).phase === 'done')
  for (let round = 0; round < 3; round++) await tick()
  t.equal(w.machine(runId, 2).phase, 'waiting', 'the control-plane member did not start')
  t.same(
    w.messages(runId).filter((message) => message.startsWith('etcd of cluster roll')),
    ['etcd of cluster roll cannot be asked (no etcd member of cluster "roll" answered: https://10.0.0.2:2379: connect ECONNREFUSED): no control-plane member starts until it answers'],
  )
  w.etcd!.cure(`members ${CLUSTER}`)
  await tick()
  await w.finished(runId)
  t.match(w.repository.run(runId), { state: 'completed', failures: 0 })
})

t.test('etcd gates off: etcd is never asked; control-plane members roll on the member count and their reports, one at a time', async (t) => {
  const w = world(t, { count: 3, controlPlane: [1, 2, 3], spec: { max_parallel: 2, drain: { enabled: false }, etcd: { enabled: false } } })
  w.etcd!.failOn(`members ${CLUSTER}`, unreachable())
  const runId = await w.create()
  await w.start().tick()
  await w.finished(runId)
  t.match(w.repository.run(runId), { state: 'completed', failures: 0 })
  t.same(w.calls.filter((call) => call.startsWith('members')), [], 'never asked')
  t.equal(mostHeld(w.calls), 1, 'the quorum by count still allows one at a time')
})

t.test('etcd gates: a single-member control plane is restarted (allowance 1) and released once its member is back', async (t) => {
  const w = world(t, { count: 1, controlPlane: [1], spec: { drain: { enabled: false } } })
  const runId = await w.create()
  await w.start().tick()
  await w.finished(runId)
  t.equal(w.machine(runId, 1).phase, 'done')
  t.equal(looksBetween(w.calls, APPLY(1), `unlock ${CLUSTER} ${uuidOf(1)}`), 3)
})
