import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { LockService } from '../../../../core/lifecycle/lock-service.ts'
import { MAX_SLOTS, type LockGroup } from '../../../../core/lifecycle/semaphore.ts'
import { adminErrors } from '../../schemas/common.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

const Holder = Type.Object({ id: Type.String(), acquired_at: Type.String(), expires_at: Type.Union([Type.String(), Type.Null()]) })
const GroupResponse = Type.Object({ name: Type.String(), slots: Type.Integer(), ttl_seconds: Type.Union([Type.Integer(), Type.Null()]), free: Type.Integer(), holders: Type.Array(Holder) })
const GroupParams = Type.Object({ group: Type.String({ maxLength: 64 }) })
const GroupBody = Type.Object(
  {
    slots: Type.Integer({ minimum: 0, maximum: MAX_SLOTS, description: 'How many machines may hold a slot at once; 0 stops new locks.' }),
    ttl_seconds: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'A slot not released after this long is taken back; null or absent: never.' })),
  },
  { additionalProperties: false },
)

const toResponse = (group: LockGroup) => ({
  name: group.name,
  slots: group.slots,
  ttl_seconds: group.ttlSeconds,
  free: Math.max(0, group.slots - group.holders.length),
  holders: group.holders.map((holder) => ({ id: holder.id, acquired_at: holder.acquiredAt, expires_at: holder.expiresAt })),
})

/** The reboot lock semaphore, as an operator sees it (locksmith's `rebootlockctl status / set-max / unlock`). */
export const lockRoutes: FastifyPluginAsyncTypebox<{ locks: LockService }> = async (app, { locks }) => {
  const tags = ['lifecycle']
  app.get('/locks', { config: { access: read() }, schema: { tags, summary: 'Every lock group with its holders', response: { 200: Type.Array(GroupResponse), ...adminErrors } } }, async () =>
    (await locks.listGroups()).map(toResponse),
  )
  app.get('/locks/:group', { config: { access: read() }, schema: { tags, summary: 'One lock group', params: GroupParams, response: { 200: GroupResponse, ...adminErrors } } }, async (request) =>
    toResponse(await locks.getGroup(request.params.group)),
  )
  app.put(
    '/locks/:group',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Create a lock group or change its slots/TTL (fewer slots than holders evicts nobody: new locks wait)',
        params: GroupParams,
        body: GroupBody,
        response: { 200: GroupResponse, ...adminErrors },
      },
    },
    async (request) => toResponse(await locks.putGroup(request.params.group, request.body.slots, request.body.ttl_seconds ?? null)),
  )
  app.delete(
    '/locks/:group/holders/:holder',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Force-release a holder (a machine that will not come back)',
        params: Type.Object({ group: Type.String({ maxLength: 64 }), holder: Type.String({ maxLength: 128 }) }),
        response: { 200: GroupResponse, ...adminErrors },
      },
    },
    async (request) => toResponse(await locks.forceRelease(request.params.group, request.params.holder)),
  )
  app.delete(
    '/locks/:group',
    { config: { access: operate() }, schema: { tags, summary: 'Delete a lock group without holders (409 LOCK_GROUP_HELD)', params: GroupParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await locks.deleteGroup(request.params.group)
      return reply.status(204).send(null)
    },
  )
}
