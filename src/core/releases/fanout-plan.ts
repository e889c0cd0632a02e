import type { ClusterRelease, Release } from './release.ts'

/** A cluster the release's selector matches now. */
export interface FanoutTarget {
  cluster: string
  canary: boolean
}

export interface FanoutPlan {
  /** Clusters to bring to the current revision now. */
  apply: string[]
  /** Clusters the release must leave (no longer matching, excluded, or the release is being deleted). */
  remove: string[]
  /** Clusters that failed the current revision. */
  failures: number
  /** Whether the current revision is ready on every target. */
  complete: boolean
  /** Why nothing more starts, when something waits (halted, paused, canaries first, parallelism). */
  waiting: string | null
}

/**
 * The next step of a release's fan-out, from what each cluster has: at most `max_parallel` clusters
 * applying at once; canaries first (the others wait until every canary is ready with the current
 * revision); once `max_failures` clusters failed the current revision, nothing new starts (halted);
 * a failed cluster is tried again when its `retryAt` has passed, and so is a pending one that has a
 * `retryAt` (a failure a resume stopped counting: see ReleaseService.resume); a pending one without is
 * due at once (new, or retried). Leaving clusters is never held back: a cluster that stopped matching
 * gets the release removed whatever the rollout settings.
 */
export function planFanout(release: Release, targets: readonly FanoutTarget[], statuses: readonly ClusterRelease[], now: Date): FanoutPlan {
  const byCluster = new Map(statuses.map((status) => [status.cluster, status]))
  const wanted = new Set(targets.map((target) => target.cluster))
  // A removal that failed (the cluster did not answer) waits for its retryAt like an apply.
  const removalDue = (status: ClusterRelease) => status.phase !== 'removing' && (status.retryAt === null || Date.parse(status.retryAt) <= now.getTime())
  const remove = statuses.filter((status) => !wanted.has(status.cluster) && removalDue(status)).map((status) => status.cluster)

  const current = (status: ClusterRelease | undefined) => status !== undefined && status.revision === release.revision
  const failures = targets.filter((target) => current(byCluster.get(target.cluster)) && byCluster.get(target.cluster)!.phase === 'failed').length
  const complete = targets.every((target) => current(byCluster.get(target.cluster)) && byCluster.get(target.cluster)!.phase === 'ready')
  const applying = statuses.filter((status) => status.phase === 'applying').length

  if (release.state === 'paused') return { apply: [], remove, failures, complete, waiting: 'paused' }
  if (release.state === 'halted' || failures >= release.rollout.maxFailures) {
    return { apply: [], remove, failures, complete, waiting: `halted: ${failures} cluster(s) failed revision ${release.revision} (max_failures ${release.rollout.maxFailures})` }
  }

  const due = (target: FanoutTarget) => {
    const status = byCluster.get(target.cluster)
    if (!status) return true
    if (status.phase === 'applying' || status.phase === 'removing') return false
    if (!current(status)) return true
    const retryPassed = status.retryAt !== null && Date.parse(status.retryAt) <= now.getTime()
    if (status.phase === 'pending') return status.retryAt === null || retryPassed
    return status.phase === 'failed' && retryPassed
  }
  const canariesPending = targets.some((target) => target.canary && !(current(byCluster.get(target.cluster)) && byCluster.get(target.cluster)!.phase === 'ready'))
  const candidates = targets
    .filter((target) => due(target) && (target.canary || !canariesPending))
    .sort((a, b) => Number(b.canary) - Number(a.canary) || (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0))
  const free = Math.max(0, release.rollout.maxParallel - applying)
  const apply = candidates.slice(0, free).map((target) => target.cluster)
  const left = targets.filter(due).length - apply.length
  const waiting = left === 0 ? null : canariesPending && targets.some((target) => !target.canary && due(target)) ? 'waiting for the canary clusters to be ready' : `max_parallel ${release.rollout.maxParallel} clusters applying`
  return { apply, remove, failures, complete, waiting }
}

/** How long a failed cluster waits before the next automatic attempt: 15 s, doubling, at most 10 min. */
export const retryDelayMs = (attempts: number) => Math.min(10 * 60_000, 15_000 * 2 ** Math.max(0, attempts - 1))
