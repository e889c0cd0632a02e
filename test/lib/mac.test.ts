import t from 'tap'
import { normalizeMac } from '../../src/lib/mac.ts'

t.test('accepts colon, hyphen and bare forms in any case', async (t) => {
  for (const input of ['52:54:00:AA:bb:0c', '52-54-00-aa-BB-0C', '525400aabb0c', ' 52:54:00:aa:bb:0c ']) {
    t.equal(normalizeMac(input), '52:54:00:aa:bb:0c', input)
  }
})

t.test('rejects anything that is not a 48-bit MAC', async (t) => {
  for (const input of ['', 'zz', '52:54:00:aa:bb', '52:54:00:aa:bb:0c:01', '52:54-00:aa:bb:0c', '52:54:00:aa:bb:0g', '52::54:00:aa:bb']) {
    t.equal(normalizeMac(input), undefined, JSON.stringify(input))
  }
})
