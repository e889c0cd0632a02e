import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { administer, machineChangeOwner, machineOwner, operate, read } from '../../../../core/access/route-policy.ts'
import type { PowerService } from '../../../../core/power/power-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { UuidParams } from '../../schemas/machines.ts'
import { BmcBody, BmcResponse, BootDeviceBody, PowerActionBody, PowerResponse, bmcErrors, toBmcInput, toBmcResponse, toPowerResponse } from '../../schemas/power.ts'

/**
 * Machines' BMCs and their power. Setting or removing a BMC hands out the power of a machine, so it
 * takes an administrator; powering a machine takes an operator of its tenant.
 */
export const powerRoutes: FastifyPluginAsyncTypebox<{ power: PowerService }> = async (app, { power }) => {
  const tags = ['power']
  const requester = (name: string | undefined) => `api:${name ?? 'unknown'}`
  app.get('/bmcs', { config: { access: read() }, schema: { tags, summary: 'Every machine\'s BMC with the power state it last reported (never a password)', response: { 200: Type.Array(BmcResponse), ...adminErrors } } }, async () =>
    (await power.list()).map(toBmcResponse),
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
  app.get(
    '/machines/:uuid/power',
    {
      config: { access: read('tenant', machineOwner) },
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
}
