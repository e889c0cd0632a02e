import t from 'tap'
import { BoundedCache } from '../../../src/core/boot/catalog.ts'

t.test('BoundedCache: bounded in entries and in bytes, oldest out first', async (t) => {
  const cache = new BoundedCache<string, string>(3, 10, (key, value) => key.length + value.length)
  cache.set('a', '1234')
  cache.set('b', '1234')
  t.equal(cache.get('a'), '1234')
  cache.set('c', '1234')
  t.equal(cache.get('a'), undefined, 'a fourth 5-byte entry over a 10-byte bound: the oldest went')
  t.equal(cache.get('b'), '1234')
  cache.set('d', 'x'.repeat(20))
  t.equal(cache.get('d'), undefined, 'an entry larger than the whole bound is not kept')
  t.equal(cache.get('c'), '1234', 'and evicts nothing')
  const counted = new BoundedCache<number, number>(2)
  for (const n of [1, 2, 3]) counted.set(n, n)
  t.same([counted.get(1), counted.get(2), counted.get(3)], [undefined, 2, 3], 'without sizes, the entry count bounds it')
  counted.set(2, 20)
  counted.set(4, 4)
  t.same([counted.get(2), counted.get(3), counted.get(4)], [20, undefined, 4], 'setting a key again makes it the newest')
})
