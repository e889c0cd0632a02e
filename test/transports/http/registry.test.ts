/**
 * The cluster registry through a running engine (real SQLite file, the real health sweep job and the
 * real @kubernetes/client-node) against several Kubernetes API server test doubles
 * (test/fakes/kube-apiserver.ts) on loopback over TLS, authenticating by bearer token or client
 * certificate. There is no kube-apiserver on these machines; the double speaks its HTTP API.
 */
import { lookup } from 'node:dns/promises'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import type { ClusterPki } from '../../../src/core/clusters/cluster-pki.ts'
import { FakeKubeApiserver } from '../../fakes/kube-apiserver.ts'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { reportInstalled, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'
import { issueCertificate, servingCertificate } from '../../helpers/test-pki.ts'
import { until } from '../../helpers/wait.ts'
import { SqliteAdapter } from 'kysely'

const INTERVAL_MS = 2000
const TIMEOUT_MS = 1000

interface Double {
  api: FakeKubeApiserver
  pki: ClusterPki
  token: string
}

/** A TLS API server double with its own CA, accepting `token` and client certificates from its CA; 2 Ready nodes and 3 pods. */
async function double(t: Test, name: string): Promise<Double> {
  const pki = await x509ClusterPkiIssuer.issue(name, new Date())
  const token = `${name}-token-${'x'.repeat(24)}`
  const api = await FakeKubeApiserver.start({ tls: { ...(await servingCertificate(pki)), clientCaPem: pki.kubernetesCa.certificatePem }, tokens: [token], gitVersion: 'v1.31.4' })
  t.teardown(() => api.close())
  api.addNode(`${name}-cp-1`, { labels: { 'node-role.kubernetes.io/control-plane': '' } })
  api.addNode(`${name}-node-1`)
  api.addPod({ name: 'web-1', namespace: 'shop', node: `${name}-node-1` })
  api.addPod({ name: 'web-2', namespace: 'shop', node: `${name}-node-1` })
  api.addPod({ name: 'coredns', namespace: 'kube-system', node: `${name}-cp-1` })
  return { api, pki, token }
}

async function engine(t: Test, logLines?: string[]) {
  const started = await startTestEngine({
    env: { SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: String(INTERVAL_MS / 1000), SLIPWAY_REGISTRY_REQUEST_TIMEOUT_SECONDS: String(TIMEOUT_MS / 1000), SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1' },
    ...(logLines ? { logLines } : {}),
  })
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  await started.engine.start()
  return started
}

const call = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = auth) =>
  app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })

async function healthOf(app: FastifyInstance, name: string) {
  return (await call(app, 'GET', `/api/v1/clusters/${name}`)).json() as { health: { status: string; reason: string; message: string; nodes_ready: number; nodes_total: number; pods_running: number; pods_total: number } | null; transitions: { from: string | null; to: string; reason: string }[] }
}


t.test('registration by token, client certificate and kubeconfig; health, selectors, live details; credentials never shown', async (t) => {
  const logLines: string[] = []
  const { engine: running, dataDir } = await engine(t, logLines)
  const app = running.app
  const [eu, us, edge] = await Promise.all([double(t, 'eu'), double(t, 'us'), double(t, 'edge')])

  const byToken = await call(app, 'POST', '/api/v1/clusters', {
    name: 'eu-1',
    display_name: 'Paris 1',
    labels: { region: 'eu', tier: 'prod' },
    location: { latitude: 48.85, longitude: 2.35, region: 'eu-west', site: 'par1' },
    server: eu.api.url,
    ca_bundle: eu.pki.kubernetesCa.certificatePem,
    credentials: { token: eu.token },
  })
  t.equal(byToken.statusCode, 201, byToken.body)
  t.match(byToken.json(), { name: 'eu-1', display_name: 'Paris 1', source: 'manual', credential_kind: 'token', server: eu.api.url, conditions: [{ type: 'Joined', status: 'True' }, { type: 'ControlPlaneHealthy', status: 'Unknown' }] })

  const client = await issueCertificate(us.pki, { subject: 'CN=slipway-registry, O=system:masters', usage: 'client' })
  const byCertificate = await call(app, 'POST', '/api/v1/clusters', {
    name: 'us-1',
    labels: { region: 'us', tier: 'prod' },
    server: us.api.url,
    ca_bundle: us.pki.kubernetesCa.certificatePem,
    credentials: { client_certificate: client.certificatePem, client_key: client.privateKeyPem },
  })
  t.equal(byCertificate.statusCode, 201, byCertificate.body)

  const b64 = (text: string) => Buffer.from(text).toString('base64')
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: edge',
    '  cluster:',
    `    server: ${edge.api.url}`,
    `    certificate-authority-data: ${b64(edge.pki.kubernetesCa.certificatePem)}`,
    'users:',
    '- name: ops',
    '  user:',
    `    token: ${edge.token}`,
    'contexts:',
    '- name: ops@edge',
    '  context: {cluster: edge, user: ops}',
    'current-context: ops@edge',
  ].join('\n')
  const byKubeconfig = await call(app, 'POST', '/clusters', { name: 'edge-1', labels: { region: 'eu', tier: 'test' }, credentials: { kubeconfig } })
  t.equal(byKubeconfig.statusCode, 201, `optikon's POST /clusters: ${byKubeconfig.body}`)
  t.match(byKubeconfig.json(), { server: edge.api.url, credential_kind: 'kubeconfig', ca_bundle: /BEGIN CERTIFICATE/ })

  const sweep = await call(app, 'POST', '/api/v1/clusters/health-sweep')
  t.match(sweep.json(), { checked: 3, statuses: { 'eu-1': 'Healthy', 'us-1': 'Healthy', 'edge-1': 'Healthy' } })
  const euHealth = await healthOf(app, 'eu-1')
  t.match(euHealth.health, { status: 'Healthy', reason: 'AllReady', nodes_ready: 2, nodes_total: 2, pods_running: 3, pods_total: 3 })
  t.match((await call(app, 'GET', '/api/v1/clusters/eu-1')).json(), { version: { kubernetes: 'v1.31.4' }, conditions: [{ type: 'Joined', status: 'True' }, { type: 'ControlPlaneHealthy', status: 'True' }] })
  t.ok(us.api.requests.some((request) => /CN=slipway-registry/.test(request.clientCertificate ?? '')), 'the client certificate authenticated us-1')

  // Label selectors, Kubernetes syntax, on both route sets.
  const names = async (url: string) => ((await call(app, 'GET', url)).json() as { name: string }[]).map((cluster) => cluster.name)
  t.same(await names('/api/v1/clusters?labels=region=eu'), ['edge-1', 'eu-1'])
  t.same(await names(`/api/v1/clusters?labels=${encodeURIComponent('region=eu,tier!=test')}`), ['eu-1'])
  t.same(await names(`/clusters?labels=${encodeURIComponent('region in (us,eu),tier=prod')}`), ['eu-1', 'us-1'])
  t.same(await names(`/clusters?labels=${encodeURIComponent('!tier')}`), [])
  t.equal((await call(app, 'GET', '/clusters', undefined, {})).statusCode, 401, "optikon's routes need the admin token too")
  t.equal((await call(app, 'GET', '/clusters/eu-1', undefined, {})).statusCode, 401)

  // Live details on demand.
  eu.api.setNodeReady('eu-node-1', false)
  const live = (await call(app, 'GET', '/api/v1/clusters/eu-1?live=true')).json()
  t.match(live.live.nodes, [
    { name: 'eu-cp-1', ready: true, roles: ['control-plane'], kubelet_version: /^v1\./ },
    { name: 'eu-node-1', ready: false, roles: [] },
  ])
  const readyCondition = (node: { conditions: { type: string }[] }) => node.conditions.find((condition) => condition.type === 'Ready')
  t.match(live.live.nodes.map(readyCondition), [{ status: 'True' }, { status: 'Unknown', reason: 'NodeStatusUnknown' }], 'each node with its conditions')
  t.same(live.live.pods_by_namespace, { 'kube-system': { running: 1, total: 1 }, shop: { running: 2, total: 2 } })

  // A NotReady node: Degraded at the next sweep; Ready again: Healthy.
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  t.match((await healthOf(app, 'eu-1')).health, { status: 'Degraded', reason: 'NodesNotReady', message: /1 of 2 nodes not Ready \(eu-node-1\)/ })
  eu.api.setNodeReady('eu-node-1', true)
  eu.api.setApiReady(false)
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  t.match((await healthOf(app, 'eu-1')).health, { status: 'Degraded', reason: 'APIServerNotReady' })
  eu.api.setApiReady(true)
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  const history = (await call(app, 'GET', '/api/v1/clusters/eu-1/health')).json()
  t.match(
    history.transitions.map((transition: { from: string | null; to: string }) => `${transition.from}->${transition.to}`),
    ['null->Healthy', 'Healthy->Degraded', 'Degraded->Healthy'],
    'status changes are kept (a Degraded with another reason is not a new transition)',
  )

  // A double that stops answering is Unreachable within one interval, by the timer-driven sweep alone.
  const stoppedAt = Date.now()
  us.api.setUnresponsive(true)
  const unreachable = await until('us-1 unreachable', async () => {
    const health = (await healthOf(app, 'us-1')).health
    return health?.status === 'Unreachable' ? health : undefined
  })
  const detectedMs = Date.now() - stoppedAt
  t.match(unreachable, { reason: 'Timeout', message: new RegExp(`no answer within ${TIMEOUT_MS} ms`) })
  // Slack for a loaded machine: the bound is one interval and one timeout, not a benchmark.
  t.ok(detectedMs <= INTERVAL_MS + TIMEOUT_MS + 2000, `Unreachable ${detectedMs} ms after the API server stopped answering (interval ${INTERVAL_MS} ms, request timeout ${TIMEOUT_MS} ms)`)
  us.api.setUnresponsive(false)
  await until('us-1 healthy again', async () => ((await healthOf(app, 'us-1')).health?.status === 'Healthy' ? true : undefined))

  // The ClusterProfile view.
  t.match((await call(app, 'GET', '/api/v1/clusters/eu-1/profile')).json(), {
    apiVersion: 'multicluster.x-k8s.io/v1alpha1',
    kind: 'ClusterProfile',
    metadata: { name: 'eu-1', labels: { region: 'eu', 'x-k8s.io/cluster-manager': 'slipway' } },
    spec: { displayName: 'Paris 1', clusterManager: { name: 'slipway' } },
    status: { version: { kubernetes: 'v1.31.4' }, conditions: [{ type: 'Joined', status: 'True' }, { type: 'ControlPlaneHealthy', status: 'True' }] },
  })

  // Removal (optikon's DELETE /clusters/{id}).
  t.equal((await call(app, 'DELETE', '/clusters/edge-1')).statusCode, 204)
  t.equal((await call(app, 'GET', '/api/v1/clusters/edge-1')).json().code, 'CLUSTER_NOT_FOUND')

  // Credentials appear in no answer, no log line, and not in clear in the database file.
  const answers = JSON.stringify([(await call(app, 'GET', '/api/v1/clusters')).json(), (await call(app, 'GET', '/clusters/us-1?live=true')).json(), byToken.json(), byCertificate.json(), byKubeconfig.json()])
  const keyLine = client.privateKeyPem.split('\n')[1]!
  for (const secret of [eu.token, edge.token, keyLine, 'client-key', 'PRIVATE KEY']) {
    t.notOk(answers.includes(secret), `answers never include ${secret.slice(0, 12)}...`)
    t.notOk(logLines.some((line) => line.includes(secret)), `no log line includes ${secret.slice(0, 12)}...`)
  }
  t.ok(logLines.some((line) => /cluster us-1 is Unreachable/.test(line)), 'status changes are logged')
  if (running.store.getExecutor().adapter instanceof SqliteAdapter) {
    const database = readFileSync(path.join(dataDir, 'slipway.db'))
    const wal = readFileSync(path.join(dataDir, 'slipway.db-wal'))
    for (const secret of [eu.token, keyLine]) t.notOk(database.includes(secret) || wal.includes(secret), 'the database holds credentials only sealed')
  } else {
    // PostgreSQL (SLIPWAY_TEST_BACKEND=postgres): every stored credential column, read back raw.
    const stored = Buffer.concat((await running.store.selectFrom('cluster_registry').select('credential_sealed').execute()).map((row) => Buffer.from(row.credential_sealed ?? [])))
    for (const secret of [eu.token, keyLine]) t.notOk(stored.includes(secret), 'the database holds credentials only sealed')
  }
})

t.test('wrong credentials are reported as such, and fixed by a PUT', async (t) => {
  const { engine: running } = await engine(t)
  const app = running.app
  const eu = await double(t, 'eu')
  const created = await call(app, 'POST', '/api/v1/clusters', { name: 'eu-1', server: eu.api.url, ca_bundle: eu.pki.kubernetesCa.certificatePem, credentials: { token: 'a-revoked-token' } })
  t.equal(created.statusCode, 201)
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  t.match((await healthOf(app, 'eu-1')).health, { status: 'Unreachable', reason: 'Unauthorized', message: /rejected the engine's credentials: 401 Unauthorized/ })

  const other = await x509ClusterPkiIssuer.issue('other', new Date())
  await call(app, 'PUT', '/api/v1/clusters/eu-1', { credentials: { token: eu.token }, ca_bundle: other.kubernetesCa.certificatePem })
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  t.match((await healthOf(app, 'eu-1')).health, { status: 'Unreachable', reason: 'TLSError', message: /does the CA bundle match/ }, 'a CA that did not sign the server certificate is a TLS error')

  const fixed = await call(app, 'PUT', '/clusters/eu-1', { ca_bundle: eu.pki.kubernetesCa.certificatePem, labels: { region: 'eu' } })
  t.equal(fixed.statusCode, 200, fixed.body)
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  t.match((await healthOf(app, 'eu-1')).health, { status: 'Healthy' }, 'the token given before was kept')
  t.match(fixed.json(), { labels: { region: 'eu' }, credential_kind: 'token' })
  const transitions = (await healthOf(app, 'eu-1')).transitions
  t.same(transitions.map((transition) => `${transition.to}:${transition.reason}`), ['Unreachable:Unauthorized', 'Healthy:AllReady'])
})

t.test('bad input is a 4xx with a clear message and stores nothing', async (t) => {
  const { engine: running } = await engine(t)
  const app = running.app
  const eu = await double(t, 'eu')
  const pem = eu.pki.kubernetesCa.certificatePem
  const other = await x509ClusterPkiIssuer.issue('other', new Date())
  const good = { name: 'eu-1', server: eu.api.url, ca_bundle: pem, credentials: { token: eu.token } }
  const kubeconfigWith = (user: string) =>
    `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: ${eu.api.url}\nusers:\n- name: u\n  user:\n${user}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`
  const cases: [string, () => ReturnType<typeof call>, number, string, RegExp][] = [
    ['malformed selector', () => call(app, 'GET', `/api/v1/clusters?labels=${encodeURIComponent('region in eu')}`), 400, 'INVALID_SELECTOR', /"in" must be followed by "\(values\)"/],
    ['malformed selector (optikon)', () => call(app, 'GET', `/clusters?labels=${encodeURIComponent('region=eu,,')}`), 400, 'INVALID_SELECTOR', /position/],
    ['unknown cluster', () => call(app, 'GET', '/clusters/nope'), 404, 'CLUSTER_NOT_FOUND', /"nope" does not exist/],
    ['unknown cluster PUT', () => call(app, 'PUT', '/api/v1/clusters/nope', { labels: {} }), 404, 'CLUSTER_NOT_FOUND', /nope/],
    ['unknown cluster DELETE', () => call(app, 'DELETE', '/api/v1/clusters/nope'), 404, 'CLUSTER_NOT_FOUND', /nope/],
    ['not a URL', () => call(app, 'POST', '/api/v1/clusters', { ...good, server: 'not a url' }), 400, 'INVALID_SERVER_URL', /is not a URL/],
    ['plain http', () => call(app, 'POST', '/api/v1/clusters', { ...good, server: 'http://10.0.0.1:8080' }), 400, 'INVALID_SERVER_URL', /over https, not http/],
    ['credentials in the URL', () => call(app, 'POST', '/api/v1/clusters', { ...good, server: 'https://admin:pw@10.0.0.1:6443' }), 400, 'INVALID_SERVER_URL', /not in the URL/],
    ['no server', () => call(app, 'POST', '/api/v1/clusters', { ...good, server: undefined }), 400, 'INVALID_SERVER_URL', /required/],
    ['CA bundle not PEM', () => call(app, 'POST', '/api/v1/clusters', { ...good, ca_bundle: 'hello' }), 400, 'INVALID_CA_BUNDLE', /no PEM certificate/],
    ['CA bundle corrupt', () => call(app, 'POST', '/api/v1/clusters', { ...good, ca_bundle: pem.replace(/[A-Za-z]{12}\n/, 'AAAAAAAAAAAA\n') }), 400, 'INVALID_CA_BUNDLE', /not a valid X.509/],
    ['CA bundle holds a key', () => call(app, 'POST', '/api/v1/clusters', { ...good, ca_bundle: other.admin.privateKeyPem }), 400, 'INVALID_CA_BUNDLE', /is a PRIVATE KEY, not a CERTIFICATE/],
    ['no credentials', () => call(app, 'POST', '/api/v1/clusters', { ...good, credentials: undefined }), 400, 'INVALID_CREDENTIALS', /needs a token/],
    ['two credentials', () => call(app, 'POST', '/api/v1/clusters', { ...good, credentials: { token: 'a', kubeconfig: 'b' } }), 400, 'INVALID_CREDENTIALS', /exactly one.*got token and kubeconfig/],
    ['certificate without key', () => call(app, 'POST', '/api/v1/clusters', { ...good, credentials: { client_certificate: other.admin.certificatePem } }), 400, 'INVALID_CREDENTIALS', /go together/],
    ['key of another certificate', () => call(app, 'POST', '/api/v1/clusters', { ...good, credentials: { client_certificate: other.admin.certificatePem, client_key: eu.pki.admin.privateKeyPem } }), 400, 'INVALID_CREDENTIALS', /does not belong/],
    ['kubeconfig not YAML', () => call(app, 'POST', '/api/v1/clusters', { name: 'k', credentials: { kubeconfig: '{{{' } }), 400, 'INVALID_KUBECONFIG', /not a valid kubeconfig/],
    ['kubeconfig exec plugin', () => call(app, 'POST', '/api/v1/clusters', { name: 'k', credentials: { kubeconfig: kubeconfigWith('    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}') } }), 400, 'INVALID_KUBECONFIG', /exec and auth-provider/],
    ['kubeconfig file references', () => call(app, 'POST', '/api/v1/clusters', { name: 'k', credentials: { kubeconfig: kubeconfigWith('    client-certificate: /home/me/cert.pem\n    client-key: /home/me/key.pem') } }), 400, 'INVALID_KUBECONFIG', /refers to files/],
    ['latitude alone', () => call(app, 'POST', '/api/v1/clusters', { ...good, location: { latitude: 10 } }), 400, 'INVALID_CLUSTER', /go together/],
    ['latitude out of range', () => call(app, 'POST', '/api/v1/clusters', { ...good, location: { latitude: 100, longitude: 1 } }), 400, 'INVALID_CLUSTER', /location.latitude/],
    ['bad label value', () => call(app, 'POST', '/api/v1/clusters', { ...good, labels: { region: 'eu west' } }), 400, 'INVALID_CLUSTER', /labels.region/],
    ['unknown field', () => call(app, 'POST', '/api/v1/clusters', { ...good, insecure: true }), 400, 'INVALID_CLUSTER', /unknown field\(s\) insecure/],
  ]
  for (const [name, send, status, code, message] of cases) {
    const response = await send()
    t.match({ status: response.statusCode, ...response.json() }, { status, code, message }, name)
  }
  t.same((await call(app, 'GET', '/api/v1/clusters')).json(), [], 'nothing was stored')
  t.equal((await call(app, 'POST', '/api/v1/clusters', good)).statusCode, 201)
  const duplicate = await call(app, 'POST', '/clusters', good)
  t.match({ status: duplicate.statusCode, ...duplicate.json() }, { status: 409, code: 'CLUSTER_EXISTS' })
  const before = (await call(app, 'GET', '/api/v1/clusters/eu-1')).json()
  const badUpdate = await call(app, 'PUT', '/api/v1/clusters/eu-1', { labels: { tier: 'gold' }, server: 'ftp://x' })
  t.match({ status: badUpdate.statusCode, ...badUpdate.json() }, { status: 400, code: 'INVALID_SERVER_URL' })
  t.same((await call(app, 'GET', '/api/v1/clusters/eu-1')).json(), before, 'a refused update changes nothing')
})

t.test('a provisioned cluster registers itself once its control plane is installed and answers; destroying it deregisters it', async (t) => {
  const { engine: running } = await engine(t)
  const app = running.app
  // A free port for the control plane's API server (the flavor's api_server_port).
  const probe = await FakeKubeApiserver.start()
  const port = Number(new URL(probe.url).port)
  await probe.close()
  t.equal((await call(app, 'POST', '/api/v1/flavors', { name: 'tiny', control_plane_count: 1, nodes_max: 1, labels: { tier: 'edge', region: 'eu' }, api_server_port: port })).statusCode, 201)
  const created = await call(app, 'POST', '/api/v1/clusters', { name: 'lyon', flavor: 'tiny', labels: { region: 'eu-south' }, latitude: 45.76, longitude: 4.84, site: 'lys1' })
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json(), { source: 'provisioned', labels: { tier: 'edge', region: 'eu-south' }, location: { latitude: 45.76, site: 'lys1' }, conditions: [{ type: 'Joined', status: 'False' }] })

  const uuid = (n: number) => `1e910000-0000-4000-8000-00000000000${n}`
  const mac = (n: number) => `52:54:00:0b:00:0${n}`
  for (const n of [1, 2]) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuid(n), mac: mac(n) }, interfaces: [{ name: 'eth0', mac: mac(n), ipv4: '127.0.0.1' }] } })
  }
  await call(app, 'POST', '/api/v1/scheduler/run')
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  t.match((await call(app, 'GET', '/api/v1/clusters/lyon')).json(), { conditions: [{ type: 'Joined', status: 'False', message: /control plane not installed yet \(lyon-cp-1 is scheduled\)/ }] })

  // Each member installs as the discovery agent does: its slot, its role config, its report (from 127.0.0.1, its address here).
  const configs: string[] = []
  for (const n of [1, 2]) {
    configs.push((await takeSlotAndFetchConfig(app, { uuid: uuid(n), mac: mac(n), ip: '127.0.0.1' })).body)
    await reportInstalled(app, { uuid: uuid(n), mac: mac(n), ip: '127.0.0.1' })
  }
  await call(app, 'POST', '/api/v1/clusters/health-sweep')
  // The engine reaches the control plane through its endpoint name, which only the engine answers.
  t.match((await call(app, 'GET', '/api/v1/clusters/lyon')).json(), { server: null, conditions: [{ type: 'Joined', status: 'False', message: new RegExp(`API server https://api\\.lyon\\.apps\\.slipway\\.internal:${port} does not answer yet: connection refused`) }] })
  await t.rejects(lookup('api.lyon.apps.slipway.internal'), 'the system resolver does not know the endpoint name: the engine resolves it itself')

  // The control plane's kube-apiserver comes up with the serving certificate and CA its Ignition
  // carries (kubeadm's external-CA mode: the engine issued them).
  const ignition = JSON.parse(configs[0]!) as { storage: { files: { path: string; contents: { source: string } }[] } }
  const file = (name: string) => decodeURIComponent(ignition.storage.files.find((candidate) => candidate.path === `/etc/kubernetes/pki/${name}`)!.contents.source.replace(/^data:[^,]*,/, ''))
  const api = await FakeKubeApiserver.start({ tls: { certificatePem: file('apiserver.crt'), privateKeyPem: file('apiserver.key'), clientCaPem: file('ca.crt') }, port })
  t.teardown(() => api.close())
  api.addNode('lyon-cp-1')
  api.addNode('lyon-node-1')

  const sweep = (await call(app, 'POST', '/api/v1/clusters/health-sweep')).json()
  t.same(sweep.joined, ['lyon'])
  const joined = (await call(app, 'GET', '/api/v1/clusters/lyon')).json()
  t.match(joined, {
    server: `https://api.lyon.apps.slipway.internal:${port}`,
    credential_kind: 'cluster_pki',
    ca_bundle: file('ca.crt'),
    conditions: [{ type: 'Joined', status: 'True', reason: 'APIServerAnswered' }, { type: 'ControlPlaneHealthy', status: 'True' }],
    health: { status: 'Healthy', nodes_total: 2 },
  })
  t.ok(api.requests.some((request) => /O=system:masters/.test(request.clientCertificate ?? '')), "the engine authenticated with the admin certificate from the cluster's PKI")
  t.same(((await call(app, 'GET', '/clusters?labels=tier=edge')).json() as { name: string }[]).map((cluster) => cluster.name), ['lyon'], "the flavor's labels are selectable")

  const refused = await call(app, 'PUT', '/api/v1/clusters/lyon', { credentials: { token: 'x' } })
  t.match({ status: refused.statusCode, ...refused.json() }, { status: 400, code: 'PROVISIONED_CREDENTIALS' })

  t.equal((await call(app, 'DELETE', '/api/v1/clusters/lyon')).statusCode, 204, 'destroying the cluster')
  t.equal((await call(app, 'GET', '/api/v1/clusters/lyon')).json().code, 'CLUSTER_NOT_FOUND', 'deregistered it')
  t.same((await call(app, 'GET', '/api/v1/machines')).json().map((machine: { state: string }) => machine.state), ['discovered', 'discovered'])
  t.equal(ADMIN_TOKEN.length > 0, true)
})
