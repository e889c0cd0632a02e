import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { read } from '../../../../../core/access/route-policy.ts'
import type { MachineService } from '../../../../../core/machines/machine-service.ts'
import { tenancyOf } from '../../../auth.ts'
import { adminErrors } from '../../../schemas/common.ts'
import { EnjoliverDiscovery, toEnjoliverDiscovery } from '../../../schemas/machines.ts'

/** Enjoliver's GET /api/v1/discovery: every discovered machine, in Enjoliver's shape, for its tooling. */
export const enjoliverDiscoveryRoutes: FastifyPluginAsyncTypebox<{ machines: MachineService }> = async (app, { machines }) => {
  // Enjoliver answered this unauthenticated on GET /discovery. Slipway's rule is that machine-facing
  // endpoints expose only what a booting machine needs, and a full inventory (every MAC, IP and
  // disk) is not that, so the listing needs the admin token here.
  app.get(
    '/discovery',
    { config: { access: read('tenant') }, schema: { tags: ['discovery'], summary: 'Every discovered machine, in Enjoliver format', response: { 200: Type.Array(EnjoliverDiscovery), ...adminErrors } } },
    async (request) => (await tenancyOf(request).machines(await machines.list(), (machine) => machine.uuid)).map(toEnjoliverDiscovery),
  )
}
