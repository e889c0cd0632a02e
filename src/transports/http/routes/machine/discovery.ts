import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { DiscoveryDocument } from '../../../../core/machines/discovery-document.ts'
import type { MachineService } from '../../../../core/machines/machine-service.ts'
import { ErrorResponse } from '../../schemas/common.ts'
import { DiscoveryAnswer } from '../../schemas/machines.ts'
import { publicAccess } from '../../../../core/access/route-policy.ts'
import { rateLimited } from '../../../../core/errors.ts'
import { plainAddress } from '../../../../lib/ipv4.ts'
import { RateLimiter } from '../../../../lib/rate-limiter.ts'

/** A discovery report is a few KiB; a larger body is a broken or hostile agent. */
export const DISCOVERY_BODY_LIMIT = 64 * 1024

/**
 * Enjoliver's discovery path, for its agent and Slipway's. Machine-facing, like the boot routes: no token (the discovery agent in the live image has none),
 * and the answer says nothing beyond the machine's own uuid and state (and, while it is being
 * deprovisioned, that it is to wipe its disks). The inventory listing that
 * Enjoliver served here on GET is admin data: GET /api/v1/discovery (routes/compat/enjoliver).
 */
export const discoveryRoutes: FastifyPluginAsyncTypebox<{ machines: MachineService; reportsPerMinutePerClient: number; wipeRequested: (uuid: string) => Promise<boolean> }> = async (
  app,
  { machines, reportsPerMinutePerClient, wipeRequested },
) => {
  // An agent reports once per boot (and again every 5 s while the engine does not answer): a client
  // sending many more is filling the inventory, and is told to wait.
  const limiter = new RateLimiter(reportsPerMinutePerClient, Math.max(1, reportsPerMinutePerClient))
  app.post(
    '/discovery',
    {
      bodyLimit: DISCOVERY_BODY_LIMIT,
      config: { access: publicAccess() },
      schema: {
        tags: ['discovery'],
        summary: "Report a machine booted into discovery (Enjoliver format; no token). A report that claims a known machine's uuid, boot MAC or address is refused (409 MACHINE_IDENTITY_CONFLICT) and kept for an operator",
        security: [],
        body: DiscoveryDocument,
        response: { 200: DiscoveryAnswer, 400: ErrorResponse, 409: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse, 429: ErrorResponse },
      },
    },
    async (request) => {
      const address = plainAddress(request.socket.remoteAddress ?? request.ip)
      const admitted = limiter.take(address)
      if (!admitted.allowed) {
        throw rateLimited('DISCOVERY_RATE_LIMITED', `more than ${reportsPerMinutePerClient} discovery reports a minute from ${address}; an agent reports once per boot`, admitted.retryAfterSeconds)
      }
      const { isNew, machine } = await machines.discover(request.body, undefined, { address })
      // A machine being deprovisioned learns here, from its own report, that its disks are to be wiped.
      return { 'new-discovery': isNew, uuid: machine.uuid, state: machine.state, ...((await wipeRequested(machine.uuid)) ? { wipe: true as const } : {}) }
    },
  )
}
