import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ProxyRouteDocument } from '../../../../core/proxy/proxy-route.ts'
import type { ProxyRouteService } from '../../../../core/proxy/proxy-route-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { ProxyRouteParams, ProxyRouteResponse, toProxyRouteResponse } from '../../schemas/proxy-routes.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

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
  app.get('/proxy/routes/:id', { config: { access: read() }, schema: { tags, summary: 'A proxy route with the health of its origin', params: ProxyRouteParams, response: { 200: ProxyRouteResponse, ...adminErrors } } }, async (request) =>
    toProxyRouteResponse(proxy.get(request.params.id)),
  )
  app.put(
    '/proxy/routes/:id',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Replace a route (fields left out take their defaults; the id stays)',
        params: ProxyRouteParams,
        body: Type.Unknown({ description: documentation }),
        response: { 200: ProxyRouteResponse, ...adminErrors },
      },
    },
    async (request) => toProxyRouteResponse(await proxy.replace(request.params.id, request.body)),
  )
  app.delete('/proxy/routes/:id', { config: { access: operate() }, schema: { tags, summary: 'Delete a route', params: ProxyRouteParams, response: { 204: Type.Null(), ...adminErrors } } }, async (request, reply) => {
    await proxy.remove(request.params.id)
    return reply.status(204).send(null)
  })
}
