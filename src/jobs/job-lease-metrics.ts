import { Gauge, type Registry } from 'prom-client'
import type { JobLeases } from './job-lease.ts'

/** `slipway_job_lease_held{job}`: 1 on the replica that runs the job now, 0 on the others. */
export function registerJobLeaseMetrics(registry: Registry, leases: JobLeases): void {
  new Gauge({
    name: 'slipway_job_lease_held',
    help: 'Whether this engine replica holds the lease of a singleton job (scheduler, rollout-runner, cluster-health, release-reconciler) and so runs it.',
    labelNames: ['job'],
    registers: [registry],
    collect() {
      for (const lease of leases.all()) this.set({ job: lease.name }, lease.mayRun() ? 1 : 0)
    },
  })
}
