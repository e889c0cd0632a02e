import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { SlipwayError } from '../../../../core/errors.ts'
import { registerWithAccess, type Principal, type TokenVerifier } from '../../auth.ts'
import { publicAccess } from '../../../../core/access/route-policy.ts'
import type { UiSessions } from '../../ui-session.ts'
import { loginBody, PAGE_BODIES, pageShell, UI_PAGES, type UiPageId } from './page-shell.ts'

/** The browser side: plain ES modules and CSS, served as they are (no build step). */
export const UI_ASSETS_DIR = fileURLToPath(new URL('../../ui/', import.meta.url))
/** yaml's own browser build, for the values field of the release form. */
const YAML_BROWSER_DIR = path.join(path.dirname(createRequire(import.meta.url).resolve('yaml')), '..', 'browser', 'dist')

/**
 * No inline script or style at all, and nothing from another origin: the pages load only the
 * engine's own modules and stylesheet, and talk only to the engine's API.
 */
export const UI_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ')

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export interface UiRouteOptions {
  verifyToken: TokenVerifier
  sessions: UiSessions
  /** Configured public base URL: an https one means the browser reaches the engine over TLS (a proxy in front). */
  publicUrl: string
}

/** One digest of every asset: it names the asset folder, so assets can be cached for good and change with the engine. */
function assetDigest(): string {
  const hash = createHash('sha256')
  for (const root of [UI_ASSETS_DIR, YAML_BROWSER_DIR]) {
    for (const entry of readdirSync(root, { recursive: true, withFileTypes: true }).filter((item) => item.isFile())) {
      const file = path.join(entry.parentPath, entry.name)
      hash.update(path.relative(root, file)).update('\0').update(readFileSync(file)).update('\0')
    }
  }
  return hash.digest('hex').slice(0, 16)
}

/** Only a path inside the UI is a place to return to after login (never another site). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/ui\/[A-Za-z0-9/_.?=&%-]*$/.test(next) && !next.includes('//') ? next : '/ui/machines'
}

/**
 * The web UI at /ui: a login page, one server-rendered shell per page whose module fills it from the
 * JSON API (with the session cookie; see ui-session.ts), and the static assets.
 */
export async function uiRoutes(app: FastifyInstance, { verifyToken, sessions, publicUrl }: UiRouteOptions): Promise<void> {
  const assets = `/ui/static/${assetDigest()}/`
  const secureCookie = (request: FastifyRequest) => request.protocol === 'https' || publicUrl.startsWith('https:')

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', UI_CONTENT_SECURITY_POLICY)
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'same-origin')
    reply.header('x-frame-options', 'DENY')
    return payload
  })
  // The login form posts urlencoded, as any HTML form does (only in this plugin: the API stays JSON).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })

  // Page shells and assets are public (they hold no data); the pages read the API with the session's token.
  const shell = { config: { access: publicAccess() }, schema: { hide: true } }
  await registerWithAccess(app, publicAccess(), fastifyStatic, { root: UI_ASSETS_DIR, prefix: assets, immutable: true, maxAge: '365d', index: false, decorateReply: false })
  await registerWithAccess(app, publicAccess(), fastifyStatic, { root: YAML_BROWSER_DIR, prefix: `${assets}vendor/yaml/`, immutable: true, maxAge: '365d', index: false, decorateReply: false })

  const html = (reply: FastifyReply, status: number, body: string) => reply.status(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(body)
  /** A form post from another site is refused: browsers send Origin on every POST. */
  const requireSameOrigin = (request: FastifyRequest) => {
    const origin = request.headers.origin
    if (origin !== undefined && origin !== 'null' && new URL(origin).host !== request.host) {
      throw new SlipwayError('forbidden', 'CROSS_SITE_REQUEST', 'this form may only be posted from the Slipway UI itself')
    }
  }
  const principalOf = async (request: FastifyRequest): Promise<Principal | undefined> => {
    const token = sessions.tokenOf(request)
    return token === undefined ? undefined : verifyToken(token)
  }
  const loginPage = (reply: FastifyReply, status: number, error: string | undefined, next: string) =>
    html(reply, status, pageShell({ assets, title: 'Sign in', body: loginBody(error, next) }))

  app.get('/ui', shell, (_request, reply) => reply.redirect('/ui/machines', 303))
  app.get('/ui/', shell, (_request, reply) => reply.redirect('/ui/machines', 303))

  app.get<{ Querystring: { next?: string } }>('/ui/login', shell, async (request, reply) => loginPage(reply, 200, undefined, safeNext(request.query.next)))

  // The login checks the token itself; attempts are audited.
  const audited = { config: { access: publicAccess({ audited: true }) }, schema: { hide: true } }
  app.post<{ Body: { token?: unknown; next?: unknown } | undefined }>('/ui/login', audited, async (request, reply) => {
    requireSameOrigin(request)
    const asJson = request.headers['content-type']?.startsWith('application/json') ?? false
    const token = typeof request.body?.token === 'string' ? request.body.token.trim() : ''
    const next = safeNext(request.body?.next)
    const principal = token ? await verifyToken(token) : undefined
    if (!principal) {
      request.log.info({ component: 'ui' }, 'ui login refused')
      if (asJson) throw new SlipwayError('unauthorized', 'TOKEN_INVALID', 'the token is not valid')
      return loginPage(reply, 401, token ? 'That token is not valid (mistyped, or revoked).' : 'Enter an API token.', next)
    }
    sessions.start(reply, token, secureCookie(request))
    request.log.info({ component: 'ui', principal: principal.name }, 'ui login')
    if (asJson) return reply.header('cache-control', 'no-store').send({ name: principal.name, role: principal.role })
    return reply.redirect(next, 303)
  })

  app.post('/ui/logout', audited, async (request, reply) => {
    requireSameOrigin(request)
    sessions.end(reply, secureCookie(request))
    return reply.redirect('/ui/login', 303)
  })

  const page = (id: UiPageId, title: string, data: (request: FastifyRequest) => Record<string, string> = () => ({})) => async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = await principalOf(request)
    if (!principal) return reply.redirect(`/ui/login?next=${encodeURIComponent(request.url)}`, 303)
    const current = id === 'machine' ? 'machines' : id
    return html(reply, 200, pageShell({ assets, title, script: `${id}.js`, current, principal, body: PAGE_BODIES[id](), data: { page: id, ...data(request) } }))
  }
  for (const { id, title } of UI_PAGES) app.get(`/ui/${id}`, shell, page(id, title))
  app.get<{ Params: { uuid: string } }>('/ui/machines/:uuid', shell, async (request, reply) => {
    if (!UUID.test(request.params.uuid)) throw new SlipwayError('not_found', 'MACHINE_NOT_FOUND', `"${request.params.uuid}" is not a machine UUID`)
    return page('machine', `Machine ${request.params.uuid}`, () => ({ uuid: request.params.uuid.toLowerCase() }))(request, reply)
  })
}
