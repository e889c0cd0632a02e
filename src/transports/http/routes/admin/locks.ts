import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { LockService } from '../../../../core/lifecycle/lock-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { HolderParams, LockGroupBody, LockGroupParams, LockGroupResponse, toLockGroupResponse } from '../../schemas/locks.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

/** The reboot lock semaphore, as an operator sees it (locksmith's `rebootlockctl status / set-max / unlock`). */
export const lockRoutes: FastifyPluginAsyncTypebox<{ locks: LockService }> = async (app, { locks }) => {
  const tags = ['lifecycle']
  app.get('/locks', { config: { access: read() }, schema: { tags, summary: 'Every lock group with its holders', response: { 200: Type.Array(LockGroupResponse), ...adminErrors } } }, async () =>
    (await locks.listGroups()).map(toLockGroupResponse),
  )
  app.get('/locks/:group', { config: { access: read() }, schema: { tags, summary: 'One lock group', params: LockGroupParams, response: { 200: LockGroupResponse, ...adminErrors } } }, async (request) =>
    toLockGroupResponse(await locks.getGroup(request.params.group)),
  )
  app.put(
    '/locks/:group',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Create a lock group or change its slots/TTL (fewer slots than holders evicts nobody: new locks wait)',
        params: LockGroupParams,
        body: LockGroupBody,
        response: { 200: LockGroupResponse, ...adminErrors },
      },
    },
    async (request) => toLockGroupResponse(await locks.putGroup(request.params.group, request.body.slots, request.body.ttl_seconds ?? null)),
  )
  app.delete(
    '/locks/:group/holders/:holder',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Force-release a holder (a machine that will not come back)',
        params: HolderParams,
        response: { 200: LockGroupResponse, ...adminErrors },
      },
    },
    async (request) => toLockGroupResponse(await locks.forceRelease(request.params.group, request.params.holder)),
  )
  app.delete(
    '/locks/:group',
    { config: { access: operate() }, schema: { tags, summary: 'Delete a lock group without holders (409 LOCK_GROUP_HELD)', params: LockGroupParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await locks.deleteGroup(request.params.group)
      return reply.status(204).send(null)
    },
  )
}
