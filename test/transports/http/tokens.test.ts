/**
 * The token API through a running engine (real SQLite file): tokens are shown once, listed without
 * secrets, work with their role at once, stop at once when revoked, and a tenant's admin manages its
 * own tenant's tokens only.
 */
import path from 'node:path'
import t from 'tap'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { tokenDigest } from '../../../src/core/access/token-service.ts'

t.test('tokens: created once, listed without secrets, revoked at once, scoped to a tenant', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const as = (headers: Record<string, string>, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

  const created = await as(auth, 'POST', '/api/v1/tokens', { name: 'ci', role: 'operator' })
  t.equal(created.statusCode, 201, created.body)
  const { token, ...shown } = created.json() as { token: string; name: string }
  t.match(token, /^slw_[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url, with the slw_ prefix')
  t.match(shown, { name: 'ci', role: 'operator', tenant: null, created_at: String, last_used_at: null })

  const listed = await as(auth, 'GET', '/api/v1/tokens')
  t.same((listed.json() as { name: string }[]).map((entry) => entry.name), ['ci', 'configured-admin'])
  for (const secret of [token, tokenDigest(token), ADMIN_TOKEN, tokenDigest(ADMIN_TOKEN)]) t.notOk(listed.body.includes(secret), 'the listing holds no token and no digest')
  t.same(Object.keys((listed.json() as object[])[0]!).sort(), ['created_at', 'last_used_at', 'name', 'role', 'tenant'])

  // The new token works with its role: operate yes, administer no.
  t.equal((await as(bearer(token), 'PUT', '/api/v1/locks/ci', { slots: 1 })).statusCode, 200)
  const denied = await as(bearer(token), 'GET', '/api/v1/tokens')
  t.match({ status: denied.statusCode, ...denied.json() }, { status: 403, code: 'FORBIDDEN', message: /needs the admin role/ })
  t.match((await as(auth, 'GET', '/api/v1/tokens')).json(), [{ name: 'ci', last_used_at: /^\d{4}-/ }, { name: 'configured-admin' }], 'its last use is recorded')

  // Bad input: 4xx with a code, nothing stored.
  for (const [payload, code] of [
    [{ name: 'ci', role: 'viewer' }, 'TOKEN_EXISTS'],
    [{ name: 'x', role: 'root' }, 'VALIDATION_FAILED'],
    [{ name: 'bad name', role: 'viewer' }, 'VALIDATION_FAILED'],
    [{ name: 'y', role: 'viewer', tenant: 'Not_A_Tenant' }, 'VALIDATION_FAILED'],
    [{ name: 'z', role: 'viewer', token: 'chosen-by-me' }, 'VALIDATION_FAILED'],
  ] as [object, string][]) {
    const answer = await as(auth, 'POST', '/api/v1/tokens', payload)
    t.match(answer.json(), { code }, `${JSON.stringify(payload)}: ${code}`)
  }
  t.equal(((await as(auth, 'GET', '/api/v1/tokens')).json() as unknown[]).length, 2, 'nothing was stored by the bad requests')

  // Revoked: the very next request is refused.
  t.equal((await as(auth, 'DELETE', '/api/v1/tokens/ci')).statusCode, 204)
  t.match((await as(bearer(token), 'GET', '/api/v1/locks')).json(), { statusCode: 401, code: 'TOKEN_INVALID' })
  t.match((await as(auth, 'DELETE', '/api/v1/tokens/ci')).json(), { statusCode: 404, code: 'TOKEN_NOT_FOUND' })
  t.match((await as(auth, 'DELETE', '/api/v1/tokens/configured-admin')).json(), { statusCode: 409, code: 'TOKEN_CONFIGURED' }, 'the bootstrap admin token stays')
  t.equal((await as(auth, 'GET', '/api/v1/locks')).statusCode, 200)

  // A tenant's admin: its own tenant's tokens only.
  const acme = (await as(auth, 'POST', '/api/v1/tokens', { name: 'acme-admin', role: 'admin', tenant: 'acme' })).json() as { token: string }
  await as(auth, 'POST', '/api/v1/tokens', { name: 'globex-ops', role: 'operator', tenant: 'globex' })
  const own = await as(bearer(acme.token), 'POST', '/api/v1/tokens', { name: 'acme-ci', role: 'operator' })
  t.match(own.json(), { name: 'acme-ci', tenant: 'acme' }, "a tenant admin's token is of its tenant")
  t.match((await as(bearer(acme.token), 'POST', '/api/v1/tokens', { name: 'escape', role: 'admin', tenant: 'globex' })).json(), { statusCode: 403, code: 'FORBIDDEN' })
  const escape = await as(bearer(acme.token), 'POST', '/api/v1/tokens', { name: 'escape', role: 'admin', tenant: null })
  t.match({ status: escape.statusCode, ...escape.json() }, { status: 201, tenant: 'acme' }, 'null is its own tenant, never the fleet')
  t.same(((await as(bearer(acme.token), 'GET', '/api/v1/tokens')).json() as { name: string }[]).map((entry) => entry.name), ['acme-admin', 'acme-ci', 'escape'])
  t.same((await as(bearer(acme.token), 'DELETE', '/api/v1/tokens/globex-ops')).json(), { statusCode: 404, code: 'TOKEN_NOT_FOUND', message: 'token "globex-ops" does not exist' }, "another tenant's token is as if absent")
  t.equal((await as(auth, 'GET', '/api/v1/tokens')).body.includes('globex-ops'), true, 'and it still exists')
  t.equal((await as(bearer(acme.token), 'DELETE', '/api/v1/tokens/acme-ci')).statusCode, 204)
})
