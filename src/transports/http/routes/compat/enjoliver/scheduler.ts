import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { read } from '../../../../../core/access/route-policy.ts'
import type { ClusterService } from '../../../../../core/clusters/cluster-service.ts'
import { adminErrors } from '../../../schemas/common.ts'
import { AvailableMachine, RoleParams, SchedulerEntry } from '../../../schemas/clusters.ts'

/**
 * Enjoliver's scheduler read routes (GET /api/v1/scheduler, /scheduler/available,
 * /scheduler/ip-list/:role, /scheduler/:role), for its tooling: where every machine was placed, and
 * what is left to place. Role names are Slipway's or Enjoliver's.
 */
export const enjoliverSchedulerRoutes: FastifyPluginAsyncTypebox<{ clusters: ClusterService }> = async (app, { clusters }) => {
  const schedulerTags = ['scheduler']
  app.get('/scheduler', { config: { access: read() }, schema: { tags: schedulerTags, summary: 'Every assignment', response: { 200: Type.Array(SchedulerEntry), ...adminErrors } } }, async () =>
    clusters.assignments(),
  )
  app.get(
    '/scheduler/available',
    {
      config: { access: read() },
      schema: {
        tags: schedulerTags,
        summary: 'Discovered machines in no cluster',
        response: { 200: Type.Array(AvailableMachine), ...adminErrors },
      },
    },
    async () => (await clusters.availableMachines()).map((machine) => ({ uuid: machine.uuid, mac: machine.bootMac, ip: machine.interfaces.find((nic) => nic.isBoot)?.ipv4 ?? null })),
  )
  app.get(
    '/scheduler/ip-list/:role',
    { config: { access: read() }, schema: { tags: schedulerTags, summary: 'Boot IPs of the machines with a role', params: RoleParams, response: { 200: Type.Array(Type.String()), ...adminErrors } } },
    async (request) => (await clusters.assignments(request.params.role)).flatMap((entry) => (entry.ip ? [entry.ip] : [])),
  )
  app.get(
    '/scheduler/:role',
    { config: { access: read() }, schema: { tags: schedulerTags, summary: 'The machines with a role', params: RoleParams, response: { 200: Type.Array(SchedulerEntry), ...adminErrors } } },
    async (request) => clusters.assignments(request.params.role),
  )
}
