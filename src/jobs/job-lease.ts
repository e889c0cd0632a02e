import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { JobGate } from './serial-job.ts'
import type { JobLeaseClaim, JobLeaseStore } from '../core/replicas/job-lease-store.ts'

export type JobLeaseEvent = { job: string; holder: string; change: 'gained' | 'lost' | 'released' }

export interface JobLeaseOptions {
  /** The job's lease name (`scheduler`, `rollout-runner`, ...). */
  name: string
  /** This replica's id (config `replicas.id`). */
  holder: string
  ttlMs: number
  store: JobLeaseStore
  logger: Logger
  /** Told when this replica gains, loses or gives up the lease (metrics). */
  observe?: (event: JobLeaseEvent) => void
  /** A clock that never goes back, in milliseconds; tests may replace it. */
  monotonic?: () => number
}

/** `<hostname>-<pid>-<random>`: unique per start, readable in logs and in `job_leases`. */
export function defaultReplicaId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
}

/**
 * One singleton job's lease for this replica: the job runs its background passes only while this
 * replica holds the lease. The lease is claimed at start and renewed every third of its TTL, so two
 * renewals may fail before it is at risk; a replica that crashed stops renewing and another replica
 * takes the lease once it expired. Whether the lease is held is judged on this replica's own
 * monotonic clock from the start of the last successful claim (the database's expiry is later), so a
 * replica that cannot reach the database stops calling itself the holder before anyone else may.
 *
 * A lease is not a fence: a pass already running when the lease is lost finishes. That is safe
 * because every job's writes are transactions that stay correct when two passes overlap; the lease
 * only keeps replicas from doing the same work twice (and the rollout runner from driving one
 * machine from two replicas in the normal case).
 */
export class JobLease implements JobGate {
  private heldUntil = Number.NEGATIVE_INFINITY
  private believedHeld = false
  private lastRequestSeen: number | null = null
  private timer: NodeJS.Timeout | undefined
  private renewing: Promise<void> | undefined
  private stopped = false
  private leader: string | undefined
  private readonly monotonic: () => number
  /** The gated job's trigger (SerialJob registers it): a pass when this replica gains the lease or is asked. */
  private wanted: (reason: string) => void = () => {}

  constructor(private readonly options: JobLeaseOptions) {
    this.monotonic = options.monotonic ?? (() => performance.now())
  }

  get name(): string {
    return this.options.name
  }

  /** Claims the lease once (awaited, so that a job started next knows at once), then keeps renewing it. */
  async start(): Promise<void> {
    this.stopped = false
    await this.renew()
    if (this.stopped) return
    this.timer = setInterval(() => {
      this.renew().catch((error: unknown) => this.options.logger.error({ component: 'replicas', job: this.options.name, err: error }, `renewing the ${this.options.name} lease failed`))
    }, Math.max(50, this.options.ttlMs / 3))
    this.timer.unref()
  }

  onWanted(pass: (reason: string) => void): void {
    this.wanted = pass
  }

  /** Whether this replica may run the job's background passes now. */
  mayRun(): boolean {
    return !this.stopped && this.monotonic() < this.heldUntil
  }

  /** The replica that held the lease at the last claim (this one or another), if any. */
  holder(): string | undefined {
    return this.mayRun() ? this.options.holder : this.leader
  }

  /** A pass is wanted but another replica leads: leave word for it in the store (it looks at each renewal). */
  forward(reason: string): void {
    if (this.stopped) return
    this.options.store.request(this.options.name).catch((error: unknown) => {
      this.options.logger.warn({ component: 'replicas', job: this.options.name, reason, err: error }, `could not ask the ${this.options.name} lease holder for a pass`)
    })
  }

  /** One claim: takes or renews the lease, and notices a gain or a loss. Never overlaps itself. */
  renew(): Promise<void> {
    this.renewing ??= this.claimOnce().finally(() => {
      this.renewing = undefined
    })
    return this.renewing
  }

  /** Stops renewing and gives the lease up, so that another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopTimer()
    await this.renewing
    const held = this.believedHeld
    this.heldUntil = Number.NEGATIVE_INFINITY
    this.believedHeld = false
    if (!held) return
    try {
      if (await this.options.store.release(this.options.name, this.options.holder)) {
        this.options.logger.info({ component: 'replicas', job: this.options.name, replica: this.options.holder }, `released the ${this.options.name} lease`)
        this.options.observe?.({ job: this.options.name, holder: this.options.holder, change: 'released' })
      }
    } catch (error) {
      // The lease then expires on its own: another replica takes over after the TTL.
      this.options.logger.warn({ component: 'replicas', job: this.options.name, err: error }, `could not release the ${this.options.name} lease; it expires by itself`)
    }
  }

  /** Stops renewing without releasing: what a crash looks like to the other replicas (tests). */
  abandon(): void {
    this.stopTimer()
    this.heldUntil = Number.NEGATIVE_INFINITY
    this.believedHeld = false
  }

  private stopTimer(): void {
    this.stopped = true
    clearInterval(this.timer)
    this.timer = undefined
  }

  private async claimOnce(): Promise<void> {
    const { name, holder, ttlMs, logger } = this.options
    const started = this.monotonic()
    let claim: JobLeaseClaim
    try {
      claim = await this.options.store.claim(name, holder, ttlMs)
    } catch (error) {
      logger.warn({ component: 'replicas', job: name, err: error }, `could not renew the ${name} lease`)
      this.noticeLoss('the database did not answer in time')
      return
    }
    if (this.stopped) {
      // Stopped while claiming: what was just claimed must still be released (stop() awaits this).
      this.believedHeld = claim.held
      return
    }
    this.leader = claim.holder
    if (!claim.held) {
      this.heldUntil = Number.NEGATIVE_INFINITY
      this.noticeLoss(`replica ${claim.holder ?? '(none)'} holds it`)
      return
    }
    this.heldUntil = started + ttlMs
    if (!this.believedHeld) {
      this.believedHeld = true
      this.lastRequestSeen = claim.requestedAt
      logger.info({ component: 'replicas', job: name, replica: holder }, `this replica now runs the ${name} (gained its lease)`)
      this.options.observe?.({ job: name, holder, change: 'gained' })
      this.wanted('lease gained')
      return
    }
    if (claim.requestedAt !== null && claim.requestedAt !== this.lastRequestSeen) {
      this.lastRequestSeen = claim.requestedAt
      this.wanted('asked by another replica')
    }
  }

  /** Logs once when this replica stops being the holder (a claim lost, or the TTL ran out unrenewed). */
  private noticeLoss(why: string): void {
    if (!this.believedHeld || this.monotonic() < this.heldUntil) return
    this.believedHeld = false
    this.options.logger.warn({ component: 'replicas', job: this.options.name, replica: this.options.holder, why }, `this replica no longer runs the ${this.options.name} (lost its lease: ${why})`)
    this.options.observe?.({ job: this.options.name, holder: this.options.holder, change: 'lost' })
  }
}

/** Every job lease of one engine: started together, stopped (released) together, listed for metrics. */
export class JobLeases {
  private readonly leases: JobLease[] = []

  constructor(private readonly defaults: Omit<JobLeaseOptions, 'name'>) {}

  get holderId(): string {
    return this.defaults.holder
  }

  lease(name: string): JobLease {
    const lease = new JobLease({ ...this.defaults, name })
    this.leases.push(lease)
    return lease
  }

  all(): readonly JobLease[] {
    return this.leases
  }

  async start(): Promise<void> {
    await Promise.all(this.leases.map((lease) => lease.start()))
  }

  async stop(): Promise<void> {
    await Promise.all(this.leases.map((lease) => lease.stop()))
  }

  abandon(): void {
    for (const lease of this.leases) lease.abandon()
  }
}
