import type { Logger } from 'pino'
import type { ScheduleReport } from '../core/clusters/cluster-service.ts'

export interface SchedulerLoopOptions {
  /** A pass every this many milliseconds; 0 runs passes only when triggered. */
  intervalMs: number
  /** Discoveries arrive in bursts (a rack powering on): one pass after the burst, not one per machine. */
  debounceMs: number
  logger: Logger
}

/**
 * The scheduler as a job: a pass on a timer, a pass shortly after machines change (a discovery), and
 * a pass on demand (the API). Passes never overlap: each waits for the one before, so a trigger that
 * arrives during a pass is answered by a pass that sees its change. The store's constraints keep the
 * result right even without this; serialising just spares the losers a conflict.
 */
export class SchedulerLoop {
  private tail: Promise<unknown> = Promise.resolve()
  private interval: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private started = false
  private stopped = false
  /** Each cluster's last "waiting" reasons, so that an unchanged wait is not logged every pass. */
  private readonly lastWaiting = new Map<string, string>()

  constructor(
    private readonly schedule: () => Promise<ScheduleReport[]>,
    private readonly options: SchedulerLoopOptions,
  ) {}

  start(): void {
    this.started = true
    if (this.options.intervalMs > 0) {
      this.interval = setInterval(() => this.runInBackground('interval'), this.options.intervalMs)
      this.interval.unref()
    }
    this.runInBackground('start')
  }

  /** Asks for a pass soon (debounced); ignored until the job is started. */
  trigger(reason: string): void {
    if (!this.started || this.stopped || this.debounce) return
    this.debounce = setTimeout(() => {
      this.debounce = undefined
      this.runInBackground(reason)
    }, this.options.debounceMs)
    this.debounce.unref()
  }

  /** Runs a pass after any pass in progress and returns its reports. */
  runNow(reason = 'api'): Promise<ScheduleReport[]> {
    const pass = this.tail.then(() => this.pass(reason))
    this.tail = pass.catch(() => undefined)
    return pass
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.interval)
    clearTimeout(this.debounce)
    await this.tail
  }

  private runInBackground(reason: string): void {
    if (this.stopped) return
    this.runNow(reason).catch((error: unknown) => this.options.logger.error({ err: error, reason }, 'scheduler pass failed'))
  }

  private async pass(reason: string): Promise<ScheduleReport[]> {
    const started = performance.now()
    const reports = await this.schedule()
    const log = this.options.logger
    for (const report of reports) {
      if (report.assignments.length > 0) {
        log.info(
          {
            component: 'scheduler',
            reason,
            cluster: report.cluster,
            state: report.state,
            assignments: report.assignments.map((assignment) => ({ hostname: assignment.hostname, role: assignment.role, uuid: assignment.machineUuid, mac: assignment.bootMac, ip: assignment.ip })),
          },
          `scheduled ${report.assignments.length} machine(s) into cluster ${report.cluster}`,
        )
      }
      const waiting = report.waiting.join('; ')
      if (waiting !== (this.lastWaiting.get(report.cluster) ?? '')) {
        if (waiting) log.info({ component: 'scheduler', cluster: report.cluster, waiting: report.waiting }, `cluster ${report.cluster} is waiting: ${waiting}`)
        this.lastWaiting.set(report.cluster, waiting)
      }
    }
    log.debug({ component: 'scheduler', reason, clusters: reports.length, ms: Math.round(performance.now() - started) }, 'scheduler pass done')
    return reports
  }
}
