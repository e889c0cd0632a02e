/**
 * The web UI's HTTP surface without a browser: login and logout, the session cookie as the API
 * accepts it (same verifier, CSRF header on changes), the pages' redirects, the headers that keep
 * assets cacheable and pages free of inline script, the machine API fields the UI shows, and the
 * power column and section with the BMC answers they read (a Redfish BMC double) and the power change
 * they make.
 */
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { UiSessions } from '../../../src/transports/http/ui-session.ts'
import { SecretBox } from '../../../src/storage/secret-box.ts'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { reportInstalled, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { RedfishBmc } from '../../fakes/redfish-bmc.ts'

const form = (fields: Record<string, string>) => ({ payload: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
const sessionOf = (setCookie: string | string[] | undefined) => String(setCookie).split(';')[0]!

async function engine(t: { teardown(fn: () => unknown): void }) {
  const started = await startTestEngine()
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  return { app: started.engine.app as FastifyInstance, keyFile: started.config.secrets.keyFile }
}

async function login(app: FastifyInstance, token = ADMIN_TOKEN) {
  const response = await app.inject({ method: 'POST', url: '/ui/login', ...form({ token, next: '/ui/releases' }) })
  return { response, cookie: sessionOf(response.headers['set-cookie']) }
}

t.test('login, session cookie, CSRF header, logout', async (t) => {
  const { app } = await engine(t)

  const page = await app.inject({ method: 'GET', url: '/ui/machines' })
  t.equal(page.statusCode, 303, 'a page without a session redirects')
  t.equal(page.headers.location, '/ui/login?next=%2Fui%2Fmachines')
  t.equal((await app.inject({ method: 'GET', url: '/ui' })).headers.location, '/ui/machines')

  const loginPage = await app.inject({ method: 'GET', url: '/ui/login?next=/ui/clusters' })
  t.equal(loginPage.statusCode, 200)
  t.match(loginPage.body, /<label for="token">API token<\/label>/)
  t.match(loginPage.body, /name="next" value="\/ui\/clusters"/)
  t.match((await app.inject({ method: 'GET', url: '/ui/login?next=https://evil.example/' })).body, /name="next" value="\/ui\/machines"/, 'never a redirect to another site')

  const wrong = await login(app, 'not-the-admin-token-at-all')
  t.equal(wrong.response.statusCode, 401, 'a wrong token: 401')
  t.match(wrong.response.body, /role="alert"[^>]*>That token is not valid/)
  t.notOk(wrong.response.headers['set-cookie'], 'and no cookie')
  const wrongJson = await app.inject({ method: 'POST', url: '/ui/login', payload: { token: 'not-the-admin-token-at-all' } })
  t.match({ status: wrongJson.statusCode, ...wrongJson.json() }, { status: 401, code: 'TOKEN_INVALID' })

  const crossSite = await app.inject({ method: 'POST', url: '/ui/login', ...form({ token: ADMIN_TOKEN }), headers: { ...form({}).headers, origin: 'https://evil.example' } })
  t.match({ status: crossSite.statusCode, ...crossSite.json() }, { status: 403, code: 'CROSS_SITE_REQUEST' }, 'a login form posted from another site')

  const { response, cookie } = await login(app)
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/ui/releases', 'back to where the user was going')
  const setCookie = String(response.headers['set-cookie'])
  t.match(setCookie, /^slipway_session=[A-Za-z0-9_-]+; Max-Age=43200; Path=\/; HttpOnly; SameSite=Strict$/, 'HttpOnly, SameSite=Strict, Path=/, 12 h')
  t.notOk(setCookie.includes(ADMIN_TOKEN), 'the token is sealed, not in clear')

  const machines = await app.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie } })
  t.equal(machines.statusCode, 200, 'the API accepts the session cookie for reads')
  const noHeader = await app.inject({ method: 'POST', url: '/api/v1/clusters/health-sweep', headers: { cookie } })
  t.match({ status: noHeader.statusCode, ...noHeader.json() }, { status: 403, code: 'CSRF_HEADER_REQUIRED' }, 'a change by cookie without X-Slipway-UI')
  const withHeader = await app.inject({ method: 'POST', url: '/api/v1/clusters/health-sweep', headers: { cookie, 'x-slipway-ui': '1' } })
  t.equal(withHeader.statusCode, 200, withHeader.body)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/clusters/health-sweep', headers: auth })).statusCode, 200, 'a bearer token needs no such header')

  const forged = `slipway_session=${cookie.split('=')[1]!.slice(0, -4)}AAAA`
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie: forged } })).statusCode, 401, 'an altered cookie is no session')
  t.equal((await app.inject({ method: 'GET', url: '/ui/machines', headers: { cookie: forged } })).statusCode, 303)

  const shell = await app.inject({ method: 'GET', url: '/ui/machines', headers: { cookie } })
  t.equal(shell.statusCode, 200)
  t.match(shell.body, /<span class="who">configured-admin <span class="role">admin<\/span>/, 'who is signed in')
  t.match(shell.body, /<th scope="col">Cluster<\/th>/)
  t.equal(shell.headers['cache-control'], 'no-store')

  const logout = await app.inject({ method: 'POST', url: '/ui/logout', headers: { cookie } })
  t.equal(logout.statusCode, 303)
  t.equal(logout.headers.location, '/ui/login')
  t.match(String(logout.headers['set-cookie']), /^slipway_session=; Max-Age=0; Path=\/; HttpOnly; SameSite=Strict; Expires=Thu, 01 Jan 1970/, 'the cookie is cleared')
})

t.test('a session ends with its expiry and never opens under another context or key', async (t) => {
  const { keyFile } = await engine(t)
  let now = 1_000_000
  const box = SecretBox.fromKeyFile(keyFile)
  const sessions = new UiSessions(box, () => now)
  const sealed = sessions.seal(ADMIN_TOKEN)
  t.equal(sessions.open(sealed), ADMIN_TOKEN)
  now += sessions.ttlMs
  t.equal(sessions.open(sealed), undefined, 'expired after 12 h')
  const otherContext = box.seal(JSON.stringify({ token: ADMIN_TOKEN, expiresAt: now + 1000 }), 'cluster_pki:alpha').toString('base64url')
  t.equal(sessions.open(otherContext), undefined, 'a value sealed for something else')
  t.equal(new UiSessions(SecretBox.fromKey(Buffer.alloc(32, 7)), () => 0).open(sealed), undefined, 'another engine key')
  t.equal(sessions.open('short'), undefined)
})

t.test('pages and assets: strict CSP, cacheable assets, no inline script', async (t) => {
  const { app } = await engine(t)
  const { cookie } = await login(app)
  for (const page of ['machines', 'clusters', 'releases', 'rollouts', 'machines/5e110000-0000-4000-8000-000000000001']) {
    const response = await app.inject({ method: 'GET', url: `/ui/${page}`, headers: { cookie } })
    t.equal(response.statusCode, 200, page)
    const csp = String(response.headers['content-security-policy'])
    t.match(csp, /script-src 'self'(;|$)/, `${page}: scripts only from the engine`)
    t.notMatch(csp, /unsafe-inline|unsafe-eval|https?:/, `${page}: no inline script or style, no other origin`)
    t.match(csp, /frame-ancestors 'none'/)
    t.equal(response.headers['x-content-type-options'], 'nosniff')
    t.notMatch(response.body, /<script(?![^>]*\bsrc=)[^>]*>/, `${page}: every script is a file`)
    t.notMatch(response.body, /\sstyle=|\son[a-z]+=/i, `${page}: no inline style or handler`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/ui/machines/not-a-uuid', headers: { cookie } })).statusCode, 404)

  const clusters = (await app.inject({ method: 'GET', url: '/ui/clusters', headers: { cookie } })).body
  t.match(clusters, /<path class="land" d="M[\d. LMZ]{10000,}"\/>/, 'the land outline drawn on the server')
  const assets = /href="(\/ui\/static\/[0-9a-f]{16}\/)app\.css"/.exec(clusters)![1]!
  for (const [file, type] of [['app.css', /text\/css/], ['lib.js', /javascript/], ['pages/releases.js', /javascript/], ['vendor/yaml/index.js', /javascript/]] as const) {
    const asset = await app.inject({ method: 'GET', url: `${assets}${file}` })
    t.equal(asset.statusCode, 200, file)
    t.match(asset.headers['content-type'], type)
    t.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable', `${file}: cached for good (its folder name changes with its content)`)
    t.ok(asset.headers.etag)
  }
  t.equal((await app.inject({ method: 'GET', url: '/ui/static/0000000000000000/app.css' })).statusCode, 404, 'only the current asset folder')
  t.equal((await app.inject({ method: 'GET', url: `${assets}../../../package.json` })).statusCode, 404)
})

t.test('the machine API shows cluster, role, drift and what a machine is served, secrets redacted', async (t) => {
  const { app } = await engine(t)
  const uuidOf = (n: number) => `4c4c4544-0042-3510-8050-${String(n).padStart(12, '0')}`
  const macOf = (n: number) => `52:54:00:00:0f:${n.toString(16).padStart(2, '0')}`
  const admin = (method: 'GET' | 'POST', url: string, payload?: unknown) => app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })
  await admin('POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_min: 0, nodes_max: 1 })
  await admin('POST', '/api/v1/clusters', { name: 'edge', flavor: 'one' })
  for (const n of [1, 2, 3]) await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: `10.2.0.${n}` }] } })
  await admin('POST', '/api/v1/scheduler/run')
  // Machine 1 installs as the discovery agent does: its slot, its role config, its report.
  const member = { uuid: uuidOf(1), mac: macOf(1), ip: '10.2.0.1' }
  const served = await takeSlotAndFetchConfig(app, member)
  await reportInstalled(app, member)

  const listed = (await admin('GET', '/api/v1/machines')).json() as { uuid: string; cluster: unknown; drift: unknown }[]
  t.same(listed.map((machine) => [machine.cluster, machine.drift]), [
    [{ name: 'edge', role: 'control-plane', hostname: 'edge-cp-1' }, null],
    [{ name: 'edge', role: 'node', hostname: 'edge-node-1' }, null],
    [null, null],
  ])
  t.same(((await admin('GET', '/api/v1/machines?cluster=edge')).json() as { uuid: string }[]).map((machine) => machine.uuid), [uuidOf(1), uuidOf(2)], '?cluster= filters')

  const boot = await admin('GET', `/api/v1/machines/${uuidOf(1)}/boot`)
  t.equal(boot.statusCode, 200, boot.body)
  const answer = boot.json() as { ipxe: { url: string; body: string }; ignition: { url: string; body: string; error: unknown }; redacted: string[] }
  t.match(answer.ipxe, { url: `http://localhost:80/ipxe?uuid=${uuidOf(1)}&mac=52-54-00-00-0f-01`, body: /^#!ipxe/ })
  t.equal(answer.ignition.error, null)
  t.notMatch(answer.ignition.body, /PRIVATE KEY-----%0A[A-Za-z0-9]/, 'no private key material')
  // Kubeconfigs carry their client keys base64-encoded, not as PEM.
  const kubeconfigKeys = [...decodeURIComponent(answer.ignition.body).matchAll(/client-key-data: (\S+)/g)].map((match) => match[1])
  t.ok(kubeconfigKeys.length >= 5, `${kubeconfigKeys.length} kubeconfigs shown`)
  t.ok(kubeconfigKeys.every((value) => value === 'REDACTED-PRIVATE-KEY'), 'no kubeconfig client key')
  t.notMatch(answer.ignition.body, /[a-z0-9]{6}\.[a-z0-9]{16}/, 'no bootstrap token')
  t.ok(answer.redacted.length >= 5 && answer.redacted.every((at) => /^storage\.files\[\d+\]\.contents\.source$/.test(at)), `the files holding secrets: ${answer.redacted.join(', ')}`)
  const credential = /SLIPWAY_MACHINE_CREDENTIAL%3D([^%]+)/.exec(served.body)?.[1]
  t.ok(credential, 'the machine itself gets its credential')
  t.notOk(answer.ignition.body.includes(credential!), 'the API does not show it')
  // Apart from the redacted values, the same config: same files, units and users, in the same order.
  const shape = (body: string) => JSON.stringify(JSON.parse(body), (key, value) => (key === 'source' ? undefined : value))
  t.equal(shape(answer.ignition.body), shape(served.body), 'otherwise exactly what the machine is served')

  const waiting = (await admin('GET', `/api/v1/machines/${uuidOf(3)}/boot`)).json()
  t.match(waiting, { ipxe: { body: /^#!ipxe/ }, ignition: { error: null }, redacted: [] }, 'a machine in discovery: its discovery config, nothing secret')
  t.equal((await admin('GET', `/api/v1/machines/${uuidOf(9)}/boot`)).json().code, 'MACHINE_NOT_FOUND')
})

t.test('power: the machines page has a Power column, a machine page a Power section; what they read and change answers through the session, never a password', async (t) => {
  const { app } = await engine(t)
  const { cookie } = await login(app)
  const uuid = '5e110000-0000-4000-8000-0000000000b1'
  const machinesShell = (await app.inject({ method: 'GET', url: '/ui/machines', headers: { cookie } })).body
  t.match(machinesShell, /<th scope="col">State<\/th><th scope="col">Power<\/th>/, 'the machines table has a Power column beside the state')
  const machineShell = (await app.inject({ method: 'GET', url: `/ui/machines/${uuid}`, headers: { cookie } })).body
  t.match(machineShell, /<section aria-labelledby="power-heading"><h2 id="power-heading">Power<\/h2>[\s\S]*<dl id="machine-power" class="facts">/, 'a machine page has a Power section')
  t.match(machineShell, /<p id="power-error" class="error" role="alert" hidden><\/p>/, 'where a refused power action is reported')

  // A Redfish BMC double with a hostile user name: the API answers it as JSON text (the pages put it in as text).
  const pki = await x509ClusterPkiIssuer.issue('ui-bmc', new Date())
  const hostileUser = '<img src=x onerror=alert(1)>'
  const bmc = await RedfishBmc.start({ ...(await servingCertificate(pki)), username: hostileUser, password: 'Ui-bmc-secret-4417' })
  t.teardown(() => bmc.close())
  const set = await app.inject({ method: 'PUT', url: `/api/v1/machines/${uuid}/bmc`, headers: auth, payload: { protocol: 'redfish', host: '127.0.0.1', port: bmc.port, username: hostileUser, password: bmc.password, redfish: { ca_bundle: pki.kubernetesCa.certificatePem } } })
  t.equal(set.statusCode, 200, set.body)

  const listed = await app.inject({ method: 'GET', url: '/api/v1/bmcs', headers: { cookie } })
  t.equal(listed.statusCode, 200, 'the machines page reads every BMC in one request with the session cookie')
  t.match(listed.json(), [{ machine_uuid: uuid, protocol: 'redfish', host: '127.0.0.1', port: bmc.port, username: hostileUser, power: 'unknown', last_error: null }])
  const one = await app.inject({ method: 'GET', url: `/api/v1/machines/${uuid}/bmc`, headers: { cookie } })
  t.equal(one.statusCode, 200, 'a machine page reads its BMC')
  for (const body of [listed.body, one.body]) t.notOk(body.includes(bmc.password), 'never the password')
  t.match((await app.inject({ method: 'GET', url: '/api/v1/machines/5e110000-0000-4000-8000-0000000000b2/bmc', headers: { cookie } })).json(), { statusCode: 404, code: 'BMC_NOT_CONFIGURED' }, 'a machine without one: the page says so')

  const power = (headers: Record<string, string>, action = 'on') => app.inject({ method: 'POST', url: `/api/v1/machines/${uuid}/power`, headers, payload: { action } })
  t.match((await power({ cookie })).json(), { statusCode: 403, code: 'CSRF_HEADER_REQUIRED' }, 'a power change by cookie without the UI header')
  t.equal(bmc.machine.power, 'Off', 'and the machine was not touched')
  const viewerToken = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth, payload: { name: 'ui-viewer', role: 'viewer' } })).json().token as string
  const viewer = await login(app, viewerToken)
  t.match((await power({ cookie: viewer.cookie, 'x-slipway-ui': '1' })).json(), { statusCode: 403 }, "a viewer's session is refused (the page shows it beside the buttons)")
  t.equal(bmc.machine.power, 'Off')
  const on = await power({ cookie, 'x-slipway-ui': '1' })
  t.equal(on.statusCode, 200, on.body)
  t.match(on.json(), { power: 'on' })
  t.equal(bmc.machine.power, 'On', "the page's Power on reaches the machine")
  t.match((await app.inject({ method: 'GET', url: '/api/v1/bmcs', headers: { cookie } })).json(), [{ power: 'on', power_checked_at: /^\d{4}-/ }], 'and the list shows it at the next refresh')
})
