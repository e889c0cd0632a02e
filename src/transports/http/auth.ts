import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AuditEntry } from '../../core/access/audit-entry.ts'
import { requireLevel, type Principal } from '../../core/access/roles.ts'
import { isMutating, policyOf, type RoutePolicy } from '../../core/access/route-policy.ts'
import { TenantView, type TenantDirectory } from '../../core/access/tenancy.ts'
import { forbidden, SlipwayError } from '../../core/errors.ts'

/** The identity behind a bearer token: name, role and tenant (null: the whole fleet). */
export type { Principal }

/** Resolves a presented token to a principal, or undefined; implemented over the token store. */
export type TokenVerifier = (token: string) => Promise<Principal | undefined>

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
    /** What the principal may see; set on every authorized request of the admin surface. */
    tenancy?: TenantView
  }
  interface FastifyContextConfig {
    /** A route's own policy; without it, core/access/route-policy.ts's table decides. */
    access?: RoutePolicy
    /** Resolved once when the route is added (access-control hook below). */
    accessPolicy?: RoutePolicy
    /** Whether its calls go to the audit log. */
    audited?: boolean
  }
}

/**
 * The token a request presents: `Authorization: Bearer <token>`, or HTTP Basic with the token as the
 * password (any user name), which is all Helm and other repository clients can send
 * (`helm repo add --username slipway --password <token>`).
 */
function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (bearer) return bearer[1]
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)
  if (!basic) return undefined
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon === -1 ? undefined : decoded.slice(colon + 1) || undefined
}

/** An onRequest hook: the admin API answers nothing, not even a 404 shape, without a valid token. */
export function requireBearerToken(verify: TokenVerifier, sessions?: { tokenOf(request: FastifyRequest): string | undefined }) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    // Without an Authorization header, the web UI's session cookie (ui-session.ts) carries the token.
    const sessionToken = request.headers.authorization === undefined ? sessions?.tokenOf(request) : undefined
    if (sessionToken && request.method !== 'GET' && request.method !== 'HEAD' && request.headers['x-slipway-ui'] !== '1') {
      throw new SlipwayError('forbidden', 'CSRF_HEADER_REQUIRED', 'a request authenticated by the UI session cookie must carry the header "X-Slipway-UI: 1" (scripts and tools: use "Authorization: Bearer <token>")')
    }
    const token = sessionToken ?? presentedToken(request.headers.authorization)
    if (!token) {
      reply.header('WWW-Authenticate', 'Bearer realm="slipway"')
      throw new SlipwayError('unauthorized', 'TOKEN_REQUIRED', 'this API needs an "Authorization: Bearer <token>" header (Helm repository clients: HTTP Basic with the token as the password)')
    }
    const principal = await verify(token)
    if (!principal) {
      reply.header('WWW-Authenticate', 'Bearer realm="slipway", error="invalid_token"')
      throw new SlipwayError('unauthorized', 'TOKEN_INVALID', 'the bearer token is not valid')
    }
    request.principal = principal
  }
}

/** A route as access control classified it (listed by `accessTable`, for the authorization test and docs). */
export interface RouteAccess {
  method: string
  url: string
  policy: RoutePolicy
  /** False when the route is in no table: it got the safest policy (tenant-less admins only). */
  classified: boolean
}

/** One audited call, as the audit hook hands it over (storage/repositories/audit-log.ts keeps it). */
export type AuditEvent = AuditEntry

export interface AccessControlOptions {
  /** Authenticates (sets request.principal) or throws 401: requireBearerToken's hook. */
  authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  /** Whether a URL belongs to the admin surface (every request there is authenticated, even to an unknown path). */
  isAdminPath: (url: string) => boolean
  tenants: TenantDirectory
  audit: (event: AuditEvent) => Promise<void>
}

const tables = new WeakMap<FastifyInstance, RouteAccess[]>()

/** Every route added after installAccessControl, with its policy. */
export function accessTable(app: FastifyInstance): readonly RouteAccess[] {
  return tables.get(app) ?? []
}

/** Checks the request's principal against its route's policy; sets request.tenancy. Throws 403, or 404 for another tenant's object. */
export async function authorize(request: FastifyRequest, tenants: TenantDirectory): Promise<void> {
  const principal = request.principal
  const policy = request.routeOptions.config?.accessPolicy
  // An unknown path of the admin surface: the caller is authenticated, the not-found handler answers.
  if (!principal || !policy) return
  if (policy.access !== 'public') requireLevel(principal, policy.access)
  if (policy.scope === 'fleet' && principal.tenant !== null) {
    throw forbidden('FORBIDDEN', `this call acts on the whole fleet and needs a token without a tenant; token "${principal.name}" belongs to tenant "${principal.tenant}"`, { tenant: principal.tenant })
  }
  const tenancy = new TenantView(principal.tenant, tenants)
  request.tenancy = tenancy
  if (policy.owner && principal.tenant !== null) await tenancy.require(policy.owner(request.params as Record<string, string>, (request.query ?? {}) as Record<string, unknown>))
}

/** The request's tenant view; only routes behind access control have one. */
export function tenancyOf(request: FastifyRequest): TenantView {
  if (!request.tenancy) throw new Error(`route ${request.method} ${request.routeOptions.url} is not behind access control`)
  return request.tenancy
}

const MAX_TARGET = 200
const MAX_SUMMARY = 200
/** The object of a call: its route parameters (never a body, which may carry credentials), else a created object's name. */
function targetOf(request: FastifyRequest): string | null {
  const params = Object.values((request.params ?? {}) as Record<string, string>).filter((value) => typeof value === 'string' && value !== '')
  if (params.length) return params.join('/').slice(0, MAX_TARGET)
  const body = request.body
  // Only the `name` field: create bodies name their object there, and a name is not a secret.
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && !Buffer.isBuffer(body) && typeof (body as { name?: unknown }).name === 'string') {
    return (body as { name: string }).name.slice(0, MAX_TARGET)
  }
  return null
}

/** The stable `code` of an error answer (every error body has one, see errors.ts). */
function errorCodeOf(status: number, payload: unknown): string | null {
  if (status < 400 || typeof payload !== 'string' || payload.length > 65_536) return null
  try {
    const code = (JSON.parse(payload) as { code?: unknown }).code
    return typeof code === 'string' ? code.slice(0, 100) : null
  } catch {
    return null
  }
}

/**
 * Authentication, authorization and the audit trail for the whole app, by route metadata: each
 * route's policy is resolved once when it is added (its own `config.access`, else the table in
 * core/access/route-policy.ts); every request of the admin surface is authenticated, then checked
 * against it before any body is read; every mutating call there (allowed, denied or failed) is
 * recorded before its answer leaves. Returns the guard for routes outside the admin paths that
 * need a token (they call it as their own onRequest hook).
 */
export function installAccessControl(app: FastifyInstance, options: AccessControlOptions): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const routes: RouteAccess[] = []
  tables.set(app, routes)
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      const resolved = route.config?.access ? { policy: route.config.access, classified: true } : policyOf(method, route.url ?? route.path)
      routes.push({ method, url: route.url ?? route.path, ...resolved })
    }
    const method = [route.method].flat()[0]!
    const url = route.url ?? route.path
    const resolved = route.config?.access ? { policy: route.config.access, classified: true } : policyOf(method, url)
    // Audited: changes on the admin surface, and on the few classified routes outside it (the UI
    // login); never machine traffic (boot, discovery, FleetLock, whose URLs carry credentials).
    const audited = isMutating(method) && (options.isAdminPath(url) || resolved.classified)
    route.config = { ...route.config, accessPolicy: resolved.policy, audited }
  })

  const guard = async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.routeOptions.config?.accessPolicy?.access !== 'public') await options.authenticate(request, reply)
    await authorize(request, options.tenants)
  }
  app.addHook('onRequest', (request, reply, done) => {
    // Callback style: machine-facing requests pass without the cost of a promise per request.
    if (!options.isAdminPath(request.url)) return done()
    guard(request, reply).then(() => done(), done)
  })

  // onSend, not onResponse: the entry is written before the caller sees the answer, so an
  // acknowledged change is always on record; a failed write is logged, not turned into a 500.
  app.addHook('onSend', async (request, reply, payload) => {
    // An unknown path of the admin surface has no route config: attempts there are recorded too.
    const audited = request.routeOptions.config?.audited ?? (isMutating(request.method) && options.isAdminPath(request.url))
    if (!audited) return payload
    const principal = request.principal
    const summary = (request.routeOptions.schema as { summary?: string } | undefined)?.summary ?? `${request.method} ${request.routeOptions.url ?? ''}`
    try {
      await options.audit({
        at: new Date().toISOString(),
        principal: principal?.name ?? null,
        role: principal?.role ?? null,
        tenant: principal?.tenant ?? null,
        sourceIp: request.ip,
        method: request.method,
        route: request.routeOptions.url ?? '(no route)',
        target: targetOf(request),
        summary: summary.slice(0, MAX_SUMMARY),
        status: reply.statusCode,
        errorCode: errorCodeOf(reply.statusCode, payload),
        requestId: String(request.id),
      })
    } catch (error) {
      request.log.error({ err: error, route: request.routeOptions.url }, 'audit entry could not be written')
    }
    return payload
  })
  return guard
}
