import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { BootRequest, BootService } from '../../../../core/boot/boot-service.ts'
import type { DeliverySource } from '../../../../core/boot/secret-delivery.ts'
import { labelsFromQuery } from '../../../../core/selection/labels.ts'
import { publicAccess } from '../../../../core/access/route-policy.ts'
import type { EngineMetrics } from '../../../metrics.ts'

export interface BootRouteOptions {
  boot: BootService
  /** Configured public base URL; empty means taken from each request. */
  publicUrl: string
  metrics: EngineMetrics
}

/**
 * Machine-facing routes: no token (firmware cannot send one) and nothing beyond what a booting
 * machine needs. Paths and behaviour follow matchbox so that existing iPXE setups work unchanged.
 */
export async function bootRoutes(app: FastifyInstance, options: BootRouteOptions): Promise<void> {
  const { boot, metrics } = options
  const bootRequest = (request: FastifyRequest): BootRequest => {
    const queryStart = request.url.indexOf('?')
    const rawQuery = queryStart === -1 ? '' : request.url.slice(queryStart + 1)
    return {
      // fastify has already parsed the query; repeated keys arrive as arrays, of which the first counts.
      labels: labelsFromQuery(firstValues(request.query as Record<string, string | string[]>)),
      rawQuery,
      engineUrl: options.publicUrl ? options.publicUrl.replace(/\/+$/, '') : `${request.protocol}://${request.host}`,
    }
  }
  // Firmware and iPXE cannot send credentials; what is secret in a config is gated by BootService.
  const hide = { config: { access: publicAccess() }, schema: { hide: true } }

  const chain = async (request: FastifyRequest) => {
    return boot.chainScript(bootRequest(request))
  }
  app.get('/boot.ipxe', hide, async (request, reply) => reply.type('text/plain; charset=utf-8').send(await chain(request)))
  app.get('/boot.ipxe.0', hide, async (request, reply) => reply.type('text/plain; charset=utf-8').send(await chain(request)))

  app.get('/ipxe', hide, async (request, reply) => {
    const script = await metrics.observeRender('ipxe', () => boot.serveIpxe(bootRequest(request), sourceOf(request)))
    return reply.type('text/plain; charset=utf-8').send(script)
  })

  app.get('/ignition', hide, async (request, reply) => {
    const rendered = await metrics.observeRender('ignition', () => boot.serveIgnition(bootRequest(request), sourceOf(request)))
    return reply.type('application/json').send(rendered.body)
  })

  app.get('/metadata', hide, async (request, reply) => {
    const env = await metrics.observeRender('metadata', () => boot.metadata(bootRequest(request)))
    return reply.type('text/plain; charset=utf-8').send(env)
  })

  app.get('/generic', hide, async (request, reply) => {
    const text = await metrics.observeRender('generic', () => boot.serveGeneric(bootRequest(request), sourceOf(request)))
    return reply.type('text/plain; charset=utf-8').send(text)
  })
}

/** The peer address (never a forwarded header: machines reach the engine directly) and a machine credential, if presented. */
function sourceOf(request: FastifyRequest): DeliverySource {
  return { address: request.socket.remoteAddress ?? request.ip, credential: /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1] }
}

function* firstValues(query: Record<string, string | string[]>): Iterable<[string, string]> {
  for (const key in query) {
    const value = query[key]!
    yield [key, Array.isArray(value) ? (value[0] ?? '') : value]
  }
}
