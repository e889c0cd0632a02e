/**
 * The audit log through a running engine (real SQLite file): every mutating call on the admin surface
 * is recorded (allowed, denied or failed) with who, what, when and the result, before its answer
 * leaves; reads are not; secrets never reach a row; the log pages by cursor and filters.
 */
import path from 'node:path'
import t from 'tap'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

interface Entry {
  id: number
  at: string
  principal: string | null
  role: string | null
  tenant: string | null
  method: string
  route: string
  target: string | null
  summary: string
  status: number
  error_code: string | null
}

t.test('audit log: who, what, when, result; denials and failures too; never a secret', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const as = (headers: Record<string, string>, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  const audit = async (query = '') => (await as(auth, 'GET', `/api/v1/audit${query}`)).json() as { entries: Entry[]; next_cursor: string | null }

  const started = new Date().toISOString()
  const viewer = (await as(auth, 'POST', '/api/v1/tokens', { name: 'viewer-1', role: 'viewer' })).json() as { token: string }
  const tenantAdmin = (await as(auth, 'POST', '/api/v1/tokens', { name: 'acme-admin', role: 'admin', tenant: 'acme' })).json() as { token: string }
  const clusterCredential = 'cluster-bearer-credential-0123456789abcdef'
  t.equal((await as(auth, 'POST', '/api/v1/clusters', { name: 'eu-1', server: 'https://127.0.0.1:9', credentials: { token: clusterCredential } })).statusCode, 201)
  const denied = await as(bearer(viewer.token), 'DELETE', '/api/v1/clusters/eu-1')
  t.equal(denied.statusCode, 403)
  t.equal((await as({}, 'POST', '/api/v1/flavors', { name: 'x' })).statusCode, 401)
  t.equal((await as(auth, 'POST', '/api/v1/flavors', { name: 'Bad Name' })).statusCode, 400)
  t.equal((await as(bearer(tenantAdmin.token), 'POST', '/api/v1/tokens', { name: 'acme-ci', role: 'operator' })).statusCode, 201)
  t.equal((await as(auth, 'GET', '/api/v1/clusters')).statusCode, 200)

  // Written before the answer left: no waiting needed.
  const { entries } = await audit()
  const rows = entries.map((entry) => `${entry.principal ?? '-'} ${entry.method} ${entry.route} ${entry.target ?? '-'} ${entry.status} ${entry.error_code ?? '-'}`)
  t.same(rows, [
    // Refused for want of a token (before its body was read: no target): counted, and written as a summary when the log is read.
    '- POST /api/v1/flavors - 401 TOKEN_REQUIRED',
    'acme-admin POST /api/v1/tokens acme-ci 201 -',
    'configured-admin POST /api/v1/flavors Bad Name 400 VALIDATION_FAILED',
    'viewer-1 DELETE /api/v1/clusters/:name eu-1 403 FORBIDDEN',
    'configured-admin POST /api/v1/clusters eu-1 201 -',
    'configured-admin POST /api/v1/tokens acme-admin 201 -',
    'configured-admin POST /api/v1/tokens viewer-1 201 -',
  ], 'newest first; reads are not recorded')
  t.match(entries[3], { role: 'viewer', tenant: null, summary: /Remove a cluster/, at: /^\d{4}-\d\d-\d\dT/ })
  t.match(entries[1], { role: 'admin', tenant: 'acme' })
  t.match(entries[0], { principal: null, summary: /^1 unauthenticated call refused \(401\) at \d{4}-/ })
  t.equal((await as(auth, 'GET', '/api/v1/clusters/eu-1')).statusCode, 200, 'the denied delete changed nothing')

  // Secrets: neither tokens, nor their digests, nor credentials in any row.
  const everything = JSON.stringify((await engine.store.selectFrom('audit_log').selectAll().execute()))
  for (const secret of [viewer.token, tenantAdmin.token, ADMIN_TOKEN, clusterCredential]) t.notOk(everything.includes(secret), 'no secret in the audit rows')

  // Filters and pages.
  t.same((await audit('?principal=viewer-1')).entries.map((entry) => entry.route), ['/api/v1/clusters/:name'])
  t.equal((await audit(`?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).entries.length, 0)
  t.equal((await audit(`?since=${encodeURIComponent(started)}`)).entries.length, 7)
  const first = await audit('?limit=3')
  t.equal(first.entries.length, 3)
  const second = await audit(`?limit=3&cursor=${first.next_cursor}`)
  const third = await audit(`?limit=3&cursor=${second.next_cursor}`)
  t.same([...first.entries, ...second.entries, ...third.entries].map((entry) => entry.id), entries.map((entry) => entry.id), 'the pages join up')
  t.equal(third.next_cursor, null)
  t.match((await as(auth, 'GET', '/api/v1/audit?since=yesterday')).json(), { statusCode: 400, code: 'INVALID_AUDIT_QUERY' })
  t.match((await as(auth, 'GET', '/api/v1/audit?limit=0')).json(), { statusCode: 400, code: 'INVALID_AUDIT_QUERY' })

  // A tenant's admin reads its tenant's entries only; a viewer none.
  const tenantView = (await as(bearer(tenantAdmin.token), 'GET', '/api/v1/audit')).json() as { entries: Entry[] }
  t.same(tenantView.entries.map((entry) => `${entry.principal} ${entry.target}`), ['acme-admin acme-ci'])
  t.match((await as(bearer(viewer.token), 'GET', '/api/v1/audit')).json(), { statusCode: 403, code: 'FORBIDDEN', message: /needs the admin role/ })
})
