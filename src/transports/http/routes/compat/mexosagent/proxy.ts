import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { matchOf, type ProxyRoute } from '../../../core/proxy/proxy-route.ts'
import { MexosagentProxyRequest, type ProxyRouteService } from '../../../core/proxy/proxy-route-service.ts'
import { adminErrors } from '../schemas/common.ts'
import { operate } from '../../../core/access/route-policy.ts'

const ProxyResponse = Type.Object({
  message: Type.String({ description: 'The request message (add, list, delete), as mexosagent answered.' }),
  status: Type.String({ description: 'OK for add and delete; for list, mexosagent\'s rendering of its table: map[/path/:origin ...].' }),
  proxies: Type.Array(
    Type.Object({ name: Type.String({ description: 'The route id.' }), path: Type.String(), origin: Type.String() }),
    { description: 'The routes added, deleted, or (list) all of them.' },
  ),
})

/** mexosagent's `list` status: Go's fmt of its map[path]origin, keys sorted. */
const goMap = (routes: readonly ProxyRoute[]) =>
  `map[${routes
    .map((route) => [matchOf(route), route.origin] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([path, origin]) => `${path}:${origin}`)
    .join(' ')}]`

/**
 * mexosagent's `POST /v1/proxy {message: add|list|delete, proxies: [{path, origin}]}`, answered in its
 * shape `{message, status}` plus the routes concerned. Unlike mexosagent, the routes are stored
 * (they survive a restart), an add or delete is all or nothing, and a bad item is a 4xx with a code.
 * Behind the admin token (app.ts guards /v1/).
 */
export const mexosagentProxyRoutes: FastifyPluginAsyncTypebox<{ proxy: ProxyRouteService }> = async (app, { proxy }) => {
  app.post(
    '/v1/proxy',
    {
      config: { access: operate() },
      schema: {
        tags: ['mexosagent', 'proxy'],
        summary: "Program the reverse proxy (mexosagent's shape): add path routes (prefix stripped, client Host kept), list them, delete them by path",
        body: Type.Unknown({ description: `${Object.keys(MexosagentProxyRequest.properties).join(', ')}: {message: "add" | "list" | "delete", proxies: [{path, origin, name?}]}` }),
        response: { 200: ProxyResponse, ...adminErrors },
      },
    },
    async (request) => {
      const { message, routes } = await proxy.mexosagent(request.body)
      return {
        message,
        status: message === 'list' ? goMap(routes) : 'OK',
        proxies: routes.map((route) => ({ name: route.id, path: matchOf(route), origin: route.origin })),
      }
    },
  )
}
