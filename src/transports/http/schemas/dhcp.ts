import Type from 'typebox'
import type { DhcpLease } from '../../../core/dhcp/lease-store.ts'
import { Nullable } from '../../../lib/nullable.ts'

export const Reservation = Type.Object({ mac: Type.String(), ip: Type.String(), hostname: Nullable(Type.String()) })
export const ReservationBody = Type.Object({ ip: Type.String(), hostname: Type.Optional(Nullable(Type.String({ maxLength: 253 }))) }, { additionalProperties: false })
export const Lease = Type.Object({
  ip: Type.String(),
  mac: Type.String(),
  hostname: Nullable(Type.String()),
  clientId: Nullable(Type.String()),
  state: Type.Enum(['offered', 'bound', 'released', 'declined']),
  expiresAt: Type.String({ description: 'ISO 8601' }),
})
export const toLeaseResponse = (lease: DhcpLease) => ({ ...lease, expiresAt: lease.expiresAt.toISOString() })
export const MacParams = Type.Object({ mac: Type.String({ maxLength: 64, description: 'MAC in colon or hyphen form.' }) })
