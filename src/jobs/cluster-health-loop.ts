import type { Logger } from 'pino'
import type { ClusterRegistry, SweepReport } from '../core/registry/registry-service.ts'
import { forEachLimited } from '../lib/concurrency-limiter.ts'
import { SerialJob, type JobGate } from './serial-job.ts'

export interface ClusterHealthLoopOptions {
  /** A sweep every this many milliseconds; 0 sweeps only on demand. */
  intervalMs: number
  /** How many clusters are asked at once. */
  concurrency: number
  /** Each request to an API server gives up after this long (a sweep never waits on one cluster). */
  requestTimeoutMs: number
  logger: Logger
  /** Told after each sweep (what DNS answers depends on health). */
  swept?: (report: SweepReport) => void
  /** With replicas: only the holder of the health sweep's lease sweeps in the background. */
  gate?: JobGate
}

/**
 * The registry's health job: each sweep asks every joined cluster's API server (bounded concurrency,
 * a timeout per request), records the result and any status change, and lets provisioned clusters
 * whose control plane is installed join. Sweeps never overlap (SerialJob); one cluster failing never
 * stops the others.
 */
export class ClusterHealthLoop extends SerialJob<SweepReport> {
  constructor(registry: ClusterRegistry, options: ClusterHealthLoopOptions) {
    const log = options.logger
    super(
      async (reason) => {
        const started = performance.now()
        const { joined, joining } = await registry.sweepTargets()
        const statuses: Record<string, string> = {}
        const newlyJoined: string[] = []
        await forEachLimited([...joining.map((name) => ({ name, join: true })), ...joined.map((name) => ({ name, join: false }))], options.concurrency, async ({ name, join }) => {
          try {
            if (join) {
              if (await registry.tryJoin(name, options.requestTimeoutMs)) {
                newlyJoined.push(name)
                log.info({ component: 'registry', cluster: name }, `cluster ${name} joined the registry: its API server answers`)
              }
              return
            }
            const { record, previous } = await registry.check(name, options.requestTimeoutMs)
            statuses[name] = record.status
            if (previous !== record.status) {
              log[record.status === 'Healthy' ? 'info' : 'warn']({ component: 'registry', cluster: name, from: previous, to: record.status, reason: record.reason }, `cluster ${name} is ${record.status}: ${record.message}`)
            }
          } catch (error) {
            // The cluster was removed during the sweep, or the store failed: the next sweep sees.
            log.warn({ component: 'registry', cluster: name, err: error }, `health check of cluster ${name} failed`)
          }
        })
        const report = { checked: joined.length, joined: newlyJoined, durationMs: performance.now() - started, statuses }
        log.debug({ component: 'registry', reason, checked: report.checked, joined: newlyJoined.length, ms: Math.round(report.durationMs) }, 'health sweep done')
        options.swept?.(report)
        return report
      },
      { name: 'cluster health sweep', intervalMs: options.intervalMs, debounceMs: 100, logger: options.logger, gate: options.gate },
    )
  }
}
