/**
 * etcd's quorum for machines that roll themselves: a control-plane member takes a slot only while
 * etcd, asked live, can lose it on top of the members down or holding a slot, and gives it back only
 * once its etcd member is healthy and caught up; nodes pass; an etcd that cannot be asked refuses.
 */
import t from 'tap'
import { EtcdQuorum } from '../../../src/core/clusters/etcd-quorum.ts'
import { MachineRollingGate } from '../../../src/core/lifecycle/machine-rolling-gate.ts'
import type { LockGroup } from '../../../src/core/lifecycle/semaphore.ts'
import { FixedEtcdGateway } from '../../fakes/etcd-gateway.ts'

const members: Record<string, { cluster: string; role: string; hostname: string }> = {
  a: { cluster: 'q', role: 'control-plane', hostname: 'q-cp-1' },
  b: { cluster: 'q', role: 'control-plane', hostname: 'q-cp-2' },
  c: { cluster: 'q', role: 'control-plane', hostname: 'q-cp-3' },
  n: { cluster: 'q', role: 'node', hostname: 'q-node-1' },
}

function setup() {
  const gateway = new FixedEtcdGateway({ q: ['q-cp-1', 'q-cp-2', 'q-cp-3'] })
  const holders = new Set<string>()
  const group = (): LockGroup => ({ name: 'q', slots: 5, ttlSeconds: null, holders: [...holders].map((id) => ({ id, acquiredAt: '2026-12-08T00:00:00.000Z', expiresAt: null })) })
  const gate = new MachineRollingGate({ memberOf: (uuid) => members[uuid], lockGroupOf: () => 'q', listGroups: async () => [group()], etcd: new EtcdQuorum(gateway) })
  const lock = (uuid: string) => gate.lock(uuid, async () => ({ alreadyHeld: holders.has(uuid) || !holders.add(uuid) }), async () => holders.delete(uuid))
  return { gateway, holders, gate, lock }
}

t.test('one control-plane member at a time of three; nodes are not the quorum’s business', async (t) => {
  const { holders, gate, lock } = setup()
  await lock('a')
  t.same([...holders], ['a'], 'the first member takes a slot (etcd can lose one of three)')
  await lock('a')
  t.same([...holders], ['a'], 'asking again keeps it')
  await t.rejects(lock('b'), { code: 'ETCD_QUORUM_AT_RISK', message: /q-cp-2 may not restart now: the etcd of cluster q can lose 1 of its 3 voting members at once \(holding a slot: q-cp-1\)/ })
  t.same([...holders], ['a'], 'a second member is refused, and holds nothing')
  await lock('n')
  t.same([...holders].sort(), ['a', 'n'], 'a node takes its slot beside it')
  await gate.mayUnlock('n')
})

t.test('a member already unhealthy counts as down: nobody else goes', async (t) => {
  const { gateway, holders, lock } = setup()
  gateway.down('q', 'q-cp-3')
  await t.rejects(lock('a'), { code: 'ETCD_QUORUM_AT_RISK', message: /not healthy: q-cp-3/ })
  t.same([...holders], [])
  // The unhealthy member itself may restart: it is down already.
  await lock('c')
  t.same([...holders], ['c'])
})

t.test('the slot goes back only once the member is healthy and caught up', async (t) => {
  const { gateway, gate, lock } = setup()
  await lock('a')
  gateway.down('q', 'q-cp-1')
  await t.rejects(gate.mayUnlock('a'), { code: 'ETCD_MEMBER_NOT_READY', message: /q-cp-1 keeps its slot: its etcd member is not healthy/ })
  gateway.up('q', 'q-cp-1')
  gateway.lag('q', 'q-cp-1', 5000)
  await t.rejects(gate.mayUnlock('a'), { code: 'ETCD_MEMBER_NOT_READY', message: /has not caught up/ })
  gateway.lag('q', 'q-cp-1', 0)
  await gate.mayUnlock('a')
})

t.test('two members asking at once: the look after taking the slot gives back the one not held before', async (t) => {
  const { holders, gate } = setup()
  // b took its slot between a's first look and a's lock (what two agents at once look like).
  const racing = gate.lock(
    'a',
    async () => {
      holders.add('b')
      holders.add('a')
      return { alreadyHeld: false }
    },
    async () => holders.delete('a'),
  )
  await t.rejects(racing, { code: 'ETCD_QUORUM_AT_RISK' })
  t.same([...holders], ['b'], 'a gave its slot back; b keeps its own')
})

t.test('an etcd that cannot be asked refuses a control-plane member (fail closed), not a node', async (t) => {
  const { gateway, holders, lock } = setup()
  gateway.failOn('members q', new Error('connect ECONNREFUSED'))
  await t.rejects(lock('a'))
  t.same([...holders], [])
  await lock('n')
  t.same([...holders], ['n'])
})

t.test('two members left (one removed, its replacement not yet added): neither may go, both are the quorum', async (t) => {
  const gateway = new FixedEtcdGateway({ q: ['q-cp-1', 'q-cp-3'] })
  const gate = new MachineRollingGate({ memberOf: (uuid) => members[uuid], lockGroupOf: () => 'q', listGroups: async () => [{ name: 'q', slots: 5, ttlSeconds: null, holders: [] }], etcd: new EtcdQuorum(gateway) })
  await t.rejects(gate.mayLock('a'), { code: 'ETCD_QUORUM_AT_RISK', message: /can lose 0 of its 2 voting members/ })
  await t.rejects(gate.mayLock('c'), { code: 'ETCD_QUORUM_AT_RISK' })
})

t.test('members asking at once on one engine are decided one after another: one holds, the others never do', async (t) => {
  const { holders, gate } = setup()
  let most = 0
  const take = (uuid: string) =>
    gate.lock(
      uuid,
      async () => {
        const alreadyHeld = holders.has(uuid)
        holders.add(uuid)
        most = Math.max(most, holders.size)
        return { alreadyHeld }
      },
      async () => holders.delete(uuid),
    )
  const outcomes = await Promise.allSettled(['a', 'b', 'c'].map(take))
  t.same(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'rejected'], 'the first in line took its slot; the others were refused')
  t.same([...holders], ['a'])
  t.equal(most, 1, 'at no moment two holders')
})
