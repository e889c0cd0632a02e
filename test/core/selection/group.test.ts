import { readFileSync } from 'node:fs'
import t from 'tap'
import { normalizeGroup, orderGroupsForSelection, selectGroup, type Group } from '../../../src/core/selection/group.ts'
import { labelsFromQuery } from '../../../src/core/selection/labels.ts'
import { GroupIndex } from '../../../src/core/selection/group-index.ts'
import { SlipwayError } from '../../../src/core/errors.ts'

const group = (id: string, selector: Record<string, string>): Group => ({ id, name: id, profile: 'p', selector, metadata: {} })
const select = (groups: Group[], labels: Record<string, string>) =>
  selectGroup(orderGroupsForSelection(groups.map(normalizeGroup)), labels)?.id

t.test('every selector pair must equal a label; extra labels do not matter', async (t) => {
  const groups = [group('a', { mac: '52:54:00:00:00:01', os: 'installed' })]
  t.equal(select(groups, { mac: '52:54:00:00:00:01', os: 'installed', uuid: 'x' }), 'a')
  t.equal(select(groups, { mac: '52:54:00:00:00:01' }), undefined)
  t.equal(select(groups, { mac: '52:54:00:00:00:01', os: 'Installed' }), undefined, 'values are case-sensitive')
})

t.test('the group with the most selectors wins, whatever the order they were added in', async (t) => {
  const groups = [group('default', {}), group('by-mac', { mac: '52:54:00:00:00:01' }), group('installed', { mac: '52:54:00:00:00:01', os: 'installed' })]
  for (const order of [groups, [...groups].reverse(), [groups[1]!, groups[0]!, groups[2]!]]) {
    t.equal(select(order, { mac: '52:54:00:00:00:01', os: 'installed' }), 'installed')
    t.equal(select(order, { mac: '52:54:00:00:00:01' }), 'by-mac')
    t.equal(select(order, { mac: '52:54:00:00:00:02' }), 'default', 'a group without selectors is the default')
    t.equal(select(order, {}), 'default')
  }
})

t.test('ties are broken like matchbox (greater selector string first), then by id', async (t) => {
  const tied = [group('region', { region: 'a' }), group('zone', { zone: 'z' })]
  t.equal(select(tied, { region: 'a', zone: 'z' }), 'zone')
  t.equal(select([...tied].reverse(), { region: 'a', zone: 'z' }), 'zone')
  const identical = [group('b-default', {}), group('a-default', {})]
  t.equal(select(identical, {}), 'a-default', 'identical selectors: smaller id first, deterministically')
})

t.test('mac selectors and labels match whatever the spelling', async (t) => {
  const groups = [group('m', { mac: '52-54-00-AA-BB-CC' })]
  t.equal(select(groups, labelsFromQuery(new URLSearchParams('mac=52:54:00:aa:bb:cc'))), 'm')
  t.equal(select(groups, labelsFromQuery(new URLSearchParams('mac=52-54-00-aa-bb-cc'))), 'm')
  t.throws(() => normalizeGroup(group('bad', { mac: 'nope' })), { code: 'INVALID_MAC' })
})

t.test('labels: first value of a repeated key wins; a bad mac is a 4xx-kind error', async (t) => {
  t.same(labelsFromQuery(new URLSearchParams('a=1&a=2&b=')), { a: '1', b: '' })
  const error = t.throws(() => labelsFromQuery(new URLSearchParams('mac=52:54:00')))
  t.ok(error instanceof SlipwayError && error.kind === 'invalid' && error.code === 'INVALID_MAC')
})

interface SelectionCase {
  description: string
  groups: { id?: string; name?: string; profile?: string; selector?: Record<string, string>; metadata?: Record<string, unknown> }[]
  labels: Record<string, string>
  query?: string
  expectedGroupId: string | null
  rejectedGroupIds?: string[]
  /** 'Group.Matches' cases test matching alone, on groups that were never loaded (so not normalised). */
  stage?: string
  /** Selectors as matchbox normalises them at load, by group id. */
  normalizedSelectors?: Record<string, Record<string, string>>
  /** The order matchbox tries the groups in, by id. */
  evaluationOrder?: string[]
}

/**
 * Queries whose `mac` does not parse: matchbox drops the label (the case's `labels` say what is left),
 * Slipway refuses the request instead (see labels.ts), so a typo never boots the default group.
 */
const REFUSED_QUERIES = new Set(['mac=x:x:x:x:x:x'])

t.test("matchbox's own selection cases", async (t) => {
  const cases = JSON.parse(readFileSync(new URL('../../fixtures/matchbox/selection-cases.json', import.meta.url), 'utf8')) as SelectionCase[]
  t.ok(cases.length >= 20, `${cases.length} cases transcribed from matchbox's Go tests`)
  let refused = 0
  for (const [index, testCase] of cases.entries()) {
    const name = `case ${index}: ${testCase.description}`
    const groups: Group[] = []
    for (const [position, document] of testCase.groups.entries()) {
      const candidate = { id: document.id ?? `g${position}`, name: document.name ?? '', profile: document.profile ?? 'p', selector: document.selector ?? {}, metadata: document.metadata ?? {} }
      if (testCase.rejectedGroupIds?.includes(candidate.id)) {
        // matchbox skips a group whose mac selector does not parse; Slipway refuses to load it.
        t.throws(() => normalizeGroup(candidate), { code: 'INVALID_MAC', details: { path: 'selector.mac' } }, `${name}: ${candidate.id} is refused`)
        continue
      }
      const group = testCase.stage === 'Group.Matches' ? candidate : normalizeGroup(candidate)
      if (testCase.normalizedSelectors?.[candidate.id]) t.same(group.selector, testCase.normalizedSelectors[candidate.id], `${name}: ${candidate.id} normalised as matchbox does`)
      groups.push(group)
    }
    if (testCase.evaluationOrder) t.same(orderGroupsForSelection(groups).map((group) => group.id), testCase.evaluationOrder, `${name}: groups tried in matchbox's order`)
    let labels: Record<string, string> = testCase.labels
    if (testCase.query !== undefined) {
      const query = new URLSearchParams(testCase.query)
      if (REFUSED_QUERIES.has(testCase.query)) {
        t.throws(() => labelsFromQuery(query), { code: 'INVALID_MAC', kind: 'invalid', details: { mac: 'x:x:x:x:x:x' } }, `${name}: the unparseable mac is refused`)
        refused++
      } else {
        labels = { ...labelsFromQuery(query) }
        t.same(labels, testCase.labels, `${name}: the labels matchbox reads from the query`)
      }
    }
    t.equal(selectGroup(orderGroupsForSelection(groups), labels)?.id ?? null, testCase.expectedGroupId, name)
  }
  t.equal(refused, REFUSED_QUERIES.size, 'every refused query is one of the cases')
})

t.test('the MAC-bucketed index selects exactly what a scan in selection order selects', async (t) => {
  // A small deterministic generator, so a failure can be replayed.
  let seed = 42
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n)
  const macs = Array.from({ length: 12 }, (_, index) => `52:54:00:00:00:${index.toString(16).padStart(2, '0')}`)
  const pick = <T>(values: readonly T[]) => values[random(values.length)]!
  let compared = 0
  for (let round = 0; round < 200; round++) {
    const groups: Group[] = Array.from({ length: 1 + random(30) }, (_, index) => {
      const selector: Record<string, string> = {}
      if (random(3) > 0) selector.mac = pick(macs)
      if (random(2) === 0) selector.os = pick(['installed', 'live'])
      if (random(3) === 0) selector.region = pick(['eu', 'us'])
      return group(`g${index}`, selector)
    })
    const index = new GroupIndex(groups)
    for (let query = 0; query < 20; query++) {
      const labels: Record<string, string> = {}
      if (random(5) > 0) labels.mac = pick(macs)
      if (random(2) === 0) labels.os = pick(['installed', 'live'])
      if (random(2) === 0) labels.region = pick(['eu', 'us'])
      const expected = selectGroup(orderGroupsForSelection(groups), labels)?.id
      if (index.select(labels)?.id !== expected) t.fail(`round ${round}: ${JSON.stringify(labels)} over ${JSON.stringify(groups.map((g) => g.selector))}`)
      compared++
    }
  }
  t.equal(compared, 4000, 'compared 4,000 selections')
})
