/**
 * Access is decided on the route the router matched, whatever spelling reached it. Every guarded
 * route of a real engine is sent over a real socket in every spelling a client or a proxy can
 * produce (percent-encoded letters, %2f, double slashes, dot segments, trailing slash, ;param, case,
 * backslashes, absolute-form request lines with any Host): with no token, a wrong token, and each
 * role and a tenant token where they are not allowed, nothing but 400/401/403/404 comes back and
 * nothing changes; where a role is allowed to read, a spelling the router accepts answers as the
 * canonical path does.
 */
import path from 'node:path'
import t from 'tap'
import { accessTable, type RouteAccess } from '../../../src/transports/http/auth.ts'
import type { TokenPolicy } from '../../../src/core/access/route-policy.ts'
import { removeTree, startTestEngine } from '../../helpers/engine.ts'
import { RawHttpClient, type RawAnswer } from '../../helpers/raw-http.ts'
import { spellingsOf } from '../../helpers/route-spellings.ts'
import { concrete, seedRouteObjects, snapshot } from '../../helpers/seeded-routes.ts'

type Level = 'read' | 'operate' | 'administer'
interface Principal {
  name: string
  headers: Record<string, string>
  /** null: no valid token at all. */
  role: 'viewer' | 'operator' | 'admin' | null
  tenant: string | null
}
const ROLE_LEVELS: Record<string, Level[]> = { viewer: ['read'], operator: ['read', 'operate'], admin: ['read', 'operate', 'administer'] }

const codeOf = (answer: RawAnswer): string | undefined => {
  try {
    return (JSON.parse(answer.body) as { code?: string }).code
  } catch {
    return undefined
  }
}

t.test('every guarded route in every spelling, over a real socket, for every principal', async (t) => {
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_HTTP_PORT: '0', SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const port = Number(new URL(await engine.start()).port)
  const app = engine.app
  const tokens = await seedRouteObjects(app)
  const principals: Principal[] = [
    { name: 'no token', headers: {}, role: null, tenant: null },
    { name: 'wrong token', headers: { authorization: 'Bearer slw_wrong-token-0123456789abcdefghij' }, role: null, tenant: null },
    { name: 'viewer', headers: { authorization: `Bearer ${tokens.viewer}` }, role: 'viewer', tenant: null },
    { name: 'operator', headers: { authorization: `Bearer ${tokens.operator}` }, role: 'operator', tenant: null },
    { name: 'tenant admin', headers: { authorization: `Bearer ${tokens.tenantAdmin}` }, role: 'admin', tenant: 'acme' },
    { name: 'admin', headers: { authorization: `Bearer ${tokens.admin}` }, role: 'admin', tenant: null },
  ]
  const routes = accessTable(app).filter((route): route is RouteAccess & { policy: TokenPolicy } => route.policy.access !== 'public' && route.policy.access !== 'machine' && route.method !== 'HEAD')
  t.ok(routes.length > 90, `${routes.length} guarded routes`)
  const permitted = (principal: Principal, policy: (typeof routes)[number]['policy']) =>
    principal.role !== null && ROLE_LEVELS[principal.role]!.includes(policy.access as Level) && !(policy.scope === 'fleet' && principal.tenant !== null)

  const client = new RawHttpClient(port)
  t.teardown(() => client.close())
  const before = await snapshot(engine.store)
  const leaks: string[] = []
  const inconsistent: string[] = []
  const sent: Record<string, number> = {}
  const refused: Record<string, number> = {}
  for (const route of routes) {
    const mutating = route.method !== 'GET'
    const spellings = spellingsOf(concrete(route.url))
    const canonical = new Map<string, number>()
    for (const spelling of spellings) {
      for (const principal of principals) {
        const allowed = permitted(principal, route.policy)
        // An allowed change would change the seeded objects: allowed principals only read.
        if (allowed && mutating) continue
        const headers = { ...principal.headers, host: spelling.host ?? 'localhost', ...(mutating ? { 'content-type': 'application/json' } : {}) }
        const answer = await client.request(route.method, spelling.target, headers, mutating ? '{}' : undefined)
        sent[principal.name] = (sent[principal.name] ?? 0) + 1
        const what = `${principal.name} ${route.method} ${spelling.target} (${route.url}, ${spelling.name}): ${answer.status} ${codeOf(answer) ?? answer.body.slice(0, 60)}`
        if (!allowed) {
          if ([400, 401, 403, 404].includes(answer.status)) refused[principal.name] = (refused[principal.name] ?? 0) + 1
          else leaks.push(what)
          continue
        }
        if (spelling.name === 'canonical') canonical.set(principal.name, answer.status)
        // Another spelling may reach no route, or the route with another parameter value (`seeded;x=1`): a 404 or 400.
        else if (answer.status !== canonical.get(principal.name) && answer.status !== 404 && answer.status !== 400) {
          inconsistent.push(`${what} (canonical ${canonical.get(principal.name)})`)
        }
      }
    }
  }
  const total = Object.values(sent).reduce((sum, count) => sum + count, 0)
  t.comment(`${total} requests: ${Object.entries(sent).map(([name, count]) => `${name} ${count} (refused ${refused[name] ?? 0})`).join(', ')}`)
  t.same(leaks.slice(0, 40), [], `${leaks.length} answers other than 400/401/403/404 to a principal without the right`)
  t.same(inconsistent.slice(0, 40), [], `${inconsistent.length} allowed reads answered differently from the canonical path`)
  t.same(await snapshot(engine.store), before, 'nothing changed')
})
