/**
 * The store port of the leases that keep a singleton job (scheduler, rollout runner, release
 * reconciler, ...) running on one replica at a time; src/jobs/job-lease.ts holds and renews them.
 */

/** What one claim of a lease found. */
export interface JobLeaseClaim {
  /** Whether the claiming replica holds the lease now. */
  held: boolean
  /** The replica holding it (undefined: nobody). */
  holder: string | undefined
  expiresAt: number | undefined
  /** When a replica not holding it last asked for a pass (the holder's claim reads it). */
  requestedAt: number | null
}

/** The store port of job leases (implemented by src/storage/repositories/job-leases.ts). */
export interface JobLeaseStore {
  /** Takes the lease if it is free or expired, renews it if `holder` has it; one atomic statement. */
  claim(name: string, holder: string, ttlMs: number): Promise<JobLeaseClaim>
  /** Gives the lease up if `holder` has it. */
  release(name: string, holder: string): Promise<boolean>
  /** Notes that a pass is wanted, for the holder to see at its next renewal. */
  request(name: string): Promise<void>
}
