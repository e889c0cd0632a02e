import t from 'tap'
import { leaderOf, type EtcdMemberView } from '../../../src/core/clusters/etcd-quorum.ts'
import { controlPlaneAllowance, etcdGated, inWindow, liveControlPlaneAllowance, machinesToStart, parseRolloutSpec, rolloutOrder, type Phase, type RolloutMachineState } from '../../../src/core/lifecycle/rollout-plan.ts'

const machine = (hostname: string, role: 'control-plane' | 'node', phase: Phase = 'waiting', cluster = 'c'): RolloutMachineState => ({ uuid: hostname, cluster, hostname, role, phase })
const members = (count: number) => () => controlPlaneAllowance(count)
const now = new Date('2026-11-21T12:00:00Z') // a Saturday

t.test('defaults and bad specs', async (t) => {
  const spec = parseRolloutSpec({ cluster: 'c' })
  t.match(spec, { max_parallel: 1, strategy: 'reboot', max_failures: 1, drain: { enabled: true, timeout_seconds: 600, force: false }, ssh: { user: 'core', port: 22 } })
  for (const [input, message] of [
    [{}, /needs a target: "cluster", "selector"/],
    [{ cluster: 'c', strategy: 'shutdown' }, /strategy/],
    [{ cluster: 'c', max_parallel: 0 }, /max_parallel/],
    [{ cluster: 'c', surprise: 1 }, /unknown field/],
    [{ cluster: 'c', window: { days: ['mon'], start: '25:00', end: '03:00' } }, /window.start/],
    [{ cluster: 'c', window: { days: ['mon'], start: '01:00', end: '03:00', time_zone: 'Mars/Olympus' } }, /IANA time zone/],
    [{ cluster: 'c', window: { days: ['mon'], start: '01:00', end: '01:00' } }, /empty/],
  ] as const) {
    t.throws(() => parseRolloutSpec(input), { code: 'INVALID_ROLLOUT', message }, JSON.stringify(input))
  }
})

t.test('a selector is checked and normalised', async (t) => {
  t.equal(parseRolloutSpec({ selector: 'tier!=test, rack in (r2,r1)' }).selector, 'rack in (r1,r2),tier!=test')
  t.throws(() => parseRolloutSpec({ selector: 'rack in r1' }), { code: 'INVALID_SELECTOR', message: /"in" must be followed/ })
})

t.test('order: nodes first, then the control plane; quorum and parallelism', async (t) => {
  const fleet = [machine('c-cp-2', 'control-plane'), machine('c-node-2', 'node'), machine('c-cp-1', 'control-plane'), machine('c-node-1', 'node')]
  t.same(rolloutOrder(fleet).map((m) => m.hostname), ['c-node-1', 'c-node-2', 'c-cp-1', 'c-cp-2'])
  t.same([1, 2, 3, 4, 5, 7].map(controlPlaneAllowance), [1, 0, 1, 1, 2, 3], 'members that may be down: a majority stays up (none of two; a lone member has its outage)')
  const spec = parseRolloutSpec({ cluster: 'c', max_parallel: 5 })
  t.same(machinesToStart(spec, fleet, members(3), 0, now).map((m) => m.hostname), ['c-node-1', 'c-node-2'], 'the control plane waits for every node')
  const nodesDone = fleet.map((m) => (m.role === 'node' ? { ...m, phase: 'done' as const } : m))
  t.same(machinesToStart(spec, nodesDone, members(3), 0, now).map((m) => m.hostname), ['c-cp-1'], 'with 3 members, one at a time whatever max_parallel says')
  t.same(machinesToStart(spec, nodesDone.map((m) => (m.hostname === 'c-cp-1' ? { ...m, phase: 'restarting' as const } : m)), members(3), 0, now), [], 'and not while one is down')
  const five = [1, 2, 3, 4, 5].map((n) => machine(`c-cp-${n}`, 'control-plane'))
  t.equal(machinesToStart(spec, five, members(5), 0, now).length, 2, 'with 5 members, two at a time')
  const one = parseRolloutSpec({ cluster: 'c', max_parallel: 1 })
  t.same(machinesToStart(one, [machine('a', 'node', 'draining'), machine('b', 'node')], members(3), 0, now), [], 'max_parallel counts machines in flight')
  t.same(machinesToStart(one, [machine('a', 'node', 'failed'), machine('b', 'node')], members(3), 1, now), [], 'max_failures reached: nothing new starts')
  t.same(machinesToStart(one, [machine('a', 'node', 'failed'), machine('b', 'node')], members(3), 0, now).map((m) => m.hostname), ['b'], 'a failed node counts as finished')
})

t.test('across clusters: max_parallel over the run, nodes first and quorum in each cluster', async (t) => {
  const spec = parseRolloutSpec({ selector: 'rack=r1', max_parallel: 10 })
  t.equal(spec.selector, 'rack=r1')
  const fleet = ['a', 'b'].flatMap((cluster) => [
    ...[1, 2, 3].map((n) => machine(`${cluster}-cp-${n}`, 'control-plane', 'waiting', cluster)),
    machine(`${cluster}-node-1`, 'node', cluster === 'a' ? 'done' : 'draining', cluster),
  ])
  t.same(machinesToStart(spec, fleet, members(3), 0, now).map((m) => m.hostname), ['a-cp-1'], "cluster a's nodes are done: one member; b waits for its node")
  const bothDone = fleet.map((m) => (m.role === 'node' ? { ...m, phase: 'done' as const } : m))
  t.same(machinesToStart(spec, bothDone, members(3), 0, now).map((m) => m.hostname), ['a-cp-1', 'b-cp-1'], 'one member of each 3-member cluster at once')
  const five = (cluster: string) => controlPlaneAllowance(cluster === 'a' ? 5 : 3)
  t.same(machinesToStart(spec, bothDone, five, 0, now).map((m) => m.hostname), ['a-cp-1', 'a-cp-2', 'b-cp-1'], "each cluster's own quorum (a counts 5 members)")
  const two = parseRolloutSpec({ selector: 'rack=r1', max_parallel: 2 })
  t.same(machinesToStart(two, [machine('x-node', 'node', 'applying', 'x'), machine('y-node-1', 'node', 'waiting', 'y'), machine('y-node-2', 'node', 'waiting', 'y')], members(1), 0, now).map((m) => m.hostname), ['y-node-1'], 'max_parallel counts machines of every cluster')
})

t.test('maintenance windows, in their own time zone, across midnight', async (t) => {
  const window = (days: string[], start: string, end: string, time_zone = 'UTC') => parseRolloutSpec({ cluster: 'c', window: { days, start, end, time_zone } }).window!
  t.ok(inWindow(window(['sat'], '11:00', '13:00'), now))
  t.notOk(inWindow(window(['sun'], '11:00', '13:00'), now), 'another day')
  t.notOk(inWindow(window(['sat'], '12:01', '13:00'), now), 'not yet')
  t.notOk(inWindow(window(['sat'], '11:00', '12:00'), now), 'the end is exclusive')
  t.ok(inWindow(window(['sat'], '13:00', '14:00', 'Europe/Paris'), now), '12:00 UTC is 13:00 in Paris in November')
  t.ok(inWindow(window(['sat'], '07:00', '08:00', 'America/New_York'), now), 'and 07:00 in New York')
  const overnight = window(['fri'], '22:00', '02:00')
  t.ok(inWindow(overnight, new Date('2026-11-20T23:30:00Z')), 'Friday 23:30 is in a Friday 22:00-02:00 window')
  t.ok(inWindow(overnight, new Date('2026-11-21T01:30:00Z')), 'so is Saturday 01:30')
  t.notOk(inWindow(overnight, new Date('2026-11-22T01:30:00Z')), 'but not Sunday 01:30')
  const spec = parseRolloutSpec({ cluster: 'c', window: { days: ['sun'], start: '01:00', end: '02:00' } })
  t.same(machinesToStart(spec, [machine('a', 'node')], members(3), 0, now), [], 'outside the window nothing starts')
})

t.test('etcd gates: on by default (and for runs stored before the switch), off on request; the live allowance counts members already down', async (t) => {
  t.ok(etcdGated(parseRolloutSpec({ cluster: 'c' })))
  t.notOk(etcdGated(parseRolloutSpec({ cluster: 'c', etcd: { enabled: false } })))
  t.ok(etcdGated({ ...parseRolloutSpec({ cluster: 'c' }), etcd: undefined } as never), 'a run stored without the field')
  t.throws(() => parseRolloutSpec({ cluster: 'c', etcd: { enabled: true, skip: 1 } }), { code: 'INVALID_ROLLOUT' })

  const member = (name: string, healthy: boolean, learner = false): EtcdMemberView => ({
    id: name,
    name,
    peerUrls: [],
    clientUrls: [],
    learner,
    status: { reachable: healthy, healthy, raftIndex: 9, raftAppliedIndex: 9, raftTerm: 2, leaderId: 'c-cp-1', version: '3.4.23', errors: healthy ? [] : ['connect ECONNREFUSED'] },
  })
  const look = (members: EtcdMemberView[]) => ({ cluster: 'c', at: now.toISOString(), members, leader: leaderOf(members) })
  const names = ['c-cp-1', 'c-cp-2', 'c-cp-3']
  t.equal(liveControlPlaneAllowance(look(names.map((name) => member(name, true))), new Set()).allowance, 1, 'three healthy: one may be down')
  t.equal(liveControlPlaneAllowance(look(names.map((name) => member(name, name !== 'c-cp-3'))), new Set()).allowance, 0, 'one already down: none more')
  t.equal(liveControlPlaneAllowance(look(names.map((name) => member(name, name !== 'c-cp-3'))), new Set(['c-cp-3'])).allowance, 1, "one the run took down itself is counted by the plan, not twice")
  t.equal(liveControlPlaneAllowance(look([member('c-cp-1', true)]), new Set()).allowance, 1, 'a single member may still restart')
  t.equal(liveControlPlaneAllowance(look([...names.map((name) => member(name, true)), member('c-cp-4', false, true)]), new Set()).allowance, 1, 'a learner neither votes nor counts as down')
  const five = ['c-cp-1', 'c-cp-2', 'c-cp-3', 'c-cp-4', 'c-cp-5']
  t.equal(liveControlPlaneAllowance(look(five.map((name) => member(name, name !== 'c-cp-5'))), new Set()).allowance, 1, 'five with one down: one more')

  // max_parallel 2 on three members, with the live allowance as the executor passes it: one at a time.
  const spec = parseRolloutSpec({ cluster: 'c', max_parallel: 2 })
  const live = () => liveControlPlaneAllowance(look(names.map((name) => member(name, true))), new Set()).allowance
  t.same(machinesToStart(spec, names.map((name) => machine(name, 'control-plane')), live, 0, now).map((m) => m.hostname), ['c-cp-1'])
})
