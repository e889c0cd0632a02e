import Type from 'typebox'
import { matchOf, PROXY_ROUTE_KINDS, type ProxyRoute } from '../../../core/proxy/proxy-route.ts'
import type { RouteView } from '../../../core/proxy/proxy-route-service.ts'
import { Nullable } from '../../../lib/nullable.ts'

const OriginHealthResponse = Type.Object({
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
  health: OriginHealthResponse,
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

export const ProxyRouteParams = Type.Object({ id: Type.String({ maxLength: 63 }) })

// mexosagent's POST /v1/proxy answers.

export const MexosagentProxyResponse = Type.Object({
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

export const toMexosagentProxyResponse = (message: string, routes: readonly ProxyRoute[]) => ({
  message,
  status: message === 'list' ? goMap(routes) : 'OK',
  proxies: routes.map((route) => ({ name: route.id, path: matchOf(route), origin: route.origin })),
})
