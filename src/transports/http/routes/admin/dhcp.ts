import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ReservationService } from '../../../../core/dhcp/reservation-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { Lease, MacParams, Reservation, ReservationBody, toLeaseResponse } from '../../schemas/dhcp.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

const tags = ['dhcp']

export const dhcpRoutes: FastifyPluginAsyncTypebox<{ reservations: ReservationService }> = async (app, { reservations }) => {
  app.get('/dhcp/leases', { config: { access: read() }, schema: { tags, summary: 'Leases the DHCP server has handed out', response: { 200: Type.Array(Lease), ...adminErrors } } }, async () =>
    (await reservations.listLeases()).map(toLeaseResponse),
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
        body: ReservationBody,
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
