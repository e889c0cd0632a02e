import t from 'tap'
import { expireHolders, lock, newGroup, unlock, unlockIfHeld } from '../../../src/core/lifecycle/semaphore.ts'

const at = (second: number) => new Date(Date.UTC(2026, 10, 21, 12, 0, second))

t.test("locksmith's semantics: counting, owned, recursive", async (t) => {
  let group = newGroup('default', 2)
  group = lock(group, 'a', at(0)).group
  const again = lock(group, 'a', at(1))
  t.equal(again.alreadyHeld, true, 're-lock by a holder succeeds')
  t.equal(again.group.holders.length, 1, 'and takes no second slot')
  group = lock(again.group, 'b', at(2)).group
  t.throws(() => lock(group, 'c', at(3)), { code: 'SEMAPHORE_FULL' })
  t.throws(() => unlock(group, 'c'), { code: 'NOT_LOCK_HOLDER' }, 'unlock by a non-holder fails')
  t.same(unlockIfHeld(group, 'c'), { group, released: false }, "FleetLock's unlock-if-held does not")
  group = unlock(group, 'a')
  t.same(group.holders.map((holder) => holder.id), ['b'])
  t.equal(lock(group, 'c', at(4)).alreadyHeld, false)
})

t.test('slots and TTL', async (t) => {
  let group = newGroup('ttl', 1, 10)
  group = lock(group, 'a', at(0)).group
  t.equal(group.holders[0]!.expiresAt, at(10).toISOString())
  group = lock(group, 'a', at(5)).group
  t.equal(group.holders[0]!.expiresAt, at(15).toISOString(), 're-locking renews the TTL')
  t.equal(expireHolders(group, at(14)).expired.length, 0)
  const expired = expireHolders(group, at(15))
  t.same(expired.expired.map((holder) => holder.id), ['a'])
  t.same(expired.group.holders, [])
  const stopped = newGroup('stopped', 0)
  t.throws(() => lock(stopped, 'a', at(0)), { code: 'SEMAPHORE_FULL' }, '0 slots stops every new lock')
  t.throws(() => newGroup('bad name', 1), { code: 'INVALID_LOCK_GROUP' })
  t.throws(() => newGroup('ok', -1), { code: 'INVALID_LOCK_SLOTS' })
  t.throws(() => newGroup('ok', 1, 0), { code: 'INVALID_LOCK_TTL' })
})
