import type { Logger } from 'pino'
import type { ScheduleReport } from '../core/clusters/cluster-service.ts'
import { SerialJob, type JobGate } from './serial-job.ts'

export interface SchedulerLoopOptions {
  /** A pass every this many milliseconds; 0 runs passes only when triggered. */
  intervalMs: number
  /** Discoveries arrive in bursts (a rack powering on): one pass after the burst, not one per machine. */
  debounceMs: number
  logger: Logger
  /** With replicas: only the holder of the scheduler's lease runs background passes. */
  gate?: JobGate
}

/**
 * The scheduler as a job: a pass on a timer, a pass shortly after machines change (a discovery), and
 * a pass on demand (the API), never overlapping (SerialJob). The store's constraints keep the result
 * right even without that; serialising just spares the losers a conflict.
 */
export class SchedulerLoop extends SerialJob<ScheduleReport[]> {
  constructor(schedule: () => Promise<ScheduleReport[]>, options: SchedulerLoopOptions) {
    // Each cluster's last "waiting" reasons, so that an unchanged wait is not logged every pass.
    const lastWaiting = new Map<string, string>()
    const log = options.logger
    super(
      async (reason) => {
        const started = performance.now()
        const reports = await schedule()
        for (const report of reports) {
          if (report.assignments.length > 0) {
            log.info(
              {
                component: 'scheduler',
                reason,
                cluster: report.cluster,
                state: report.state,
                // Never a uuid beside its boot MAC in the log: the pair names a machine to the install routes.
                assignments: report.assignments.map((assignment) => ({ hostname: assignment.hostname, role: assignment.role, uuid: assignment.machineUuid, ip: assignment.ip })),
              },
              `scheduled ${report.assignments.length} machine(s) into cluster ${report.cluster}`,
            )
          }
          const waiting = report.waiting.join('; ')
          if (waiting !== (lastWaiting.get(report.cluster) ?? '')) {
            if (waiting) log.info({ component: 'scheduler', cluster: report.cluster, waiting: report.waiting }, `cluster ${report.cluster} is waiting: ${waiting}`)
            lastWaiting.set(report.cluster, waiting)
          }
        }
        log.debug({ component: 'scheduler', reason, clusters: reports.length, ms: Math.round(performance.now() - started) }, 'scheduler pass done')
        return reports
      },
      { name: 'scheduler', ...options },
    )
  }
}
