import t from 'tap'
import { parseLabelSelector } from '../../../src/core/selection/label-selector.ts'

const eu = { region: 'eu', tier: 'prod', gpus: '4' }
const us = { region: 'us', tier: 'test' }
const bare = {}

t.test('equality, inequality and set requirements as Kubernetes matches them', async (t) => {
  const cases: [string, [boolean, boolean, boolean]][] = [
    ['', [true, true, true]],
    ['region=eu', [true, false, false]],
    ['region==eu', [true, false, false]],
    ['region!=eu', [false, true, true]], // != also matches objects without the key
    ['region=eu,tier!=test', [true, false, false]],
    ['region in (eu, us)', [true, true, false]],
    ['region notin (eu)', [false, true, true]],
    ['gpus', [true, false, false]],
    ['!gpus', [false, true, true]],
    ['gpus>2', [true, false, false]],
    ['gpus<2', [false, false, false]],
    ['tier in (prod),region', [true, false, false]],
    ['  region = eu ,  tier = prod  ', [true, false, false]],
  ]
  for (const [text, expected] of cases) {
    const selector = parseLabelSelector(text)
    t.same([eu, us, bare].map((labels) => selector.matches(labels)), expected, JSON.stringify(text))
  }
})

t.test('normalised text: sorted by key, sets sorted and deduplicated', async (t) => {
  t.equal(parseLabelSelector('tier!=test, region in (us,eu,eu), !legacy, gpus').text, 'gpus,!legacy,region in (eu,us),tier!=test')
  t.equal(parseLabelSelector('example.com/zone=a').text, 'example.com/zone=a')
  t.equal(parseLabelSelector('region=').text, 'region=', 'an empty value is a value')
  t.ok(parseLabelSelector('region=').matches({ region: '' }))
})

t.test('malformed selectors are 400 INVALID_SELECTOR with the position', async (t) => {
  for (const [text, message] of [
    ['region=eu,', /a requirement is missing at position 11/],
    [',region=eu', /unexpected "," at position 1/],
    ['region=eu tier=prod', /expected "," between requirements, found "tier" at position 11/],
    ['region in eu', /"in" must be followed by "\(values\)"/],
    ['region in (eu', /expected "," or "\)"/],
    ['region in (eu;us)', /is not a label value/],
    ['-region=eu', /is not a label key/],
    ['Bad_Prefix!/x=1', /unexpected "!"|is not a label key|prefix/],
    ['UPPER.example/x=1', /prefix of "UPPER.example\/x" is not a DNS subdomain/],
    ['gpus>many', /needs an integer value/],
    ['region', null],
    ['region eu', /expected "=", "==", "!=", "in", "notin"/],
    ['!', /a label key must follow "!"/],
    [`k=${'v'.repeat(64)}`, /is not a label value/],
    ['x'.repeat(5000), /at most 4096/],
  ] as const) {
    if (message === null) t.doesNotThrow(() => parseLabelSelector(text), text.slice(0, 40))
    else t.throws(() => parseLabelSelector(text), { code: 'INVALID_SELECTOR', message }, text.slice(0, 40))
  }
})
