import Type from 'typebox'
import { MAX_SLOTS, type LockGroup } from '../../../core/lifecycle/semaphore.ts'
import { Nullable } from '../../../lib/nullable.ts'

const Holder = Type.Object({ id: Type.String(), acquired_at: Type.String(), expires_at: Nullable(Type.String()) })
export const LockGroupResponse = Type.Object({ name: Type.String(), slots: Type.Integer(), ttl_seconds: Nullable(Type.Integer()), free: Type.Integer(), holders: Type.Array(Holder) })
export const LockGroupParams = Type.Object({ group: Type.String({ maxLength: 64 }) })
export const HolderParams = Type.Object({ group: Type.String({ maxLength: 64 }), holder: Type.String({ maxLength: 128 }) })
export const LockGroupBody = Type.Object(
  {
    slots: Type.Integer({ minimum: 0, maximum: MAX_SLOTS, description: 'How many machines may hold a slot at once; 0 stops new locks.' }),
    ttl_seconds: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'A slot not released after this long is taken back; null or absent: never.' })),
  },
  { additionalProperties: false },
)

export const toLockGroupResponse = (group: LockGroup) => ({
  name: group.name,
  slots: group.slots,
  ttl_seconds: group.ttlSeconds,
  free: Math.max(0, group.slots - group.holders.length),
  holders: group.holders.map((holder) => ({ id: holder.id, acquired_at: holder.acquiredAt, expires_at: holder.expiresAt })),
})
