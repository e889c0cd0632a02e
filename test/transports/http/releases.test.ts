/**
 * Helm releases fanned out by a running engine (real SQLite, the real reconciler job, the real helm
 * binary rendering, @kubernetes/client-node applying) to several Kubernetes API server test doubles
 * (test/fakes/kube-cluster.ts: an object store with server-side apply, over TLS with token auth).
 * There is no kube-apiserver here; the doubles speak its HTTP API, and `helm list`/`helm status` run
 * against them read back what the engine wrote.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { FakeKubeCluster } from '../../fakes/kube-cluster.ts'
import { brokenChart, helm, multipartBody, packageChart, webChart } from '../../helpers/charts.ts'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { helmPath } from '../../helpers/tools.ts'
import { sleep, until } from '../../helpers/wait.ts'

interface Site {
  name: string
  api: FakeKubeCluster
  token: string
  kubeconfig: string
}

async function setup(t: Test, env: Record<string, string> = {}) {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'slipway-releases-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const started = await startTestEngine({
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_HELM_BINARY: await helmPath(),
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
      SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: '0.5',
      SLIPWAY_RELEASES_REQUEST_TIMEOUT_SECONDS: '1',
      ...env,
    },
  })
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  const address = await started.engine.start()
  const app = started.engine.app
  const pki = await x509ClusterPkiIssuer.issue('sites', new Date())
  const tls = { ...(await servingCertificate(pki)), caPem: pki.kubernetesCa.certificatePem }
  const site = async (name: string, labels: Record<string, string>): Promise<Site> => {
    const token = `${name}-token-${'t'.repeat(20)}`
    const api = await FakeKubeCluster.start({ tls, tokens: [token], readyDelayMs: 20 })
    t.teardown(() => api.close())
    const kubeconfig = await api.writeKubeconfig(path.join(scratch, `${name}.kubeconfig`), { token })
    const registered = await call(app, 'POST', '/api/v1/clusters', { name, labels, server: api.url, ca_bundle: pki.kubernetesCa.certificatePem, credentials: { token } })
    t.equal(registered.statusCode, 201, registered.body)
    return { name, api, token, kubeconfig }
  }
  return { app, address, site, scratch }
}

const call = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

async function uploadChart(app: FastifyInstance, bytes: Buffer, field = 'chart', url = '/api/v1/charts', fields: Record<string, string> = {}) {
  const { payload, headers } = await multipartBody(fields, { [field]: { name: 'chart.tgz', bytes } })
  return app.inject({ method: url === '/api/v1/charts' ? 'POST' : 'POST', url, headers: { ...auth, ...headers }, payload })
}

interface ReleaseAnswer {
  revision: number
  state: string
  excluded_clusters: string[]
  clusters: { cluster: string; revision: number; phase: string; error: string | null }[]
  events: { cluster: string | null; message: string }[]
}
const release = async (app: FastifyInstance) => (await call(app, 'GET', '/api/v1/releases/shop/web')).json() as ReleaseAnswer
const phases = (answer: ReleaseAnswer) => Object.fromEntries(answer.clusters.map((status) => [status.cluster, `${status.phase}@${status.revision}`]))

/** Waits until the release's clusters are exactly `expected` (cluster -> phase@revision). */
async function settle(app: FastifyInstance, expected: Record<string, string>, what: string) {
  let last: ReleaseAnswer | undefined
  try {
    return await until(what, async () => {
      last = await release(app)
      return JSON.stringify(phases(last)) === JSON.stringify(expected) ? last : undefined
    }, 30_000, 100)
  } catch (error) {
    throw new Error(`${(error as Error).message}: ${JSON.stringify(last && phases(last))}; ${JSON.stringify(last?.events.slice(-6))}`)
  }
}

const helmJson = async <T>(site: Site, args: string[]) => JSON.parse(await helm([...args, '--kubeconfig', site.kubeconfig, '-o', 'json'])) as T

t.test('a release reaches every matching cluster and no other, survives an unreachable cluster, upgrades, rolls back, follows labels, and leaves nothing', async (t) => {
  const { app, site } = await setup(t)
  const eu1 = await site('eu-1', { region: 'eu', tier: 'prod' })
  const eu2 = await site('eu-2', { region: 'eu', tier: 'canary' })
  const us1 = await site('us-1', { region: 'us', tier: 'prod' })
  const ap1 = await site('ap-1', { region: 'ap', tier: 'prod' })

  for (const version of ['1.0.0', '1.1.0'] as const) {
    const uploaded = await uploadChart(app, await packageChart(webChart(version)))
    t.equal(uploaded.statusCode, 201, uploaded.body)
    t.match(uploaded.json(), { name: 'web', version, app_version: '2.4', source: 'upload', digest: /^[0-9a-f]{64}$/ })
  }

  // us-1 does not answer: the others must not wait for it.
  us1.api.setUnresponsive(true)
  const installed = await call(app, 'POST', '/api/v1/releases', {
    name: 'web',
    namespace: 'shop',
    chart: { name: 'web', version: '1.0.0' },
    selector: 'region in (eu,us)',
    values: { replicas: 2, greeting: 'bonjour' },
    cluster_values: true,
    rollout: { max_parallel: 2, canary_selector: 'tier=canary', max_failures: 2 },
  })
  t.equal(installed.statusCode, 201, installed.body)
  let answer = await settle(app, { 'eu-1': 'ready@1', 'eu-2': 'ready@1', 'us-1': 'failed@1' }, 'eu ready, us failed')
  t.match(answer.clusters.find((status) => status.cluster === 'us-1')!.error, /no answer within 1000 ms/, 'the unreachable cluster is shown failed with its error')
  const order = answer.events.filter((event) => event.cluster !== null).map((event) => `${event.cluster}: ${event.message.split(' (')[0]}`)
  t.ok(order.indexOf('eu-2: revision 1 ready') < order.indexOf('eu-1: applying revision 1'), `the canary first: ${order.join(' | ')}`)

  const deployment = eu1.api.get('Deployment', 'shop', 'web')!
  t.match(deployment.metadata, { labels: { 'slipway.io/release': 'web', 'app.kubernetes.io/managed-by': 'Helm' }, annotations: { 'meta.helm.sh/release-name': 'web', 'meta.helm.sh/release-namespace': 'shop' } })
  t.match(deployment.metadata.managedFields, [{ manager: 'slipway', operation: 'Apply' }], 'server-side applied by the "slipway" field manager')
  t.equal((deployment as { spec?: { replicas?: number } }).spec?.replicas, 2)
  t.match(eu2.api.get('ConfigMap', 'shop', 'web-settings'), { data: { greeting: 'bonjour', cluster: 'eu-2' } }, 'per-cluster values')
  t.same(ap1.api.objects({ namespace: 'shop' }), [], 'a cluster the selector does not match gets nothing')

  const listed = await helmJson<{ name: string; revision: string; status: string; chart: string; app_version: string }[]>(eu1, ['list', '-n', 'shop'])
  t.match(listed, [{ name: 'web', revision: '1', status: 'deployed', chart: 'web-1.0.0', app_version: '2.4' }], '`helm list` on the cluster shows the release')
  const status = await helmJson<{ info: { status: string; description: string }; config: Record<string, unknown> }>(eu1, ['status', 'web', '-n', 'shop'])
  t.match(status, { info: { status: 'deployed', description: 'Install complete' }, config: { greeting: 'bonjour' } })

  // A retry completes the failed cluster once it answers.
  us1.api.setUnresponsive(false)
  t.equal((await call(app, 'POST', '/api/v1/releases/shop/web/retry')).statusCode, 200)
  await settle(app, { 'eu-1': 'ready@1', 'eu-2': 'ready@1', 'us-1': 'ready@1' }, 'us-1 ready after the retry')

  // Upgrade to 1.1.0, which has no ConfigMap: pruned.
  const upgraded = await call(app, 'PUT', '/api/v1/releases/shop/web', { chart: { name: 'web', version: '1.1.0' }, values: { greeting: 'hola' }, reuse_values: true })
  t.equal(upgraded.statusCode, 200, upgraded.body)
  t.match(upgraded.json().revisions.at(-1), { revision: 2, chart: { version: '1.1.0' }, values: { replicas: 2, greeting: 'hola' }, description: 'Upgrade' })
  await settle(app, { 'eu-1': 'ready@2', 'eu-2': 'ready@2', 'us-1': 'ready@2' }, 'revision 2 everywhere')
  t.equal(eu1.api.get('ConfigMap', 'shop', 'web-settings'), undefined, 'the upgrade pruned the object the chart dropped')
  t.ok(eu1.api.get('Deployment', 'shop', 'web'))
  const history = await helmJson<{ revision: number; status: string; chart: string }[]>(eu1, ['history', 'web', '-n', 'shop'])
  t.match(history, [
    { revision: 1, status: 'superseded', chart: 'web-1.0.0' },
    { revision: 2, status: 'deployed', chart: 'web-1.1.0' },
  ])

  // Rollback to 1: a new revision with 1.0.0's chart and values.
  const rolledBack = await call(app, 'POST', '/api/v1/releases/shop/web/rollback', { revision: 1 })
  t.equal(rolledBack.statusCode, 200, rolledBack.body)
  await settle(app, { 'eu-1': 'ready@3', 'eu-2': 'ready@3', 'us-1': 'ready@3' }, 'revision 3 everywhere')
  t.match(eu1.api.get('ConfigMap', 'shop', 'web-settings'), { data: { greeting: 'bonjour' } }, 'the rollback brought the ConfigMap back with revision 1 values')
  t.match(await helmJson<{ revision: string }[]>(eu1, ['list', '-n', 'shop']), [{ revision: '3' }])

  // The reconciler follows labels: ap-1 starts matching, eu-2 stops.
  await call(app, 'PUT', '/api/v1/clusters/ap-1', { labels: { region: 'eu', tier: 'prod' } })
  await call(app, 'PUT', '/api/v1/clusters/eu-2', { labels: { region: 'ap', tier: 'canary' } })
  await settle(app, { 'ap-1': 'ready@3', 'eu-1': 'ready@3', 'us-1': 'ready@3' }, 'ap-1 in, eu-2 out')
  t.ok(ap1.api.get('Deployment', 'shop', 'web'), 'a cluster that starts matching gets the release')
  t.same(eu2.api.objects({ namespace: 'shop' }).map((object) => `${object.kind}/${object.metadata.name}`), [], 'a cluster that stops matching is left with nothing (release records included)')

  // optikon's routes: list by selector, delete by selector.
  const onUs = (await app.inject({ method: 'GET', url: '/releases?labels=region%3Dus', headers: auth })).json() as { name: string }[]
  t.same(onUs.map((item) => item.name), ['web'])
  const removed = await app.inject({ method: 'DELETE', url: '/releases/web?namespace=shop&labels=region%3Dus', headers: auth })
  t.same(removed.json(), { clusters: ['us-1'], whole: false })
  await settle(app, { 'ap-1': 'ready@3', 'eu-1': 'ready@3' }, 'removed from us-1')
  t.same((await release(app)).excluded_clusters, ['us-1'])
  t.same(us1.api.objects({ namespace: 'shop' }), [])

  // Uninstall: nothing left anywhere.
  t.equal((await call(app, 'DELETE', '/api/v1/releases/shop/web')).statusCode, 202)
  await until('the release gone', async () => ((await call(app, 'GET', '/api/v1/releases/shop/web')).statusCode === 404 ? true : undefined), 30_000, 100)
  for (const each of [eu1, eu2, us1, ap1]) t.same(each.api.objects({ namespace: 'shop' }), [], `${each.name}: nothing left`)
  t.same(await helmJson<unknown[]>(eu1, ['list', '-n', 'shop']), [], '`helm list` shows nothing')
})

t.test('bad input is refused with helm\'s message and applies nothing', async (t) => {
  const { app, site } = await setup(t, { SLIPWAY_RELEASES_MAX_CHART_BYTES: '8192' })
  const eu1 = await site('eu-1', { region: 'eu' })
  const corrupt = await uploadChart(app, Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.alloc(200, 7)]))
  t.match({ status: corrupt.statusCode, ...corrupt.json() }, { status: 400, code: 'INVALID_CHART', message: /gzip|tar|chart/i }, "a corrupt archive: helm's message")
  const notGzip = await uploadChart(app, Buffer.from('just text'))
  t.match({ status: notGzip.statusCode, ...notGzip.json() }, { status: 400, code: 'INVALID_CHART', message: /not gzip-compressed/ })
  const big = await uploadChart(app, Buffer.alloc(9000, 1))
  t.match({ status: big.statusCode, ...big.json() }, { status: 413, code: 'CHART_TOO_LARGE' })
  t.same((await call(app, 'GET', '/api/v1/charts')).json(), [], 'no chart stored')

  t.equal((await uploadChart(app, await packageChart(brokenChart))).statusCode, 201, 'a chart that is well formed is stored')
  const broken = await call(app, 'POST', '/api/v1/releases', { name: 'broken', namespace: 'shop', chart: { name: 'broken' }, selector: '' })
  t.match({ status: broken.statusCode, ...broken.json() }, { status: 400, code: 'CHART_RENDER_FAILED', message: /values\.image is required/ }, "a chart that does not render: helm's message")
  const badSelector = await call(app, 'POST', '/api/v1/releases', { name: 'broken', namespace: 'shop', chart: { name: 'broken' }, selector: 'region in eu' })
  t.match({ status: badSelector.statusCode, ...badSelector.json() }, { status: 400, code: 'INVALID_SELECTOR' })
  const unknown = await call(app, 'POST', '/api/v1/releases', { name: 'x', chart: { name: 'nope' }, selector: '' })
  t.match({ status: unknown.statusCode, ...unknown.json() }, { status: 404, code: 'CHART_NOT_FOUND' })
  const badName = await call(app, 'POST', '/api/v1/releases', { name: 'Web_1', chart: { name: 'broken' }, selector: '' })
  t.match({ status: badName.statusCode, ...badName.json() }, { status: 400, code: 'INVALID_RELEASE', message: /name/ })
  const optikonBad = await uploadChart(app, await packageChart(webChart('1.0.0')), 'chartTar', '/releases?labels=region%20in%20eu', { name: 'web', namespace: 'shop' })
  t.match({ status: optikonBad.statusCode, ...optikonBad.json() }, { status: 400, code: 'INVALID_SELECTOR' }, "optikon's POST with a bad selector")
  const deepValues = `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`
  const optikonDeep = await uploadChart(app, await packageChart(webChart('1.0.0')), 'chartTar', '/releases?labels=region%3Deu', { name: 'deep', namespace: 'shop', values: deepValues })
  t.match({ status: optikonDeep.statusCode, ...optikonDeep.json() }, { status: 400, code: 'TOO_DEEP' }, "optikon's values field nested 2,000 deep: 400, not a 500")
  t.same(((await call(app, 'GET', '/api/v1/charts')).json() as { name: string }[]).map((chart) => chart.name), ['broken'], 'and its chart was not stored')
  t.same((await call(app, 'GET', '/api/v1/releases')).json(), [], 'no release stored')
  await sleep(700)
  t.same(eu1.api.objects({ namespace: 'shop' }), [], 'nothing applied')

  // optikon's POST /releases with a good form works end to end.
  const optikon = await uploadChart(app, await packageChart(webChart('1.0.0')), 'chartTar', '/releases?labels=region%3Deu', { name: 'web', namespace: 'shop' })
  t.equal(optikon.statusCode, 201, optikon.body)
  await settle(app, { 'eu-1': 'ready@1' }, 'optikon release ready')
})

t.test('halts at max_failures, one cluster at a time; pause and resume', async (t) => {
  const { app, site } = await setup(t)
  const sites = [await site('a-1', { fleet: 'x' }), await site('a-2', { fleet: 'x' }), await site('a-3', { fleet: 'x' })]
  sites[0]!.api.setUnresponsive(true)
  t.equal((await uploadChart(app, await packageChart(webChart('1.1.0')))).statusCode, 201)
  await call(app, 'POST', '/api/v1/releases', { name: 'web', namespace: 'shop', chart: { name: 'web' }, selector: 'fleet=x', rollout: { max_parallel: 1, max_failures: 1 } })
  const halted = await until('halted', async () => {
    const answer = await release(app)
    return answer.state === 'halted' ? answer : undefined
  }, 30_000, 100)
  t.same(phases(halted), { 'a-1': 'failed@1' }, 'after the first failure nothing else started')
  t.ok(halted.events.some((event) => /halted: 1 cluster\(s\) failed revision 1/.test(event.message)))
  sites[0]!.api.setUnresponsive(false)
  t.equal((await call(app, 'POST', '/api/v1/releases/shop/web/pause')).json().state, 'paused')
  t.equal((await call(app, 'POST', '/api/v1/releases/shop/web/retry')).statusCode, 200)
  await sleep(1200)
  t.same(phases(await release(app)), { 'a-1': 'pending@1' }, 'paused: the retried cluster waits')
  t.equal((await call(app, 'POST', '/api/v1/releases/shop/web/resume')).json().state, 'active')
  await settle(app, { 'a-1': 'ready@1', 'a-2': 'ready@1', 'a-3': 'ready@1' }, 'all ready after resume')
  t.match((await app.inject({ method: 'GET', url: '/metrics', headers: auth })).body, /^slipway_helm_renders_total 1$/m, 'one helm render for the three clusters (equal values), the retry included')
})

t.test('the engine is a Helm repository; charts can be pulled from one', async (t) => {
  const { app, address, scratch } = await setup(t)
  t.equal((await uploadChart(app, await packageChart(webChart('1.0.0')))).statusCode, 201)
  const home = path.join(scratch, 'helm-home')
  await t.rejects(helm(['repo', 'add', 'slipway', `${address}/charts`], { home }), /401|Unauthorized|failed to fetch/, 'without the token, no index')
  await helm(['repo', 'add', 'slipway', `${address}/charts`, '--username', 'ops', '--password', auth.authorization.replace('Bearer ', '')], { home })
  const found = JSON.parse(await helm(['search', 'repo', 'slipway/web', '-o', 'json'], { home })) as { name: string; version: string; app_version: string }[]
  t.match(found, [{ name: 'slipway/web', version: '1.0.0', app_version: '2.4' }], '`helm search repo` finds the uploaded chart')

  // Pulling: from the engine's own repository, which needs the token, so from a plain one here.
  const plain = path.join(scratch, 'plain-repo')
  const served = await import('node:http')
  const { writeFile, mkdir } = await import('node:fs/promises')
  await mkdir(plain, { recursive: true })
  await writeFile(path.join(plain, 'web-1.1.0.tgz'), await packageChart(webChart('1.1.0')))
  const server = served.createServer(async (request, response) => {
    const { readFile } = await import('node:fs/promises')
    try {
      response.end(await readFile(path.join(plain, path.basename(request.url ?? ''))))
    } catch {
      response.statusCode = 404
      response.end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const repository = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  await helm(['repo', 'index', plain, '--url', repository], { home })
  const pulled = await call(app, 'POST', '/api/v1/charts', { repository, chart: 'web', version: '1.1.0' })
  t.equal(pulled.statusCode, 201, pulled.body)
  t.match(pulled.json(), { name: 'web', version: '1.1.0', source: 'repository', source_url: repository })
  const missing = await call(app, 'POST', '/api/v1/charts', { repository, chart: 'web', version: '9.9.9' })
  t.match({ status: missing.statusCode, ...missing.json() }, { status: 400, code: 'CHART_PULL_FAILED', message: /9\.9\.9/ })
})
