import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { matchOf, PROXY_ROUTE_KINDS, ProxyRouteDocument } from '../../../../core/proxy/proxy-route.ts'
import type { ProxyRouteService, RouteView } from '../../../../core/proxy/proxy-route-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

const HealthResponse = Type.Object({
  status: Type.Enum(['unknown', 'healthy', 'unhealthy'], { description: 'unknown until the first check or request after the route was created or the engine started.' }),
  since: Nullable(Type.String({ description: 'When the status last changed.' })),
  checked_at: Nullable(Type.String({ description: 'When the origin last answered or failed (a health check or a proxied request).' })),
  last_error: Nullable(Type.String()),
  last_error_at: Nullable(Type.String()),
})

export const ProxyRouteResponse = Type.Object({
  id: Type.String(),
  kind: Type.Enum([...PROXY_ROUTE_KINDS]),
  match: Type.String({ description: 'As in the document: /shop/, shop.example.com or shop.example.com/api/ (canonical form).' }),
  host: Nullable(Type.String({ description: 'The host of a host route.' })),
  path_prefix: Type.String(),
  origin: Type.String(),
  strip_prefix: Type.Boolean(),
  preserve_host: Type.Boolean(),
  tls_verify: Type.Boolean(),
  health_check_path: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
  health: HealthResponse,
})

export const toProxyRouteResponse = (route: RouteView) => ({
  id: route.id,
  kind: route.kind,
  match: matchOf(route),
  host: route.host || null,
  path_prefix: route.pathPrefix,
  origin: route.origin,
  strip_prefix: route.stripPrefix,
  preserve_host: route.preserveHost,
  tls_verify: route.tlsVerify,
  health_check_path: route.healthCheckPath,
  created_at: route.createdAt,
  updated_at: route.updatedAt,
  health: {
    status: route.health.status,
    since: route.health.since,
    checked_at: route.health.checkedAtMs === null ? null : new Date(route.health.checkedAtMs).toISOString(),
    last_error: route.health.lastError,
    last_error_at: route.health.lastErrorAt,
  },
})

const RouteParams = Type.Object({ id: Type.String({ maxLength: 63 }) })
const tags = ['proxy']
const documentation = `ProxyRouteDocument: ${Object.keys(ProxyRouteDocument.properties).join(', ')}. Routes are selected host routes first, then path routes, longest prefix first.`

/** The reverse proxy's routes, under /api/v1 (the core checks documents: 400 INVALID_PROXY_ROUTE names the field). */
export const proxyRouteRoutes: FastifyPluginAsyncTypebox<{ proxy: ProxyRouteService }> = async (app, { proxy }) => {
  app.get('/proxy/routes', { config: { access: read() }, schema: { tags, summary: 'Every proxy route with the health of its origin', response: { 200: Type.Array(ProxyRouteResponse), ...adminErrors } } }, async () =>
    proxy.list().map(toProxyRouteResponse),
  )
  app.post(
    '/proxy/routes',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Create a route: {match, origin, strip_prefix, preserve_host, tls_verify, id?, kind?, health_check_path?} (409 PROXY_ROUTE_EXISTS for a taken id or match)',
        body: Type.Unknown({ description: documentation }),
        response: { 201: ProxyRouteResponse, ...adminErrors },
      },
    },
    async (request, reply) => reply.status(201).send(toProxyRouteResponse(await proxy.create(request.body))),
  )
  app.get('/proxy/routes/:id', { config: { access: read() }, schema: { tags, summary: 'A proxy route with the health of its origin', params: RouteParams, response: { 200: ProxyRouteResponse, ...adminErrors } } }, async (request) =>
    toProxyRouteResponse(proxy.get(request.params.id)),
  )
  app.put(
    '/proxy/routes/:id',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Replace a route (fields left out take their defaults; the id stays)',
        params: RouteParams,
        body: Type.Unknown({ description: documentation }),
        response: { 200: ProxyRouteResponse, ...adminErrors },
      },
    },
    async (request) => toProxyRouteResponse(await proxy.replace(request.params.id, request.body)),
  )
  app.delete('/proxy/routes/:id', { config: { access: operate() }, schema: { tags, summary: 'Delete a route', params: RouteParams, response: { 204: Type.Null(), ...adminErrors } } }, async (request, reply) => {
    await proxy.remove(request.params.id)
    return reply.status(204).send(null)
  })
}
