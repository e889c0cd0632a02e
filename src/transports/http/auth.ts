import type { FastifyInstance, FastifyPluginAsync, FastifyPluginCallback, FastifyPluginOptions, FastifyReply, FastifyRequest } from 'fastify'
import type { AuditEntry } from '../../core/access/audit-entry.ts'
import { requireLevel, type Principal } from '../../core/access/roles.ts'
import { isAudited, isMutating, type MachinePolicy, type RoutePolicy } from '../../core/access/route-policy.ts'
import type { MachineCredentials } from '../../core/lifecycle/machine-credentials.ts'
import { isUnderGuardedPrefix } from './request-path.ts'
import { TenantView, type TenantDirectory } from '../../core/access/tenancy.ts'
import { forbidden, SlipwayError } from '../../core/errors.ts'

/** The identity behind a bearer token: name, role and tenant (null: the whole fleet). */
export type { Principal }

/** Resolves a presented token to a principal, or undefined; implemented over the token store. */
export type TokenVerifier = (token: string) => Promise<Principal | undefined>

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
    /** What the principal may see; set on every authorized request of a token route. */
    tenancy?: TenantView
    /** The machine a machine-credential route acts for (its verified credential's). */
    machineUuid?: string
  }
  interface FastifyContextConfig {
    /** What the route needs: every route declares it where it is registered (core/access/route-policy.ts). */
    access?: RoutePolicy
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

/** A route with the access it declared (listed by `accessTable`, for the authorization tests and docs). */
export interface RouteAccess {
  method: string
  url: string
  policy: RoutePolicy
}

/** One audited call, as the audit hook hands it over (storage/repositories/audit-log.ts keeps it). */
export type AuditEvent = AuditEntry

export interface AccessControlOptions {
  /** Authenticates (sets request.principal) or throws 401: requireBearerToken's hook. */
  authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  /** Verifies the machine credentials of `machine` routes. */
  machineCredentials: MachineCredentials
  /**
   * Path prefixes (lower case, no trailing slash) where a request that matches no route still needs a
   * token: without one, even an unknown path there says nothing but 401.
   */
  guardedPrefixes: readonly string[]
  tenants: TenantDirectory
  audit: (event: AuditEvent) => Promise<void>
}

interface DeclaredRoute {
  method: string
  url: string
  /** The options object fastify builds the route from: later onRoute hooks (plugin defaults) may still set its config. */
  options: { config?: { access?: RoutePolicy } }
}

const declarations = new WeakMap<FastifyInstance, DeclaredRoute[]>()

/** Every route with its declared access (after the app is ready). */
export function accessTable(app: FastifyInstance): readonly RouteAccess[] {
  return (declarations.get(app) ?? []).map((route) => ({ method: route.method, url: route.url, policy: route.options.config!.access! }))
}

/**
 * A plugin whose routes the engine does not register itself (Swagger UI, static files) gets one
 * declaration for all of them, made where it is registered. The plugin is registered inside a context
 * of its own (so the declaration reaches its routes only), with its options untouched (`prefix` too).
 */
export async function registerWithAccess<Options extends FastifyPluginOptions>(
  app: FastifyInstance,
  policy: RoutePolicy,
  plugin: FastifyPluginCallback<Options> | FastifyPluginAsync<Options>,
  options: Options,
): Promise<void> {
  await app.register(async (context) => {
    context.addHook('onRoute', (route) => {
      if (!route.config?.access) route.config = { ...route.config, access: policy }
    })
    await context.register(plugin, options)
  })
}

/** Checks the request's principal against its route's policy; sets request.tenancy. Throws 403, or 404 for another tenant's object. */
async function authorize(request: FastifyRequest, policy: Exclude<RoutePolicy, { access: 'public' | 'machine' }>, tenants: TenantDirectory): Promise<void> {
  const principal = request.principal!
  requireLevel(principal, policy.access)
  if (policy.scope === 'fleet' && principal.tenant !== null) {
    throw forbidden('FORBIDDEN', `this call acts on the whole fleet and needs a token without a tenant; token "${principal.name}" belongs to tenant "${principal.tenant}"`, { tenant: principal.tenant })
  }
  const tenancy = new TenantView(principal.tenant, tenants)
  request.tenancy = tenancy
  if (policy.owner && principal.tenant !== null) await tenancy.require(policy.owner(request.params as Record<string, string>, (request.query ?? {}) as Record<string, unknown>))
}

/** The request's tenant view; only token routes have one. */
export function tenancyOf(request: FastifyRequest): TenantView {
  if (!request.tenancy) throw new Error(`route ${request.method} ${request.routeOptions.url} is not a token route`)
  return request.tenancy
}

/** The machine a `machine` route acts for. */
export function machineOf(request: FastifyRequest): string {
  if (!request.machineUuid) throw new Error(`route ${request.method} ${request.routeOptions.url} is not a machine-credential route`)
  return request.machineUuid
}

const presentedMachineCredential = (request: FastifyRequest, policy: MachinePolicy): string | undefined => {
  if (policy.credentialIn === 'path') return (request.params as { credential?: string }).credential
  return /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1]
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
 * Authentication, authorization and the audit trail for the whole app, decided on the route the
 * router matched, never on the raw URL: whatever spelling reached a route (percent-encoded letters,
 * absolute form), its declared policy applies. A request that matched no route needs a token when
 * its path, read as leniently as any proxy or router might, falls under a guarded prefix. The app
 * does not become ready while a route declares no access. Every audited call (changes needing a
 * token, and the few public ones that ask for it) is recorded before its answer leaves.
 */
export function installAccessControl(app: FastifyInstance, options: AccessControlOptions): void {
  const routes: DeclaredRoute[] = []
  declarations.set(app, routes)
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url ?? route.path, options: route })
  })
  app.addHook('onReady', async () => {
    const undeclared = routes.filter((route) => !route.options.config?.access).map((route) => `${route.method} ${route.url}`)
    if (undeclared.length) throw new Error(`routes without an access declaration (config.access, core/access/route-policy.ts): ${undeclared.join(', ')}`)
  })

  const guard = async (request: FastifyRequest, reply: FastifyReply, policy: RoutePolicy | undefined): Promise<void> => {
    // Unmatched, under a guarded prefix: authenticated, then the not-found handler answers.
    if (!policy) return options.authenticate(request, reply)
    if (policy.access === 'public') return
    if (policy.access === 'machine') {
      const credential = presentedMachineCredential(request, policy)
      const uuid = credential ? await options.machineCredentials.verify(credential) : undefined
      if (!uuid) {
        throw new SlipwayError('unauthorized', 'MACHINE_CREDENTIAL_REQUIRED', policy.credentialIn === 'path'
          ? 'this base URL does not carry a valid machine credential; use the one in the machine\'s Ignition'
          : 'this endpoint needs "Authorization: Bearer <machine credential>" (SLIPWAY_MACHINE_CREDENTIAL in the machine\'s /etc/slipway/lifecycle.env)')
      }
      request.machineUuid = uuid
      return
    }
    await options.authenticate(request, reply)
    await authorize(request, policy, options.tenants)
  }
  app.addHook('onRequest', (request, reply, done) => {
    let policy: RoutePolicy | undefined
    if (request.is404) {
      if (!isUnderGuardedPrefix(request.url, options.guardedPrefixes)) return done()
    } else {
      // Fails closed: the app does not start with an undeclared route, and one slipping through needs an admin.
      policy = request.routeOptions.config.access ?? { access: 'administer', scope: 'fleet' }
      // Callback style: machine-facing requests pass without the cost of a promise per request.
      if (policy.access === 'public') return done()
    }
    guard(request, reply, policy).then(() => done(), done)
  })

  // onSend, not onResponse: the entry is written before the caller sees the answer, so an
  // acknowledged change is always on record; a failed write is logged, not turned into a 500.
  app.addHook('onSend', async (request, reply, payload) => {
    const policy = request.is404 ? undefined : request.routeOptions.config.access
    // Changes attempted on an unknown path under a guarded prefix are recorded too.
    const audited = policy ? isAudited(request.method, policy) : isMutating(request.method) && isUnderGuardedPrefix(request.url, options.guardedPrefixes)
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
}
