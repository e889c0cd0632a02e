import type { RolloutCandidate, RolloutTargets } from '../../src/core/lifecycle/rollout-service.ts'
import { failing } from './intentional-error.ts'

/** The given clusters and their members, as RolloutService looks for machines to roll. */
export class FixedRolloutTargets implements RolloutTargets {
  constructor(
    private readonly clusters: string[] = [],
    private readonly members: RolloutCandidate[] = [],
  ) {}

  async clusterExists(cluster: string): Promise<boolean> {
    return this.clusters.includes(cluster)
  }

  async candidates(cluster: string | undefined): Promise<RolloutCandidate[]> {
    return structuredClone(this.members.filter((member) => cluster === undefined || member.cluster === cluster))
  }
}

/** No cluster, no member. */
export class EmptyRolloutTargets extends FixedRolloutTargets {
  constructor() {
    super([], [])
  }
}

/** A targets store whose every call fails. */
export class BrokenRolloutTargets implements RolloutTargets {
  clusterExists(): Promise<boolean> {
    return failing('RolloutTargets.clusterExists')
  }
  candidates(): Promise<RolloutCandidate[]> {
    return failing('RolloutTargets.candidates')
  }
}
