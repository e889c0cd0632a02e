import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ReservationService } from '../../../../core/dhcp/reservation-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

const Reservation = Type.Object({ mac: Type.String(), ip: Type.String(), hostname: Type.Union([Type.String(), Type.Null()]) })
const Lease = Type.Object({
  ip: Type.String(),
  mac: Type.String(),
  hostname: Type.Union([Type.String(), Type.Null()]),
  clientId: Type.Union([Type.String(), Type.Null()]),
  state: Type.Enum(['offered', 'bound', 'released', 'declined']),
  expiresAt: Type.String({ description: 'ISO 8601' }),
})
const MacParams = Type.Object({ mac: Type.String({ maxLength: 64, description: 'MAC in colon or hyphen form.' }) })
const tags = ['dhcp']

export const dhcpRoutes: FastifyPluginAsyncTypebox<{ reservations: ReservationService }> = async (app, { reservations }) => {
  app.get('/dhcp/leases', { config: { access: read() }, schema: { tags, summary: 'Leases the DHCP server has handed out', response: { 200: Type.Array(Lease), ...adminErrors } } }, async () =>
    (await reservations.listLeases()).map((lease) => ({ ...lease, expiresAt: lease.expiresAt.toISOString() })),
  )

  app.get('/dhcp/reservations', { config: { access: read() }, schema: { tags, summary: 'Static reservations (MAC -> IP)', response: { 200: Type.Array(Reservation), ...adminErrors } } }, async () =>
    reservations.listReservations(),
  )

  app.put(
    '/dhcp/reservations/:mac',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Reserve an address for a MAC',
        params: MacParams,
        body: Type.Object({ ip: Type.String(), hostname: Type.Optional(Type.Union([Type.String({ maxLength: 253 }), Type.Null()])) }, { additionalProperties: false }),
        response: { 200: Reservation, ...adminErrors },
      },
    },
    async (request) => reservations.reserve(request.params.mac, request.body),
  )

  app.delete(
    '/dhcp/reservations/:mac',
    { config: { access: operate() }, schema: { tags, summary: 'Delete a reservation', params: MacParams, response: { 204: Type.Null(), ...adminErrors } } },
    async (request, reply) => {
      await reservations.unreserve(request.params.mac)
      return reply.status(204).send(null)
    },
  )
}
