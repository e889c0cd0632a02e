/**
 * Authorization of every route through a real engine (real SQLite file): the route table is taken
 * from the app itself (auth.ts accessTable, filled by an onRoute hook; the app does not start with a
 * route that declares no access). For every route of the admin surface: no token 401; a viewer reads but
 * each change answers 403 and changes nothing; an operator operates but does not administer; an
 * admin does everything; a tenant token is refused the fleet's routes. Then two tenants with
 * Kubernetes API server doubles (test/fakes/kube-cluster.ts) and the real helm: each sees and acts
 * on its own clusters, machines and releases only, and a release fans out within its tenant.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { accessTable, type RouteAccess } from '../../../src/transports/http/auth.ts'
import type { TokenPolicy } from '../../../src/core/access/route-policy.ts'
import { concrete, createToken, seedRouteObjects, snapshot } from '../../helpers/seeded-routes.ts'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { FakeKubeCluster } from '../../fakes/kube-cluster.ts'
import { multipartBody, packageChart, webChart } from '../../helpers/charts.ts'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { helmPath } from '../../helpers/tools.ts'
import { sleep } from '../../helpers/wait.ts'

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/**
 * Every route that needs no API token, by what it serves: a route declared `public` or `machine`
 * that is not listed here fails the test (a change in access is a decision, not an accident).
 */
const WITHOUT_API_TOKEN: Record<string, 'public' | 'machine'> = {
  // Booting machines: iPXE, Ignition, metadata, assets; no token by design (the PXE chain has none).
  'GET /boot.ipxe': 'public',
  'GET /boot.ipxe.0': 'public',
  'GET /ipxe': 'public',
  'GET /ignition': 'public',
  'GET /generic': 'public',
  'GET /metadata': 'public',
  'GET /assets/*': 'public',
  'GET /pxe/*': 'public',
  'POST /discovery': 'public',
  'POST /install-authorization': 'public',
  'GET /install-authorization': 'public',
  'POST /lifecycle/install/success': 'public',
  'POST /lifecycle/install/fail': 'public',
  'POST /lifecycle/wipe/success': 'public',
  'POST /lifecycle/wipe/fail': 'public',
  // Machine credential (each machine its own, in the path or the header), not an API token.
  'POST /lifecycle/ignition': 'machine',
  'POST /lifecycle/bootstrap': 'machine',
  'GET /lifecycle/rolling': 'machine',
  'POST /lifecycle/rolling/lock': 'machine',
  'POST /lifecycle/rolling/unlock': 'machine',
  'POST /lifecycle/rolling/refusal': 'machine',
  'POST /fleetlock/:credential/v1/pre-reboot': 'machine',
  'POST /fleetlock/:credential/v1/steady-state': 'machine',
  'POST /fleetlock/v1/pre-reboot': 'public',
  'POST /fleetlock/v1/steady-state': 'public',
  'GET /': 'public',
  'GET /healthz': 'public',
  'GET /metrics': 'public',
  'GET /apidocs': 'public',
  'GET /apidocs/': 'public',
  'GET /apidocs/json': 'public',
  'GET /apidocs/yaml': 'public',
  'GET /apidocs/static/*': 'public',
  'GET /apidocs/static/index.html': 'public',
  'GET /apidocs/static/swagger-initializer.js': 'public',
  'POST /ui/login': 'public',
  'POST /ui/logout': 'public',
}
/** The web UI's pages and static files: public shells that read through the API with the session's token. */
const isUiPage = (route: string) => /^GET \/ui(\/|\/[a-z-]+|\/[a-z-]+\/:[a-z]+|\/static\/[0-9a-f]+\/[a-z/]*\*)?$/.test(route)

t.test('every route declares its access; each role gets exactly its level; a denied call changes nothing', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  await app.ready()
  const routes = accessTable(app)
  t.ok(routes.length > 100, `${routes.length} routes seen by the onRoute hook`)

  const asGet = (route: { method: string; url: string }) => `${route.method === 'HEAD' ? 'GET' : route.method} ${route.url}`
  const withoutToken = routes.filter((route) => route.policy.access === 'public' || route.policy.access === 'machine')
  t.same(
    withoutToken.filter((route) => WITHOUT_API_TOKEN[asGet(route)] !== route.policy.access && !(isUiPage(asGet(route)) && route.policy.access === 'public')).map((route) => `${route.method} ${route.url} (${route.policy.access})`),
    [],
    'every route without an API token is one of the known machine-facing, public or UI routes',
  )
  const guarded = routes.filter((route): route is RouteAccess & { policy: TokenPolicy } => route.policy.access !== 'public' && route.policy.access !== 'machine')
  for (const route of guarded.filter((candidate) => candidate.method !== 'GET' && candidate.method !== 'HEAD')) {
    t.not(route.policy.access, 'read', `${route.method} ${route.url} changes something: it cannot be a read`)
  }

  const tokens = await seedRouteObjects(app)

  const call = (route: { method: string; url: string }, headers: Record<string, string>) => {
    const mutating = route.method !== 'GET' && route.method !== 'HEAD'
    return app.inject({ method: route.method as Method, url: concrete(route.url), headers: { ...headers, ...(mutating ? { 'content-type': 'application/json' } : {}) }, ...(mutating ? { payload: '{}' } : {}) })
  }
  const statusesOf = async (headers: Record<string, string>, subset = guarded) => {
    const answers: Record<string, { status: number; code?: string; message?: string }> = {}
    for (const route of subset) {
      const answer = await call(route, headers)
      const body = route.method !== 'HEAD' && answer.headers['content-type']?.toString().includes('json') ? (answer.json() as { code?: string; message?: string }) : {}
      answers[`${route.method} ${route.url}`] = { status: answer.statusCode, ...(body.code ? { code: body.code, message: body.message } : {}) }
    }
    return answers
  }
  const changing = guarded.filter((route) => route.method !== 'GET' && route.method !== 'HEAD')
  const reading = guarded.filter((route) => route.method === 'GET' || route.method === 'HEAD')

  const before = await snapshot(engine.store)
  const anonymous = await statusesOf({})
  t.same(Object.entries(anonymous).filter(([, answer]) => answer.status !== 401).map(([route]) => route), [], 'no token: 401 on every guarded route')

  const viewer = await statusesOf(bearer(tokens.viewer))
  const level = (route: string) => guarded.find((candidate) => `${candidate.method} ${candidate.url}` === route)!.policy.access
  for (const [route, answer] of Object.entries(viewer)) {
    const expected = route.startsWith('GET') || route.startsWith('HEAD') ? (level(route) === 'read' ? 'allowed' : 'denied') : 'denied'
    if (expected === 'denied') {
      t.equal(answer.status, 403, `viewer ${route}: 403`)
      if (!route.startsWith('HEAD')) t.match(answer, { code: 'FORBIDDEN', message: /needs the (operator role or higher|admin role)/ }, `viewer ${route}: names the role needed`)
    } else t.notOk([401, 403].includes(answer.status), `viewer ${route}: allowed (${answer.status})`)
  }
  t.same(await snapshot(engine.store), before, `${changing.length} changes refused to a viewer changed nothing`)

  const tenantAdmin = await statusesOf(bearer(tokens.tenantAdmin))
  for (const route of guarded.filter((candidate) => candidate.policy.scope === 'fleet')) {
    const answer = tenantAdmin[`${route.method} ${route.url}`]!
    t.equal(answer.status, 403, `tenant token ${route.method} ${route.url}: 403 (the fleet's)`)
    if (route.method !== 'HEAD') t.match(answer.message, /needs a token without a tenant/)
  }
  t.same(await snapshot(engine.store), before, "the fleet's routes refused to a tenant admin changed nothing")

  const administering = changing.filter((route) => route.policy.access === 'administer')
  const operatorDenied = await statusesOf(bearer(tokens.operator), guarded.filter((route) => route.policy.access === 'administer'))
  for (const [route, answer] of Object.entries(operatorDenied)) t.equal(answer.status, 403, `operator ${route}: 403 (admin only)`)
  t.same(await snapshot(engine.store), before, `${administering.length} admin changes refused to an operator changed nothing`)

  const operator = await statusesOf(bearer(tokens.operator), guarded.filter((route) => route.policy.access !== 'administer'))
  for (const [route, answer] of Object.entries(operator)) t.notOk([401, 403].includes(answer.status), `operator ${route}: allowed (${answer.status} ${answer.code ?? ''})`)
  const admin = await statusesOf(bearer(tokens.admin))
  for (const [route, answer] of Object.entries(admin)) t.notOk([401, 403].includes(answer.status), `admin ${route}: allowed (${answer.status} ${answer.code ?? ''})`)
  t.ok(reading.length > 40 && changing.length > 40, `${reading.length} reads and ${changing.length} changes swept`)
})

interface Site {
  name: string
  api: FakeKubeCluster
}

t.test('tenants: each sees and acts on its own clusters, machines and releases; releases fan out within the tenant', async (t) => {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'slipway-tenants-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const { engine, dataDir } = await startTestEngine({
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_HELM_BINARY: await helmPath(),
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
      SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: '0.5',
      SLIPWAY_RELEASES_REQUEST_TIMEOUT_SECONDS: '2',
    },
  })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  await engine.start()
  const app = engine.app
  const opA = bearer(await createToken(app, 'ops-a', 'operator', 'a'))
  const opB = bearer(await createToken(app, 'ops-b', 'operator', 'b'))
  const viewA = bearer(await createToken(app, 'view-a', 'viewer', 'a'))
  const as = (headers: Record<string, string>, method: Method, url: string, payload?: unknown) => app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })

  const pki = await x509ClusterPkiIssuer.issue('sites', new Date())
  const tls = { ...(await servingCertificate(pki)), caPem: pki.kubernetesCa.certificatePem }
  const site = async (t: Test, headers: Record<string, string>, name: string, extra: Record<string, unknown> = {}): Promise<Site> => {
    const token = `${name}-token-${'t'.repeat(20)}`
    const api = await FakeKubeCluster.start({ tls, tokens: [token], readyDelayMs: 20 })
    t.teardown(() => api.close())
    const registered = await as(headers, 'POST', '/api/v1/clusters', { name, labels: { app: 'shop' }, server: api.url, ca_bundle: pki.kubernetesCa.certificatePem, credentials: { token }, ...extra })
    t.equal(registered.statusCode, 201, registered.body)
    return { name, api }
  }
  const a1 = await site(t, opA, 'a-1')
  const b1 = await site(t, opB, 'b-1')
  const fleet1 = await site(t, auth, 'fleet-1')
  const names = async (headers: Record<string, string>, url: string) => ((await as(headers, 'GET', url)).json() as { name: string }[]).map((item) => item.name).sort()

  t.same(await names(opA, '/api/v1/clusters'), ['a-1'], 'tenant a lists its cluster only')
  t.same(await names(opB, '/clusters'), ['b-1'], "tenant b, through optikon's /clusters, its own only")
  t.same(await names(auth, '/api/v1/clusters'), ['a-1', 'b-1', 'fleet-1'], 'a fleet token sees every cluster')
  t.same(await names(viewA, '/api/v1/clusters'), ['a-1'], "tenant a's viewer too")

  const absentAnswer = (await as(opA, 'GET', '/api/v1/clusters/nowhere')).json() as { code: string; message: string }
  for (const [method, url, payload] of [
    ['GET', '/api/v1/clusters/b-1'],
    ['GET', '/clusters/b-1'],
    ['GET', '/api/v1/clusters/fleet-1/health'],
    ['GET', '/api/v1/clusters/b-1/profile'],
    ['PUT', '/api/v1/clusters/b-1', { labels: { app: 'taken' } }],
    ['DELETE', '/api/v1/clusters/b-1'],
    ['DELETE', '/clusters/fleet-1'],
  ] as [Method, string, unknown?][]) {
    const answer = await as(opA, method, url, payload)
    t.equal(answer.statusCode, 404, `tenant a ${method} ${url}: 404`)
    const cluster = url.split('/')[url.startsWith('/api') ? 4 : 2]!
    t.same(answer.json(), { ...absentAnswer, message: absentAnswer.message.replace('nowhere', cluster) }, 'word for word the answer for a cluster that does not exist')
  }
  t.match((await as(auth, 'GET', '/api/v1/clusters/b-1')).json(), { name: 'b-1', labels: { app: 'shop' } }, "b-1 unchanged by tenant a's attempts")
  t.equal((await as(auth, 'GET', '/api/v1/clusters/fleet-1')).statusCode, 200)

  const stolen = await as(opA, 'POST', '/api/v1/clusters', { name: 'sneaky', tenant: 'b', server: 'https://127.0.0.1:9', credentials: { token: 'x'.repeat(32) } })
  t.match({ status: stolen.statusCode, ...stolen.json() }, { status: 403, code: 'FORBIDDEN', message: /tenant "a" creates objects of its own tenant only/ })
  t.equal((await as(auth, 'GET', '/api/v1/clusters/sneaky')).statusCode, 404, 'nothing was created')
  t.equal((await as(viewA, 'DELETE', '/api/v1/clusters/a-1')).statusCode, 403, "tenant a's viewer cannot delete a's cluster")
  t.match((await as(opA, 'GET', '/api/v1/locks')).json(), { code: 'FORBIDDEN', message: /whole fleet/ }, "lock groups are the fleet's")

  // mexosagent's provision names the tenant per item.
  t.equal((await as(auth, 'POST', '/api/v1/flavors', { name: 'small', control_plane_count: 1, nodes_max: 1 })).statusCode, 201)
  const provisioned = await as(opA, 'POST', '/v1/provision', { provisions: [{ name: 'a-prov', flavor: 'small', tenant: 'a' }, { name: 'b-prov', flavor: 'small', tenant: 'b' }] })
  t.match(provisioned.json(), { results: [{ name: 'a-prov', ok: true }, { name: 'b-prov', ok: false, code: 'FORBIDDEN' }] })
  t.same(await names(opA, '/api/v1/clusters'), ['a-1', 'a-prov'])
  t.match((await as(opB, 'POST', '/v1/destroy', { provisions: [{ name: 'a-prov' }] })).json(), { results: [{ name: 'a-prov', ok: false, code: 'CLUSTER_NOT_FOUND' }] }, "b cannot destroy a's cluster")
  t.equal((await as(opA, 'GET', '/api/v1/clusters/a-prov/certificates')).statusCode, 200)
  t.equal((await as(opB, 'GET', '/api/v1/clusters/a-prov/certificates')).statusCode, 404)

  // Machines: a discovered machine in no cluster is the fleet's.
  const uuid = '4c4c4544-0042-3510-8050-b4c04f4e3499'
  t.equal((await as({}, 'POST', '/discovery', { 'boot-info': { uuid, mac: '52:54:00:00:09:01', 'random-id': 'r' }, interfaces: [{ name: 'eth0', mac: '52:54:00:00:09:01', ipv4: '10.0.0.9', cidrv4: '10.0.0.9/24' }], disks: [] })).statusCode, 200)
  t.same((await as(opA, 'GET', '/api/v1/machines')).json(), [], 'an unassigned machine is invisible to a tenant')
  t.same((await as(opA, 'GET', '/api/v1/discovery')).json(), [])
  t.equal(((await as(auth, 'GET', '/api/v1/machines')).json() as unknown[]).length, 1)
  const missing = '4c4c4544-0042-3510-8050-b4c04f4e3400'
  const machineAbsent = (await as(opA, 'GET', `/api/v1/machines/${missing}`)).json() as { message: string }
  t.same((await as(opA, 'GET', `/api/v1/machines/${uuid}`)).json(), { ...machineAbsent, message: machineAbsent.message.replace(missing, uuid) }, 'a fleet machine answers as one that does not exist')
  const relabel = await as(opA, 'PUT', `/api/v1/machines/${uuid}/labels`, { stolen: 'yes' })
  t.match({ status: relabel.statusCode, ...relabel.json() }, { status: 404, code: 'MACHINE_NOT_FOUND', message: `machine ${uuid} does not exist` })
  // The uuid in upper case names the same machine to the handlers: and so to the tenant check.
  for (const [method, url, payload] of [
    ['GET', `/api/v1/machines/${uuid.toUpperCase()}`],
    ['GET', `/api/v1/machines/${uuid.toUpperCase()}/boot`],
    ['PUT', `/api/v1/machines/${uuid.toUpperCase()}/labels`, { stolen: 'yes' }],
    ['POST', `/api/v1/machines/${uuid.toUpperCase()}/reprovision`, {}],
    ['POST', `/api/v1/machines/${uuid.toUpperCase()}/credential/revoke`],
  ] as [Method, string, unknown?][]) {
    t.equal((await as(opA, method, url, payload)).statusCode, 404, `tenant a ${method} ${url}: 404`)
  }
  t.match((await as(auth, 'GET', `/api/v1/machines/${uuid}`)).json(), { labels: {}, reprovision_until: null, credential: { generation: 0 } }, 'labels, window and credential unchanged')

  // Releases: tenant a installs on "app=shop", which b-1 and fleet-1 match too.
  for (const version of ['1.0.0'] as const) {
    const { payload, headers } = await multipartBody({}, { chart: { name: 'chart.tgz', bytes: await packageChart(webChart(version)) } })
    const uploaded = await app.inject({ method: 'POST', url: '/api/v1/charts', headers: { ...opA, ...headers }, payload })
    t.equal(uploaded.statusCode, 201, `a tenant operator adds to the shared chart catalog: ${uploaded.body}`)
  }
  t.equal((await as(opA, 'DELETE', '/api/v1/charts/web/1.0.0')).statusCode, 403, "removing a chart is the fleet's")
  const installed = await as(opA, 'POST', '/api/v1/releases', { name: 'web', namespace: 'shop', chart: { name: 'web', version: '1.0.0' }, selector: 'app=shop', values: { replicas: 1, greeting: 'hello' } })
  t.equal(installed.statusCode, 201, installed.body)
  const release = async () => (await as(opA, 'GET', '/api/v1/releases/shop/web')).json() as { clusters: { cluster: string; phase: string }[] }
  const deadline = Date.now() + 30_000
  while (!(await release()).clusters.some((status) => status.phase === 'ready') && Date.now() < deadline) await sleep(100)
  await sleep(1200)
  t.same((await release()).clusters.map((status) => `${status.cluster}:${status.phase}`), ['a-1:ready'], "a's release reached a's cluster only")
  t.ok(a1.api.get('Deployment', 'shop', 'web'), 'the deployment is on a-1')
  t.same(b1.api.objects({ namespace: 'shop' }), [], "b's cluster matched the selector and got nothing")
  t.same(fleet1.api.objects({ namespace: 'shop' }), [], "the fleet's cluster got nothing")

  t.same(await names(opB, '/api/v1/releases'), [], "b does not see a's release")
  t.same(await names(opB, '/releases'), [], "nor through optikon's /releases")
  t.same(await names(auth, '/api/v1/releases'), ['web'])
  const releaseAbsent = { statusCode: 404, code: 'RELEASE_NOT_FOUND', message: 'release shop/web does not exist' }
  for (const [method, url, payload] of [
    ['GET', '/api/v1/releases/shop/web'],
    ['PUT', '/api/v1/releases/shop/web', { values: { replicas: 3 } }],
    ['POST', '/api/v1/releases/shop/web/pause'],
    ['DELETE', '/api/v1/releases/shop/web'],
    ['DELETE', '/releases/web?namespace=shop'],
  ] as [Method, string, unknown?][]) {
    const answer = await as(opB, method, url, payload)
    t.same(answer.json(), releaseAbsent, `tenant b ${method} ${url}: as if absent`)
  }
  const paused = await as(viewA, 'POST', '/api/v1/releases/shop/web/pause')
  t.match({ status: paused.statusCode, ...paused.json() }, { status: 403, code: 'FORBIDDEN', message: /needs the operator role or higher; token "view-a" has the viewer role/ })
  t.match((await as(auth, 'GET', '/api/v1/releases/shop/web')).json(), { state: 'active', revision: 1 }, 'the release is untouched by the denied calls')
})
