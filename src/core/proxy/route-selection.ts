import type { ProxyRoute } from './proxy-route.ts'

/**
 * Which route serves a request. The rule, in one place:
 *
 * 1. Host routes whose host equals the request's host (case-insensitive, port and trailing dot
 *    ignored) come first; among those whose prefix matches the path, the longest prefix wins.
 * 2. Otherwise path routes: the longest matching prefix wins.
 * 3. Otherwise nothing (the proxy answers 404).
 *
 * A prefix matches whole segments: `/shop/` matches `/shop`, `/shop/` and `/shop/cart`, not
 * `/shopping`. Stored routes never tie (host and prefix are unique together); for any other list,
 * ties go to the smaller id, so the answer never depends on the order routes are given in.
 */
export function selectRoute<R extends Pick<ProxyRoute, 'id' | 'host' | 'pathPrefix'>>(routes: readonly R[], host: string | undefined, path: string): R | undefined {
  return compileRoutes(routes).select(host, path)
}

/** The routes, indexed for selection: built once per change, read on every request. */
export interface RouteTable<R> {
  readonly size: number
  select(host: string | undefined, path: string): R | undefined
}

export function compileRoutes<R extends Pick<ProxyRoute, 'id' | 'host' | 'pathPrefix'>>(routes: readonly R[]): RouteTable<R> {
  const byHost = new Map<string, R[]>()
  const pathRoutes: R[] = []
  for (const route of routes) {
    if (route.host) byHost.set(route.host, [...(byHost.get(route.host) ?? []), route])
    else pathRoutes.push(route)
  }
  const order = (a: R, b: R) => b.pathPrefix.length - a.pathPrefix.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  for (const list of byHost.values()) list.sort(order)
  pathRoutes.sort(order)
  const first = (list: readonly R[], path: string) => list.find((route) => prefixMatches(route.pathPrefix, path))
  return {
    size: routes.length,
    select(hostHeader, path) {
      if (byHost.size > 0 && hostHeader) {
        const list = byHost.get(requestHost(hostHeader))
        const found = list && first(list, path)
        if (found) return found
      }
      return first(pathRoutes, path)
    },
  }
}

/** `/shop/` matches `/shop` and everything under `/shop/`; `/` matches everything. */
export function prefixMatches(prefix: string, path: string): boolean {
  if (path.startsWith(prefix)) return true
  // The prefix without its trailing slash, as the whole path.
  return path.length === prefix.length - 1 && prefix.startsWith(path)
}

/** The host of a Host header: lower case, without port and trailing dot (`Shop.Example.com.:8081` -> `shop.example.com`). */
export function requestHost(hostHeader: string): string {
  let host = hostHeader
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    host = end === -1 ? host : host.slice(0, end + 1)
  } else {
    const colon = host.indexOf(':')
    if (colon !== -1) host = host.slice(0, colon)
  }
  host = host.toLowerCase()
  return host.endsWith('.') ? host.slice(0, -1) : host
}

/**
 * The path and query to ask the origin for: the prefix removed when the route strips it, under the
 * origin's base path (`/shop/cart?x=1`, route `/shop/` stripped, origin `http://o/base` ->
 * `/base/cart?x=1`). `path` is normalised (normalizeRequestPath): with no dot segment or encoded
 * separator left, the result cannot leave the base.
 */
export function upstreamTarget(route: Pick<ProxyRoute, 'pathPrefix' | 'stripPrefix'>, basePath: string, path: string, query: string): string {
  let rest = path
  if (route.stripPrefix && route.pathPrefix !== '/') rest = path.length < route.pathPrefix.length ? '/' : path.slice(route.pathPrefix.length - 1)
  return `${basePath}${rest}${query}`
}
