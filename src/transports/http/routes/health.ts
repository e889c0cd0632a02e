import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { publicAccess } from '../../../core/access/route-policy.ts'

export interface HealthRouteOptions {
  /** Throws when the engine cannot serve (e.g. the database does not answer). */
  checkReady: () => Promise<void>
  /** True while the engine opens its other listeners after HTTP: not ready for a supervisor yet. */
  isStarting: () => boolean
  registry: Registry
}

export async function healthRoutes(app: FastifyInstance, options: HealthRouteOptions): Promise<void> {
  // Supervisors and load balancers probe without credentials; Prometheus scrapes the same way.
  app.get('/healthz', { config: { access: publicAccess() }, schema: { hide: true } }, async (request, reply) => {
    if (options.isStarting()) {
      return reply.status(503).send({ status: 'starting', code: 'STARTING', message: 'the engine is still opening its listeners (DHCP, TFTP, DNS, proxy); ask again shortly' })
    }
    try {
      await options.checkReady()
      return reply.send({ status: 'ok' })
    } catch (error) {
      request.log.error({ err: error }, 'health check failed')
      return reply.status(503).send({ status: 'unavailable', code: 'NOT_READY', message: 'the engine cannot reach its database' })
    }
  })

  app.get('/metrics', { config: { access: publicAccess() }, schema: { hide: true } }, async (_request, reply) => {
    return reply.type(options.registry.contentType).send(await options.registry.metrics())
  })
}
