import Type, { type Static } from 'typebox'
import { invalid } from '../errors.ts'
import { checkDocument } from '../selection/documents.ts'
import { normalizeRequestPath } from './path-normalization.ts'

/**
 * A route of the reverse proxy (mexosagent's programmable proxy, kept in the store): requests whose
 * Host and path match are forwarded to one origin.
 *
 * - `path` routes match a path prefix on any host: `/shop/`.
 * - `host` routes match a host name, optionally with a path prefix: `shop.example.com`,
 *   `shop.example.com/api/`.
 *
 * Prefixes are canonical with a trailing slash and match whole segments: `/shop/` matches `/shop`,
 * `/shop/` and `/shop/cart`, never `/shopping`. `/` matches every path.
 */
export const PROXY_ROUTE_KINDS = ['path', 'host'] as const
export type ProxyRouteKind = (typeof PROXY_ROUTE_KINDS)[number]

export interface ProxyRoute {
  id: string
  kind: ProxyRouteKind
  /** Lower case, no port; '' for path routes. */
  host: string
  /** Canonical: starts and ends with '/'. */
  pathPrefix: string
  /** Canonical origin URL: scheme, host, port when not the scheme's default, base path without trailing slash. */
  origin: string
  /** Remove the matched prefix before forwarding (`/shop/cart` -> `/cart`). */
  stripPrefix: boolean
  /** Forward the client's Host header instead of the origin's host. */
  preserveHost: boolean
  /** Check the certificate of an https origin (off only for origins with self-signed certificates). */
  tlsVerify: boolean
  /** Path probed on the origin by the health check; null: the origin's base URL. */
  healthCheckPath: string | null
  createdAt: string
  updatedAt: string
}

export const ROUTE_ID_PATTERN = '^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$'
const MATCH_MAX = 1280

export const ProxyRouteDocument = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: ROUTE_ID_PATTERN, description: 'Route id (lower-case letters, digits, ".", "_", "-"; at most 63); generated when left out.' })),
    kind: Type.Optional(Type.Enum([...PROXY_ROUTE_KINDS], { description: 'path or host; default: host unless `match` starts with "/".' })),
    match: Type.String({
      minLength: 1,
      maxLength: MATCH_MAX,
      description: 'A path prefix (`/shop/`) for a path route; a host name, optionally followed by a path prefix (`shop.example.com`, `shop.example.com/api/`), for a host route.',
    }),
    origin: Type.String({ minLength: 1, maxLength: 2048, description: 'Where requests go: http(s)://host:port[/base].' }),
    strip_prefix: Type.Boolean({ default: false, description: 'Remove the matched path prefix before forwarding.' }),
    preserve_host: Type.Boolean({ default: false, description: "Forward the client's Host header (default: the origin's host)." }),
    tls_verify: Type.Boolean({ default: true, description: "Verify an https origin's certificate." }),
    health_check_path: Type.Optional(
      Type.Union([Type.String({ minLength: 1, maxLength: 1024 }), Type.Null()], { description: "Path the health check GETs on the origin (must answer 2xx/3xx); default: the origin's base URL (any answer below 500)." }),
    ),
  },
  { additionalProperties: false },
)
export type ProxyRouteDocument = Static<typeof ProxyRouteDocument>

/** What a route is made of once checked: everything but id and times. */
export type RouteSpec = Omit<ProxyRoute, 'id' | 'createdAt' | 'updatedAt'>

/**
 * Checks a route document and returns its canonical form, or throws 400 INVALID_PROXY_ROUTE naming
 * the field. Defaults are applied here, not by the HTTP layer, so files and tests get the same.
 */
export function parseRouteDocument(input: unknown, where = 'route'): { id?: string; spec: RouteSpec } {
  const document = checkDocument(ProxyRouteDocument, withDefaults(input), where, 'INVALID_PROXY_ROUTE')
  const { host, pathPrefix } = parseMatch(document.match, document.kind, where)
  const origin = parseOrigin(document.origin, `${where}.origin`)
  if (!document.tls_verify && origin.protocol !== 'https:') {
    throw invalid('INVALID_PROXY_ROUTE', `${where}.tls_verify: applies to https origins only; ${origin.url} is plain http`)
  }
  const healthCheckPath = document.health_check_path ?? null
  if (healthCheckPath !== null && !/^\/[\x21-\x7e]*$/.test(healthCheckPath)) {
    throw invalid('INVALID_PROXY_ROUTE', `${where}.health_check_path: must be an absolute path on the origin such as /healthz (printable ASCII, no spaces)`)
  }
  return {
    ...(document.id ? { id: document.id } : {}),
    spec: {
      kind: host ? 'host' : 'path',
      host,
      pathPrefix,
      origin: origin.url,
      stripPrefix: document.strip_prefix,
      preserveHost: document.preserve_host,
      tlsVerify: document.tls_verify,
      healthCheckPath,
    },
  }
}

function withDefaults(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input
  return { strip_prefix: false, preserve_host: false, tls_verify: true, ...input }
}

/** `match` as written by an operator -> host ('' for a path route) and canonical prefix. */
export function parseMatch(match: string, kind: ProxyRouteKind | undefined, where = 'route'): { host: string; pathPrefix: string } {
  const at = `${where}.match`
  const inferred: ProxyRouteKind = match.startsWith('/') ? 'path' : 'host'
  if (kind && kind !== inferred) {
    throw invalid(
      'INVALID_PROXY_ROUTE',
      kind === 'path' ? `${at}: a path route matches a path prefix starting with "/", e.g. /shop/ (got "${match}")` : `${at}: a host route starts with a host name, e.g. shop.example.com or shop.example.com/api/ (got "${match}")`,
    )
  }
  if (inferred === 'path') return { host: '', pathPrefix: canonicalPrefix(match, at) }
  const slash = match.indexOf('/')
  const hostText = slash === -1 ? match : match.slice(0, slash)
  const host = canonicalHost(hostText)
  if (!host) throw invalid('INVALID_PROXY_ROUTE', `${at}: "${hostText}" is not a host name (letters, digits, "-" and "." such as shop.example.com, or an IPv4 address; no port, no scheme)`)
  return { host, pathPrefix: slash === -1 ? '/' : canonicalPrefix(match.slice(slash), at) }
}

// RFC 3986 path characters (pchar and "/"), percent-encoding included.
const PATH_PATTERN = /^\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/

/** `/shop` and `/shop/` are the same prefix: canonical with the trailing slash. */
export function canonicalPrefix(prefix: string, at = 'prefix'): string {
  if (!PATH_PATTERN.test(prefix)) {
    throw invalid('INVALID_PROXY_ROUTE', `${at}: "${prefix}" is not a path prefix (it starts with "/" and holds URL path characters only: no spaces, "?" or "#")`)
  }
  if (prefix.includes('//')) throw invalid('INVALID_PROXY_ROUTE', `${at}: "${prefix}" has an empty segment ("//")`)
  if (hasDotSegment(prefix)) throw invalid('INVALID_PROXY_ROUTE', `${at}: "${prefix}" has a "." or ".." segment`)
  // Requests are matched in their normal form (path-normalization.ts), so the prefix is kept in it too.
  const normalized = normalizeRequestPath(prefix)
  if (!normalized.ok) throw invalid('INVALID_PROXY_ROUTE', `${at}: ${normalized.message}`)
  return normalized.path.endsWith('/') ? normalized.path : `${normalized.path}/`
}

/** Whether a path holds a `.` or `..` segment, percent-encoded or not (a route prefix or origin base with one is refused). */
export function hasDotSegment(path: string): boolean {
  const decoded = path.includes('%') ? path.replace(/%2e/gi, '.') : path
  return /(^|\/)\.\.?(\/|$)/.test(decoded)
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/** A host name or IPv4 address, lower case, without a trailing dot; undefined when it is neither. */
export function canonicalHost(text: string): string | undefined {
  let host = text.toLowerCase()
  if (host.endsWith('.')) host = host.slice(0, -1)
  if (host.length === 0 || host.length > 253) return undefined
  if (!host.split('.').every((label) => LABEL.test(label))) return undefined
  return host
}

export interface ParsedOrigin {
  url: string
  protocol: 'http:' | 'https:'
  /** scheme://host:port, what a connection pool is keyed by. */
  base: string
  /** The Host header of the origin: host, and the port when it is not the scheme's default. */
  hostHeader: string
  /** Path under which the origin is mounted, '' or `/base` (no trailing slash). */
  basePath: string
}

/** http(s)://host:port[/base]; no credentials, query or fragment. */
export function parseOrigin(text: string, at = 'origin'): ParsedOrigin {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw invalid('INVALID_PROXY_ROUTE', `${at}: "${text}" is not a URL; write http(s)://host:port[/base], e.g. http://10.0.0.5:8080`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('INVALID_PROXY_ROUTE', `${at}: the scheme must be http or https (got ${url.protocol.slice(0, -1)})`)
  if (url.username || url.password) throw invalid('INVALID_PROXY_ROUTE', `${at}: credentials in the URL are not supported`)
  if (url.search || url.hash || text.includes('?') || text.includes('#')) throw invalid('INVALID_PROXY_ROUTE', `${at}: an origin has no query or fragment`)
  if (!url.hostname) throw invalid('INVALID_PROXY_ROUTE', `${at}: the host is missing`)
  const basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '')
  if (basePath && hasDotSegment(basePath)) throw invalid('INVALID_PROXY_ROUTE', `${at}: the base path has a "." or ".." segment`)
  const hostHeader = url.host // URL drops the scheme's default port
  return {
    url: `${url.protocol}//${hostHeader}${basePath}`,
    protocol: url.protocol,
    base: `${url.protocol}//${hostHeader}`,
    hostHeader,
    basePath,
  }
}

/** How a route's match is written back: `/shop/`, `shop.example.com`, `shop.example.com/api/`. */
export function matchOf(route: Pick<ProxyRoute, 'kind' | 'host' | 'pathPrefix'>): string {
  if (route.kind === 'path') return route.pathPrefix
  return route.pathPrefix === '/' ? route.host : `${route.host}${route.pathPrefix}`
}
