import { normalizeMac } from '../../lib/mac.ts'
import { invalid } from '../errors.ts'
import type { Labels } from './labels.ts'

/** A matchbox group: machines whose labels carry every selector pair get `profile` and `metadata`. */
export interface Group {
  id: string
  name: string
  profile: string
  selector: Record<string, string>
  metadata: Record<string, unknown>
}

/**
 * Orders groups the way selection reads them, exactly as matchbox does: the group with the most
 * selectors first; on a tie, the greater selector string (sorted `k=v` pairs joined by `,`) first;
 * where matchbox leaves identical selectors undefined, the smaller id first. A group without
 * selectors matches everything and so ends up last: it is the default.
 */
export function orderGroupsForSelection(groups: readonly Group[]): Group[] {
  const keyed = groups.map((group) => ({ group, count: Object.keys(group.selector).length, selector: selectorString(group) }))
  keyed.sort((a, b) => b.count - a.count || compareStrings(b.selector, a.selector) || compareStrings(a.group.id, b.group.id))
  return keyed.map((entry) => entry.group)
}

/** matchbox's `selectorString`: the pairs as `k=v`, sorted, joined by commas. */
export function selectorString(group: Group): string {
  return Object.entries(group.selector)
    .map(([key, value]) => `${key}=${value}`)
    .sort(compareStrings)
    .join(',')
}

// Byte order, like Go's string comparison, not the locale's.
const compareStrings = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

export function groupMatches(group: Group, labels: Labels): boolean {
  for (const key in group.selector) {
    if (labels[key] !== group.selector[key]) return false
  }
  return true
}

/** The first matching group of groups already ordered by `orderGroupsForSelection`. */
export function selectGroup(orderedGroups: readonly Group[], labels: Labels): Group | undefined {
  return orderedGroups.find((group) => groupMatches(group, labels))
}

/** Canonical form of a group as stored: a `mac` selector is normalised so that any spelling matches. */
export function normalizeGroup(group: Group): Group {
  const selector = { ...group.selector }
  for (const [key, value] of Object.entries(selector)) {
    if (key.toLowerCase() !== 'mac') continue
    const mac = normalizeMac(value)
    if (!mac) {
      throw invalid('INVALID_MAC', `group "${group.id}": selector ${key} "${value}" is not a MAC address`, { path: `selector.${key}` })
    }
    selector[key] = mac
  }
  return { ...group, selector }
}
