import { IpmitoolClient } from '../adapters/bmc/ipmitool-client.ts'
import { RedfishClient } from '../adapters/bmc/redfish-client.ts'
import type { AuditTrail } from '../core/access/audit-trail.ts'
import type { BmcClient } from '../core/power/bmc-client.ts'
import type { BmcProtocol } from '../core/power/bmc.ts'
import { BringUpService } from '../core/power/bring-up.ts'
import type { EtcdMembers } from '../core/clusters/etcd-members.ts'
import { MachineFlows } from '../core/power/machine-flows.ts'
import { PowerService, type BmcCall, type PowerAudit } from '../core/power/power-service.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { bmcRepository } from '../storage/repositories/bmcs.ts'
import { deprovisionRepository } from '../storage/repositories/deprovisions.ts'
import { machineRepository } from '../storage/repositories/machines.ts'
import type { Capability, WiringBasics } from './capability.ts'
import type { Provisioning } from './provisioning.ts'

/** The real clients speak IPMI (ipmitool) and Redfish; tests may substitute them. */
export type PowerAdapters = Partial<Record<BmcProtocol, BmcClient>>

/**
 * Power through machines' BMCs: the records (passwords sealed), the operations with their queue per
 * BMC, global cap, retries and audit, bring-ups in batches, the re-provision and deprovision flows,
 * and the poll that keeps each machine's power state current (one replica at a time).
 */
export function wirePower({ config, store, secrets, logger, metrics, jobLeases }: WiringBasics, audit: AuditTrail, provisioning: Provisioning, etcdMembers: EtcdMembers, adapters: PowerAdapters = {}) {
  const settings = config.power
  const clients: Record<BmcProtocol, BmcClient> = {
    ipmi: adapters.ipmi ?? new IpmitoolClient({ binary: settings.ipmitool }),
    redfish: adapters.redfish ?? new RedfishClient(),
  }
  const power = new PowerService(
    bmcRepository(store, secrets),
    clients,
    auditOf(audit),
    { attemptTimeoutMs: settings.attemptTimeoutSeconds * 1000, attempts: settings.attempts, backoffMs: settings.backoffMs, maxConcurrent: settings.maxConcurrent, maxQueuedPerBmc: settings.maxQueuedPerBmc },
    { callFinished: (protocol, operation, outcome, seconds) => metrics.observeBmcCall(protocol, operation, outcome, seconds) },
    undefined,
    undefined,
    { discoveredBmc: async (uuid) => (await machineRepository(store).findMachine(uuid))?.facts.bmc },
  )
  const poll = new SerialJob(
    async () => {
      const { checked, failed } = await power.pollAll()
      if (failed > 0) logger.warn({ component: 'power', checked, failed }, `${failed} of ${checked} BMCs did not answer the power poll`)
    },
    { name: 'power poll', intervalMs: settings.pollIntervalSeconds * 1000, debounceMs: 0, logger, gate: jobLeases.lease('power-poll') },
  )
  const bringUps = new BringUpService(power, async (labels) => (await provisioning.machines.list({ labels: Object.entries(labels).map(([key, value]) => `${key}=${value}`) })).map((machine) => machine.uuid))
  const flows = new MachineFlows(
    machineRepository(store),
    deprovisionRepository(store),
    {
      // The memberships boots are rendered from: one lookup, not a read of every member and its machine.
      memberOf: async (uuid) => provisioning.clusterDirectory.memberOf(uuid),
      leaveEtcd: (cluster, uuid) => etcdMembers.leave(cluster, uuid),
      rejoinEtcd: (cluster, uuid) => etcdMembers.rejoin(cluster, uuid),
      release: async (cluster, uuid, reason) => void (await provisioning.clusters.releaseMember(cluster, uuid, reason)),
    },
    power,
    async (uuid) => {
      // Its boot renders follow its state; a machine returned to the pool may be scheduled at once.
      await provisioning.machineDirectory.refresh(uuid)
      provisioning.scheduler.trigger('machine changed')
    },
    undefined,
    undefined,
    (message) => logger.warn({ component: 'power' }, message),
  )
  const capability: Capability = {
    jobs: [poll],
    listeners: [],
    close: async () => {
      await bringUps.settle()
      await flows.settle()
    },
  }
  return { power, bringUps, flows, ...capability }
}

/**
 * A BMC call in the audit log, beside the API calls: the route is `bmc <operation>`, the target the
 * machine, the status 200 when it succeeded and 502 (504 when it timed out) with the failure code.
 */
function auditOf(trail: AuditTrail): PowerAudit {
  return {
    record: (call: BmcCall) =>
      trail.record({
        at: call.at,
        principal: call.requestedBy,
        role: null,
        tenant: null,
        sourceIp: 'engine',
        method: 'BMC',
        route: `bmc ${call.operation}`,
        target: call.machineUuid,
        summary: `${call.protocol} ${call.operation} at ${call.bmc}: ${call.outcome === 'ok' ? 'ok' : `${call.outcome}: ${call.message ?? ''}`} (${call.attempts} attempt${call.attempts === 1 ? '' : 's'}, ${call.ms} ms)`,
        status: call.outcome === 'ok' ? 200 : call.outcome === 'BMC_TIMEOUT' ? 504 : 502,
        errorCode: call.outcome === 'ok' ? null : call.outcome,
        requestId: '-',
      }),
  }
}
