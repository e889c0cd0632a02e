import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { MexosagentProxyRequest, type ProxyRouteService } from '../../../../../core/proxy/proxy-route-service.ts'
import { adminErrors } from '../../../schemas/common.ts'
import { MexosagentProxyResponse, toMexosagentProxyResponse } from '../../../schemas/proxy-routes.ts'
import { operate } from '../../../../../core/access/route-policy.ts'

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
        response: { 200: MexosagentProxyResponse, ...adminErrors },
      },
    },
    async (request) => {
      const { message, routes } = await proxy.mexosagent(request.body)
      return toMexosagentProxyResponse(message, routes)
    },
  )
}
