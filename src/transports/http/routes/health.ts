import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { publicAccess } from '../../../core/access/route-policy.ts'

export interface HealthRouteOptions {
  /** Throws when the engine cannot serve (e.g. the database does not answer). */
  checkReady: () => Promise<void>
  /** True while the engine opens its other listeners after HTTP: not ready for a supervisor yet. */
  isStarting: () => boolean
  registry: Registry
  version: string
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

  // Someone opening the engine's address: a browser is sent to the web UI (which asks for a token),
  // a program gets a short index of where things are. Neither says anything about the engine's state.
  app.get('/', { config: { access: publicAccess() }, schema: { hide: true } }, async (request, reply) => {
    if (prefersHtml(request.headers.accept)) return reply.redirect('/ui', 303)
    return reply.send({
      name: 'slipway',
      version: options.version,
      links: { ui: '/ui', api_docs: '/apidocs', openapi: '/apidocs/json', health: '/healthz', metrics: '/metrics', api: '/api/v1' },
    })
  })

  app.get('/metrics', { config: { access: publicAccess() }, schema: { hide: true } }, async (_request, reply) => {
    return reply.type(options.registry.contentType).send(await options.registry.metrics())
  })
}

/** Whether an Accept header asks for HTML before JSON (a browser's does; curl's does not). */
function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false
  const rank = (type: string) => {
    const entry = accept.split(',').map((part) => part.trim().split(';')).find(([media]) => media?.trim().toLowerCase() === type)
    if (!entry) return -1
    const q = entry.slice(1).map((parameter) => parameter.trim()).find((parameter) => parameter.startsWith('q='))
    return q ? Number(q.slice(2)) || 0 : 1
  }
  const html = rank('text/html')
  return html > 0 && html >= Math.max(rank('application/json'), 0)
}
