import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { administer, machineChangeOwner, machineOwner, operate, read } from '../../../../core/access/route-policy.ts'
import type { BringUpService } from '../../../../core/power/bring-up.ts'
import { notFound } from '../../../../core/errors.ts'
import type { MachineFlows } from '../../../../core/power/machine-flows.ts'
import type { PowerService } from '../../../../core/power/power-service.ts'
import { tenancyOf } from '../../auth.ts'
import { adminErrors } from '../../schemas/common.ts'
import { ClusterNameParams } from '../../schemas/clusters.ts'
import { UuidParams } from '../../schemas/machines.ts'
import {
  BmcBody,
  BmcResponse,
  BootDeviceBody,
  BringUpBody,
  BringUpParams,
  BringUpResponse,
  DeprovisionResponse,
  FlowResponse,
  PowerActionBody,
  PowerRecordResponse,
  PowerResponse,
  bmcErrors,
  toBmcInput,
  toBmcResponse,
  toBringUpResponse,
  toDeprovisionResponse,
  toFlowResponse,
  MemberRemovalResponse,
  toMemberRemovalResponse,
  toPowerRecordResponse,
  toPowerResponse,
} from '../../schemas/power.ts'

/**
 * Machines' BMCs and their power. Setting or removing a BMC hands out the power of a machine, so it
 * takes an administrator, as does deprovisioning (it wipes disks); powering or re-provisioning a
 * machine takes an operator of its tenant.
 */
export const powerRoutes: FastifyPluginAsyncTypebox<{ power: PowerService; bringUps: BringUpService; flows: MachineFlows }> = async (app, { power, bringUps, flows }) => {
  const tags = ['power']
  const requester = (name: string | undefined) => `api:${name ?? 'unknown'}`
  // A tenant's token sees the BMCs of its clusters' machines; a BMC enrolled before its machine was
  // discovered, or of a machine in no cluster, is the fleet's.
  app.get(
    '/bmcs',
    { config: { access: read('tenant') }, schema: { tags, summary: "Every machine's BMC (a tenant's: its machines') with the power state it last reported (never a password)", response: { 200: Type.Array(BmcResponse), ...adminErrors } } },
    async (request) => (await tenancyOf(request).machines(await power.list(), (view) => view.machineUuid)).map(toBmcResponse),
  )
  app.get(
    '/machines/:uuid/bmc',
    { config: { access: read('tenant', machineOwner) }, schema: { tags, summary: "A machine's BMC (never its password)", params: UuidParams, response: { 200: BmcResponse, ...adminErrors } } },
    async (request) => toBmcResponse(await power.view(request.params.uuid.toLowerCase())),
  )
  app.put(
    '/machines/:uuid/bmc',
    {
      config: { access: administer() },
      schema: { tags, summary: "Set a machine's BMC (the password is sealed at rest; leave it out to keep the stored one)", params: UuidParams, body: BmcBody, response: { 200: BmcResponse, ...adminErrors } },
    },
    async (request) => toBmcResponse(await power.configure(request.params.uuid.toLowerCase(), toBmcInput(request.body))),
  )
  app.delete(
    '/machines/:uuid/bmc',
    { config: { access: administer() }, schema: { tags, summary: "Forget a machine's BMC", params: UuidParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await power.remove(request.params.uuid.toLowerCase())
      return reply.status(204).send(null)
    },
  )
  // Reading is free of BMC calls (a reader's requests must not queue calls in front of an operator's);
  // asking the BMC now is an action, as in MAAS (query_power_state).
  app.get(
    '/machines/:uuid/power',
    {
      config: { access: read('tenant', machineOwner) },
      schema: { tags, summary: "The power state the machine's BMC last reported (its poll or the last call); no call to the BMC", params: UuidParams, response: { 200: PowerRecordResponse, ...adminErrors } },
    },
    async (request) => toPowerRecordResponse(await power.view(request.params.uuid.toLowerCase())),
  )
  app.post(
    '/machines/:uuid/power/query',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: { tags, summary: "Ask the machine's BMC for its power state now", params: UuidParams, response: { 200: PowerResponse, ...adminErrors, ...bmcErrors } },
    },
    async (request) => toPowerResponse(await power.status(request.params.uuid.toLowerCase(), requester(request.principal?.name))),
  )
  app.post(
    '/machines/:uuid/power',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: { tags, summary: 'Power a machine on, off (hard or soft), cycle or reset it through its BMC', params: UuidParams, body: PowerActionBody, response: { 200: PowerResponse, ...adminErrors, ...bmcErrors } },
    },
    async (request) => toPowerResponse(await power.power(request.params.uuid.toLowerCase(), request.body.action, requester(request.principal?.name))),
  )
  app.put(
    '/machines/:uuid/boot-device',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: { tags, summary: 'Set the device a machine boots from next (or every time, persistent)', params: UuidParams, body: BootDeviceBody, response: { 200: PowerResponse, ...adminErrors, ...bmcErrors } },
    },
    async (request) =>
      toPowerResponse(await power.setBootDevice(request.params.uuid.toLowerCase(), request.body.device, request.body.persistent ?? false, requester(request.principal?.name))),
  )
  app.post(
    '/power/bring-ups',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Power machines on in batches with a pause between them (next boot from the network first, by default); answers at once with the run',
        body: BringUpBody,
        response: { 202: BringUpResponse, ...adminErrors },
      },
    },
    async (request, reply) => {
      const { machines, labels, batch_size: batchSize = 4, pause_seconds: pauseSeconds = 30, boot_device: bootDevice = 'network' } = request.body
      const run = await bringUps.start({ ...(machines ? { machines } : {}), ...(labels ? { labels } : {}), batchSize, pauseMs: Math.round(pauseSeconds * 1000), bootDevice }, requester(request.principal?.name))
      return reply.status(202).send(toBringUpResponse(run))
    },
  )
  app.get('/power/bring-ups', { config: { access: read() }, schema: { tags, summary: 'Bring-ups of this replica, newest first', response: { 200: Type.Array(BringUpResponse), ...adminErrors } } }, async () =>
    bringUps.list().map(toBringUpResponse),
  )
  app.get(
    '/power/bring-ups/:id',
    { config: { access: read() }, schema: { tags, summary: 'One bring-up, machine by machine', params: BringUpParams, response: { 200: BringUpResponse, ...adminErrors } } },
    async (request) => {
      const run = bringUps.get(request.params.id)
      if (!run) throw notFound('BRING_UP_NOT_FOUND', `no bring-up ${request.params.id} on this replica`)
      return toBringUpResponse(run)
    },
  )
  app.post(
    '/machines/:uuid/reinstall',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: {
        tags,
        summary: 'Re-provision a machine with a role: next boot from the network, back to scheduled, power cycle (or on); it boots discovery and installs its role again',
        params: UuidParams,
        response: { 200: FlowResponse, ...adminErrors, ...bmcErrors },
      },
    },
    async (request) => toFlowResponse(await flows.reinstall(request.params.uuid, requester(request.principal?.name))),
  )
  app.post(
    '/machines/:uuid/deprovision',
    {
      config: { access: administer() },
      schema: {
        tags,
        summary: 'Take a machine out of service: out of the pool, credential revoked, next boot from the network, power cycle; its discovery agent wipes its disks, then the engine powers it off',
        params: UuidParams,
        response: { 200: FlowResponse, ...adminErrors, ...bmcErrors },
      },
    },
    async (request) => toFlowResponse(await flows.deprovision(request.params.uuid, requester(request.principal?.name))),
  )
  app.get(
    '/machines/:uuid/deprovision',
    { config: { access: read('tenant', machineOwner) }, schema: { tags, summary: "A machine's deprovision: where its wipe and power-off stand", params: UuidParams, response: { 200: DeprovisionResponse, ...adminErrors } } },
    async (request) => toDeprovisionResponse(await flows.deprovisionOf(request.params.uuid)),
  )
  app.delete(
    '/machines/:uuid/deprovision',
    { config: { access: administer() }, schema: { tags, summary: 'Return a machine to the pool (the scheduler may place it again)', params: UuidParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await flows.cancelDeprovision(request.params.uuid, requester(request.principal?.name))
      return reply.status(204).send(null)
    },
  )
  app.delete(
    '/clusters/:name/members/:uuid',
    {
      config: { access: administer() },
      schema: {
        tags,
        summary:
          "Take a machine out of its cluster for good (it died, or is replaced): a control-plane machine's etcd member is removed first, the quorum checked (409 ETCD_QUORUM_AT_RISK, 502/504 when etcd cannot be asked; force=true leaves etcd alone, for an etcd that is gone); then its membership, group and address reservation; it leaves the pool as deprovisioned (wiped on its next network boot). The scheduler fills its place.",
        params: Type.Intersect([ClusterNameParams, UuidParams]),
        querystring: Type.Object({ force: Type.Optional(Type.Enum(['true', 'false'], { description: 'true: leave etcd alone (an etcd that is gone altogether).' })) }, { additionalProperties: false }),
        response: { 200: MemberRemovalResponse, ...adminErrors, ...bmcErrors },
      },
    },
    async (request) => {
      const { name, uuid } = request.params
      const membership = await flows.membershipOf(uuid)
      if (membership?.cluster !== name) throw notFound('CLUSTER_MEMBER_NOT_FOUND', `machine ${uuid} is not a member of cluster "${name}"`)
      return toMemberRemovalResponse(await flows.removeFromCluster(uuid, requester(request.principal?.name), { force: request.query.force === 'true' }))
    },
  )
  app.get('/deprovisions', { config: { access: read() }, schema: { tags, summary: 'Machines being (or taken) out of service', response: { 200: Type.Array(DeprovisionResponse), ...adminErrors } } }, async () =>
    (await flows.listDeprovisions()).map(toDeprovisionResponse),
  )
}
