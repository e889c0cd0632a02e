import { groupMatches, orderGroupsForSelection, type Group } from './group.ts'
import type { Labels } from './labels.ts'

/**
 * Selection over thousands of groups without scanning them all. Most groups select one machine by
 * `mac`, and such a group can only match a request carrying that very MAC; so groups are bucketed by
 * their `mac` selector, and a request looks at its MAC's bucket and at the groups without one. Each
 * list keeps the selection order, so the winner is the better-ranked of the two lists' first matches:
 * the same answer as scanning every group in order (`selectGroup`).
 */
export class GroupIndex {
  readonly ordered: readonly Group[]
  private readonly rank = new Map<Group, number>()
  private readonly byMac = new Map<string, Group[]>()
  private readonly withoutMac: Group[] = []

  constructor(groups: readonly Group[]) {
    this.ordered = orderGroupsForSelection(groups)
    this.ordered.forEach((group, position) => {
      this.rank.set(group, position)
      const mac = group.selector.mac
      if (mac === undefined) {
        this.withoutMac.push(group)
      } else {
        const bucket = this.byMac.get(mac)
        if (bucket) bucket.push(group)
        else this.byMac.set(mac, [group])
      }
    })
  }

  select(labels: Labels): Group | undefined {
    const mac = labels.mac
    const byMac = mac === undefined ? undefined : this.byMac.get(mac)?.find((group) => groupMatches(group, labels))
    const general = this.withoutMac.find((group) => groupMatches(group, labels))
    if (!byMac || !general) return byMac ?? general
    return this.rank.get(byMac)! < this.rank.get(general)! ? byMac : general
  }
}
