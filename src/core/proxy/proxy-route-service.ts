import Type, { type Static } from 'typebox'
import { conflict, invalid, notFound } from '../errors.ts'
import { checkDocument } from '../selection/documents.ts'
import type { OriginHealth, OriginHealthBoard } from './origin-health.ts'
import { canonicalPrefix, matchOf, parseRouteDocument, ROUTE_ID_PATTERN, type ProxyRoute, type RouteSpec } from './proxy-route.ts'
import { compileRoutes, type RouteTable } from './route-selection.ts'

/** The route store; storage implements it. */
export interface ProxyRouteRepository {
  list(): Promise<ProxyRoute[]>
  /** Refuses (409 PROXY_ROUTE_EXISTS) an existing id, or an existing host and prefix. */
  insert(route: ProxyRoute): Promise<void>
  update(route: ProxyRoute): Promise<void>
  delete(id: string): Promise<boolean>
  transaction<T>(work: (repository: ProxyRouteRepository) => Promise<T>): Promise<T>
}

export interface RouteView extends ProxyRoute {
  health: OriginHealth
}

/** mexosagent's `POST /v1/proxy` body: `{message: add | list | delete, proxies: [{path, origin}]}`. */
export const MexosagentProxyRequest = Type.Object(
  {
    message: Type.Enum(['add', 'list', 'delete'], { description: 'add: create path routes; list: every route; delete: remove path routes by path.' }),
    proxies: Type.Optional(
      Type.Array(
        Type.Object(
          {
            path: Type.String({ minLength: 1, maxLength: 1024, description: 'Path prefix, e.g. /testapphttp/' }),
            origin: Type.Optional(Type.String({ maxLength: 2048, description: 'http(s)://host:port[/base]; required to add.' })),
            name: Type.Optional(Type.String({ maxLength: 63, description: 'Route id for an add (generated from the path when left out).' })),
          },
          { additionalProperties: false },
        ),
        { maxItems: 1000 },
      ),
    ),
  },
  { additionalProperties: false },
)
export type MexosagentProxyRequest = Static<typeof MexosagentProxyRequest>

export interface ProxyRouteServiceOptions {
  clock?: () => Date
  /** Told after every change (and after `load`), with the routes now in force. */
  changed?: (routes: readonly ProxyRoute[]) => void
}

/**
 * The proxy's routes: checked, stored, and compiled into the table the proxy selects from. The store
 * is the source of truth (routes survive restarts, which mexosagent's did not); the table is rebuilt
 * from it after every write. Every write checks everything first: bad input changes nothing, and a
 * batch (mexosagent's add and delete) is all or nothing.
 */
export class ProxyRouteService {
  private routes: readonly ProxyRoute[] = []
  private compiled: RouteTable<ProxyRoute> = compileRoutes([])
  private readonly clock: () => Date
  private readonly changed: (routes: readonly ProxyRoute[]) => void

  constructor(
    private readonly repository: ProxyRouteRepository,
    private readonly health: OriginHealthBoard,
    options: ProxyRouteServiceOptions = {},
  ) {
    this.clock = options.clock ?? (() => new Date())
    this.changed = options.changed ?? (() => {})
  }

  /** Reads the stored routes (at start-up: what the proxy served before the restart). */
  async load(): Promise<readonly ProxyRoute[]> {
    this.routes = await this.repository.list()
    this.compiled = compileRoutes(this.routes)
    this.changed(this.routes)
    return this.routes
  }

  /** The table the proxy selects from, for every request. */
  table(): RouteTable<ProxyRoute> {
    return this.compiled
  }

  current(): readonly ProxyRoute[] {
    return this.routes
  }

  list(): RouteView[] {
    return this.routes.map((route) => this.view(route))
  }

  get(id: string): RouteView {
    return this.view(this.find(id))
  }

  async create(input: unknown): Promise<RouteView> {
    const { id, spec } = parseRouteDocument(input)
    const created = await this.write(async (repository, routes) => {
      const route = this.newRoute(id ?? generatedId(spec, routes), spec)
      checkUnique(route, routes)
      await repository.insert(route)
      return route
    })
    return this.view(created)
  }

  /** PUT: the whole route is replaced (fields left out take their defaults); id and creation time stay. */
  async replace(id: string, input: unknown): Promise<RouteView> {
    const parsed = parseRouteDocument(input)
    if (parsed.id !== undefined && parsed.id !== id) throw invalid('INVALID_PROXY_ROUTE', `route.id: "${parsed.id}" differs from the id in the URL ("${id}"); a route cannot be renamed`)
    const updated = await this.write(async (repository, routes) => {
      const existing = routes.find((route) => route.id === id)
      if (!existing) throw routeNotFound(id)
      const route: ProxyRoute = { ...existing, ...parsed.spec, updatedAt: this.clock().toISOString() }
      checkUnique(route, routes, id)
      await repository.update(route)
      if (route.origin !== existing.origin || route.tlsVerify !== existing.tlsVerify || route.healthCheckPath !== existing.healthCheckPath) this.health.forget(id)
      return route
    })
    return this.view(updated)
  }

  async remove(id: string): Promise<void> {
    await this.write(async (repository) => {
      if (!(await repository.delete(id))) throw routeNotFound(id)
    })
    this.health.forget(id)
  }

  /**
   * mexosagent's POST /v1/proxy. `add` creates path routes that strip their prefix and keep the
   * client's Host, as mexosagent's Go proxy did; `delete` removes path routes by path. Both are all
   * or nothing. Every message answers with the routes it concerns (`list`: all of them).
   */
  async mexosagent(input: unknown): Promise<{ message: string; routes: ProxyRoute[] }> {
    const request = checkDocument(MexosagentProxyRequest, input, 'request', 'INVALID_PROXY_REQUEST')
    const items = request.proxies ?? []
    if (request.message === 'list') return { message: 'list', routes: [...this.routes] }
    if (items.length === 0) throw invalid('INVALID_PROXY_REQUEST', `proxies: ${request.message} needs at least one {path${request.message === 'add' ? ', origin' : ''}}`)

    if (request.message === 'add') {
      const specs = items.map((item, index) => {
        const at = `proxies[${index}]`
        if (!item.origin) throw invalid('INVALID_PROXY_REQUEST', `${at}.origin: required to add a proxy (http(s)://host:port[/base])`)
        if (item.name !== undefined && !new RegExp(ROUTE_ID_PATTERN).test(item.name)) {
          throw invalid('INVALID_PROXY_REQUEST', `${at}.name: "${item.name}" cannot be a route id (lower-case letters, digits, ".", "_", "-"; at most 63)`)
        }
        const { spec } = parseRouteDocument({ kind: 'path', match: item.path, origin: item.origin, strip_prefix: true, preserve_host: true }, at)
        return { name: item.name, spec }
      })
      const added = await this.write(async (repository, routes) => {
        const taken = [...routes]
        const created: ProxyRoute[] = []
        for (const { name, spec } of specs) {
          const route = this.newRoute(name ?? generatedId(spec, taken), spec)
          checkUnique(route, taken)
          await repository.insert(route)
          taken.push(route)
          created.push(route)
        }
        return created
      })
      return { message: 'add', routes: added }
    }

    const prefixes = items.map((item, index) => canonicalPrefix(item.path, `proxies[${index}].path`))
    const removed = await this.write(async (repository, routes) => {
      const doomed = prefixes.map((prefix, index) => {
        const route = routes.find((candidate) => candidate.kind === 'path' && candidate.pathPrefix === prefix)
        if (!route) throw notFound('PROXY_ROUTE_NOT_FOUND', `proxies[${index}].path: no path route for ${prefix}; nothing was deleted`, { path: prefix })
        return route
      })
      for (const route of new Set(doomed)) await repository.delete(route.id)
      return [...new Set(doomed)]
    })
    for (const route of removed) this.health.forget(route.id)
    return { message: 'delete', routes: removed }
  }

  private find(id: string): ProxyRoute {
    const route = this.routes.find((candidate) => candidate.id === id)
    if (!route) throw routeNotFound(id)
    return route
  }

  private view(route: ProxyRoute): RouteView {
    return { ...route, health: this.health.get(route.id) }
  }

  private newRoute(id: string, spec: RouteSpec): ProxyRoute {
    const at = this.clock().toISOString()
    return { id, ...spec, createdAt: at, updatedAt: at }
  }

  /** One transaction over the freshest routes; the table is rebuilt from the store afterwards. */
  private async write<T>(work: (repository: ProxyRouteRepository, routes: ProxyRoute[]) => Promise<T>): Promise<T> {
    const result = await this.repository.transaction(async (repository) => work(repository, await repository.list()))
    await this.load()
    return result
  }
}

function routeNotFound(id: string) {
  return notFound('PROXY_ROUTE_NOT_FOUND', `no proxy route "${id}"`, { id })
}

/** `replacing`: the id of the route being replaced, which may keep its own match. */
function checkUnique(route: ProxyRoute, routes: readonly ProxyRoute[], replacing?: string): void {
  for (const other of routes) {
    if (other.id === replacing) continue
    if (other.id === route.id) throw conflict('PROXY_ROUTE_EXISTS', `a proxy route with id "${route.id}" already exists`, { id: route.id })
    if (other.host === route.host && other.pathPrefix === route.pathPrefix) {
      throw conflict('PROXY_ROUTE_EXISTS', `route "${other.id}" already matches ${matchOf(other)}; change or delete it instead`, { id: other.id, match: matchOf(other) })
    }
  }
}

/** A readable id from the match (`/shop/` -> `shop`, `shop.example.com/api/` -> `shop.example.com-api`), made unique. */
function generatedId(spec: RouteSpec, routes: readonly ProxyRoute[]): string {
  const slug =
    matchOf(spec)
      .toLowerCase()
      .replace(/[^a-z0-9.-]+/g, '-')
      .replace(/-+/g, '-')
      .replace(/^[-.]+|[-.]+$/g, '')
      .slice(0, 56)
      .replace(/[-.]+$/, '') || 'root'
  const taken = new Set(routes.map((route) => route.id))
  if (!taken.has(slug)) return slug
  for (let n = 2; ; n++) if (!taken.has(`${slug}-${n}`)) return `${slug}-${n}`
}
