import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { BootstrapProgressService } from '../../../../core/clusters/bootstrap-progress.ts'
import type { DriftService } from '../../../../core/lifecycle/drift.ts'
import type { LockService } from '../../../../core/lifecycle/lock-service.ts'
import type { RollingDrain, RollingMode } from '../../../../core/lifecycle/rolling-mode.ts'
import { RollingRefusalReport, type RollingRefusals } from '../../../../core/lifecycle/rolling-refusals.ts'
import type { MachineRollingGate } from '../../../../core/lifecycle/machine-rolling-gate.ts'
import { machineOf } from '../../auth.ts'
import { ErrorResponse } from '../../schemas/common.ts'
import { BootstrapResponse, toBootstrapResponse } from '../../schemas/clusters.ts'
import { DriftResponse, RollingRefusalResponse, RollingSlotResponse, toDriftResponse, toRefusalResponse } from '../../schemas/lifecycle.ts'
import { machineAccess, read } from '../../../../core/access/route-policy.ts'

export interface LifecycleRouteOptions {
  locks: LockService
  /** The lock group a machine's rolling updates share: its cluster's, else `default`. */
  lockGroupOf: (machineUuid: string) => string
  /** Whether the machine rolls itself (its rolling agent acts only then), and whether it must drain first. */
  rollingPolicyOf: (machineUuid: string) => { mode: RollingMode; drain: RollingDrain }
  /** What rolling agents declined to do, and why. */
  rollingRefusals: RollingRefusals
  /** etcd's quorum for control-plane members: when they may take a slot, and give it back. */
  rollingGate: MachineRollingGate
  drift: DriftService
  bootstrap: BootstrapProgressService
  /** Configured public base URL; empty means taken from each request (as on the boot routes). */
  publicUrl: string
}

/** A config with inline files (certificates, scripts) is tens of KiB; this leaves room for big ones. */
export const IGNITION_REPORT_BODY_LIMIT = 1024 * 1024

const errors = { 401: ErrorResponse, 409: ErrorResponse }
const etcdErrors = { 502: ErrorResponse, 504: ErrorResponse }

/**
 * Enjoliver's per-machine rolling endpoints, for the machine-side agent: the machine takes and gives
 * back its own slot in its cluster's lock group, identified by its credential alone.
 */
export const lifecycleRoutes: FastifyPluginAsyncTypebox<LifecycleRouteOptions> = async (app, { locks, lockGroupOf, rollingPolicyOf, rollingRefusals, rollingGate, drift, bootstrap, publicUrl }) => {
  app.post(
    '/lifecycle/bootstrap',
    {
      config: { access: machineAccess('authorization') },
      schema: {
        tags: ['lifecycle'],
        summary: 'A cluster member reports where its kubeadm bootstrap is (generic/kubeadm-bootstrap.sh; machine credential)',
        security: [],
        body: Type.Unknown({ description: 'phase (waiting_for_endpoint, running, done, failed), command (init, join), message, and log: the last lines of kubeadm\'s output.' }),
        response: { 200: BootstrapResponse, 400: ErrorResponse, 401: ErrorResponse, 409: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse },
      },
    },
    async (request) => {
      const progress = await bootstrap.report(machineOf(request), request.body)
      const line = { component: 'bootstrap', uuid: progress.uuid, cluster: progress.cluster, hostname: progress.hostname, phase: progress.phase, command: progress.command, attempts: progress.attempts }
      if (progress.phase === 'failed') request.log.warn(line, `${progress.hostname}: kubeadm ${progress.command} failed: ${progress.message}`)
      else request.log.info(line, `${progress.hostname}: bootstrap ${progress.phase}`)
      return toBootstrapResponse(progress)
    },
  )

  app.post(
    '/lifecycle/ignition',
    {
      config: { access: machineAccess('authorization') },
      bodyLimit: IGNITION_REPORT_BODY_LIMIT,
      schema: {
        tags: ['lifecycle'],
        summary: 'An installed machine reports the Ignition config it runs; answers whether it is up to date (machine credential)',
        security: [],
        body: Type.Unknown({ description: 'The Ignition config (JSON object) as the machine runs it.' }),
        response: { 200: DriftResponse, 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse },
      },
    },
    async (request) => {
      const uuid = machineOf(request)
      const engineUrl = publicUrl ? publicUrl.replace(/\/+$/, '') : `${request.protocol}://${request.host}`
      const record = await drift.report(uuid, request.body, engineUrl)
      request.log.info({ component: 'drift', uuid, state: record.state }, `ignition report: ${record.state}`)
      return toDriftResponse(record)
    },
  )
  app.get(
    '/lifecycle/ignition',
    {
      config: { access: read() },
      schema: { tags: ['lifecycle'], summary: "The fleet's drift: each reporting machine up to date, outdated or unknown (viewer token)", response: { 200: Type.Array(DriftResponse), 401: ErrorResponse } },
    },
    async () => (await drift.list()).map(toDriftResponse),
  )

  const slotOf = async (uuid: string) => {
    const group = lockGroupOf(uuid)
    const current = (await locks.listGroups()).find((candidate) => candidate.name === group)
    return {
      uuid,
      ...rollingPolicyOf(uuid),
      group,
      holding: current?.holders.some((holder) => holder.id === uuid) ?? false,
      slots: current?.slots ?? 0,
      holders: current?.holders.length ?? 0,
    }
  }

  app.get(
    '/lifecycle/rolling',
    { config: { access: machineAccess('authorization') }, schema: { tags: ['lifecycle'], summary: "The machine's reboot slot: its lock group and whether it holds a slot (machine credential)", security: [], response: { 200: RollingSlotResponse, ...errors } } },
    async (request) => slotOf(machineOf(request)),
  )
  app.post(
    '/lifecycle/rolling/lock',
    { config: { access: machineAccess('authorization') }, schema: { tags: ['lifecycle'], summary: "Take (or keep) a reboot slot; 409 SEMAPHORE_FULL when every slot is held, ETCD_QUORUM_AT_RISK when the machine is a control-plane member etcd cannot lose now (502/504 when etcd cannot be asked) (machine credential)", security: [], response: { 200: RollingSlotResponse, ...errors, ...etcdErrors } } },
    async (request) => {
      const uuid = machineOf(request)
      await rollingGate.lock(uuid, () => locks.lock(lockGroupOf(uuid), uuid), () => locks.unlockIfHeld(lockGroupOf(uuid), uuid))
      // A new attempt: the refusal before it no longer stands.
      await rollingRefusals.resolved(uuid)
      return slotOf(uuid)
    },
  )
  app.post(
    '/lifecycle/rolling/refusal',
    {
      config: { access: machineAccess('authorization') },
      bodyLimit: 16 * 1024,
      schema: {
        tags: ['lifecycle'],
        summary: 'The rolling agent declined to restart into its new config and says why (machine credential)',
        security: [],
        body: RollingRefusalReport,
        response: { 200: RollingRefusalResponse, 400: ErrorResponse, 401: ErrorResponse, 409: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse },
      },
    },
    async (request) => {
      const refusal = await rollingRefusals.report(machineOf(request), request.body)
      request.log.warn({ component: 'rolling', uuid: refusal.uuid, reason: refusal.reason }, `machine ${refusal.uuid} did not restart into its new config: ${refusal.reason}: ${refusal.message}`)
      return toRefusalResponse(refusal)
    },
  )
  app.get(
    '/lifecycle/rolling/refusals',
    {
      config: { access: read() },
      schema: { tags: ['lifecycle'], summary: 'Machines whose rolling agent declined to restart, and why (viewer token)', response: { 200: Type.Array(RollingRefusalResponse), 401: ErrorResponse } },
    },
    async () => (await rollingRefusals.list()).map(toRefusalResponse),
  )
  app.post(
    '/lifecycle/rolling/unlock',
    { config: { access: machineAccess('authorization') }, schema: { tags: ['lifecycle'], summary: "Give the reboot slot back; 409 NOT_LOCK_HOLDER when not held, ETCD_MEMBER_NOT_READY while a control-plane member's etcd member is not healthy and caught up (machine credential)", security: [], response: { 200: RollingSlotResponse, 404: ErrorResponse, ...errors, ...etcdErrors } } },
    async (request) => {
      const uuid = machineOf(request)
      await rollingGate.mayUnlock(uuid)
      await locks.unlock(lockGroupOf(uuid), uuid)
      return slotOf(uuid)
    },
  )
}
