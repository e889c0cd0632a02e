import t from 'tap'
import { controlPlaneAllowance, inWindow, machinesToStart, parseRolloutSpec, rolloutOrder, type Phase, type RolloutMachineState } from '../../../src/core/lifecycle/rollout-plan.ts'

const machine = (hostname: string, role: 'control-plane' | 'node', phase: Phase = 'waiting'): RolloutMachineState => ({ uuid: hostname, hostname, role, phase })
const now = new Date('2026-11-21T12:00:00Z') // a Saturday

t.test('defaults and bad specs', async (t) => {
  const spec = parseRolloutSpec({ cluster: 'c' })
  t.match(spec, { max_parallel: 1, strategy: 'reboot', max_failures: 1, drain: { enabled: true, timeout_seconds: 600, force: false }, ssh: { user: 'core', port: 22 } })
  for (const [input, message] of [
    [{}, /cluster/],
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

t.test('order: nodes first, then the control plane; quorum and parallelism', async (t) => {
  const fleet = [machine('c-cp-2', 'control-plane'), machine('c-node-2', 'node'), machine('c-cp-1', 'control-plane'), machine('c-node-1', 'node')]
  t.same(rolloutOrder(fleet).map((m) => m.hostname), ['c-node-1', 'c-node-2', 'c-cp-1', 'c-cp-2'])
  t.same([1, 2, 3, 4, 5, 7].map(controlPlaneAllowance), [1, 1, 1, 1, 2, 3], 'members that may be down: a majority stays up')
  const spec = parseRolloutSpec({ cluster: 'c', max_parallel: 5 })
  t.same(machinesToStart(spec, fleet, 3, 0, now).map((m) => m.hostname), ['c-node-1', 'c-node-2'], 'the control plane waits for every node')
  const nodesDone = fleet.map((m) => (m.role === 'node' ? { ...m, phase: 'done' as const } : m))
  t.same(machinesToStart(spec, nodesDone, 3, 0, now).map((m) => m.hostname), ['c-cp-1'], 'with 3 members, one at a time whatever max_parallel says')
  t.same(machinesToStart(spec, nodesDone.map((m) => (m.hostname === 'c-cp-1' ? { ...m, phase: 'restarting' as const } : m)), 3, 0, now), [], 'and not while one is down')
  const five = [1, 2, 3, 4, 5].map((n) => machine(`c-cp-${n}`, 'control-plane'))
  t.equal(machinesToStart(spec, five, 5, 0, now).length, 2, 'with 5 members, two at a time')
  const one = parseRolloutSpec({ cluster: 'c', max_parallel: 1 })
  t.same(machinesToStart(one, [machine('a', 'node', 'draining'), machine('b', 'node')], 3, 0, now), [], 'max_parallel counts machines in flight')
  t.same(machinesToStart(one, [machine('a', 'node', 'failed'), machine('b', 'node')], 3, 1, now), [], 'max_failures reached: nothing new starts')
  t.same(machinesToStart(one, [machine('a', 'node', 'failed'), machine('b', 'node')], 3, 0, now).map((m) => m.hostname), ['b'], 'a failed node counts as finished')
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
  t.same(machinesToStart(spec, [machine('a', 'node')], 3, 0, now), [], 'outside the window nothing starts')
})
