import { CoreV1Api, KubeConfig } from '@kubernetes/client-node'
import t, { type Test } from 'tap'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { KubernetesNodeDrainer, type KubernetesNodeDrainerOptions } from '../../src/adapters/kubernetes/kubernetes-node-drainer.ts'
import { adminKubeconfig } from '../../src/core/clusters/cluster-pki.ts'
import { SlipwayError } from '../../src/core/errors.ts'
import type { DrainOptions } from '../../src/core/lifecycle/ports.ts'
import { FakeKubeApiserver, type FakeKubeApiserverOptions, type PodInput } from '../fakes/kube-apiserver.ts'
import { servingCertificate } from '../helpers/test-pki.ts'
import { sleep } from '../helpers/wait.ts'

async function setup(t: Test, options: FakeKubeApiserverOptions = {}, drainerOptions: KubernetesNodeDrainerOptions = {}) {
  const api = await FakeKubeApiserver.start(options)
  const drainer = new KubernetesNodeDrainer(api.kubeconfig(), { deletePollIntervalMs: 20, ...drainerOptions })
  t.teardown(async () => {
    await drainer.close()
    await api.close()
  })
  return { api, drainer }
}

const drainOptions = (options: Partial<DrainOptions> = {}): DrainOptions => ({
  timeoutMs: 5000,
  evictionRetryMs: 50,
  force: false,
  deleteEmptyDirData: false,
  ...options,
})

const web = (name: string, node: string | undefined, extra: Partial<PodInput> = {}): PodInput => ({
  name,
  node,
  labels: { app: 'web' },
  controller: { kind: 'ReplicaSet', name: 'web-5d8f7c9b4' },
  ...extra,
})

/** Resolves with the error a promise rejects with (tap's t.rejects cannot hand it back). */
async function failure(promise: Promise<unknown>): Promise<SlipwayError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof SlipwayError) return error
    throw error
  }
  throw new Error('expected a rejection')
}

const evictions = (api: FakeKubeApiserver) => api.requestsTo('POST', /\/eviction$/)

t.test('cordon and uncordon patch spec.unschedulable as a strategic merge patch', async (t) => {
  const { api, drainer } = await setup(t)
  api.addNode('n1')

  await drainer.cordon('n1')
  const [cordon, ...others] = api.requestsTo('PATCH', /^\/api\/v1\/nodes\/n1$/)
  t.equal(others.length, 0, 'one patch')
  t.equal(cordon?.contentType, 'application/strategic-merge-patch+json')
  t.same(cordon?.body, { spec: { unschedulable: true } })
  t.equal(cordon?.status, 200)
  t.equal(api.node('n1')?.spec.unschedulable, true)

  await drainer.cordon('n1')
  t.equal(api.requestsTo('PATCH', /nodes\/n1$/).length, 1, 'an already cordoned node is not patched again (as kubectl)')

  await drainer.uncordon('n1')
  const uncordon = api.requestsTo('PATCH', /nodes\/n1$/)[1]
  t.equal(uncordon?.contentType, 'application/strategic-merge-patch+json')
  t.same(uncordon?.body, { spec: { unschedulable: false } })
  t.equal(api.node('n1')?.spec.unschedulable, undefined, 'false is stored as absent, as the real server does')

  const missing = await failure(drainer.cordon('nope'))
  t.equal(missing.code, 'KUBERNETES_NODE_NOT_FOUND')
  t.equal(missing.kind, 'not_found')
  t.match(missing.message, /no node named nope/)
})

t.test('the pitfall: client-node 2.x patchNode sends application/json-patch+json unless told otherwise', async (t) => {
  const { api } = await setup(t)
  api.addNode('n1')
  const config = new KubeConfig()
  config.loadFromOptions({
    clusters: [{ name: 'fake', server: api.url, skipTLSVerify: true }],
    users: [{ name: 'tester' }],
    contexts: [{ name: 'ctx', cluster: 'fake', user: 'tester' }],
    currentContext: 'ctx',
  })
  const core = config.makeApiClient(CoreV1Api)
  await t.rejects(core.patchNode({ name: 'n1', body: { spec: { unschedulable: true } } }), { code: 400 })
  const [naive] = api.requestsTo('PATCH', /nodes\/n1$/)
  t.equal(naive?.contentType, 'application/json-patch+json', 'the first patch type of the OpenAPI list')
  t.equal(api.node('n1')?.spec.unschedulable, undefined, 'nothing changed')

  // And the double answers other media types as the real server: 415 with a Status body.
  const response = await fetch(`${api.url}/api/v1/nodes/n1`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: '{"spec":{"unschedulable":true}}' })
  t.equal(response.status, 415)
  t.match(await response.json(), { kind: 'Status', status: 'Failure', reason: 'UnsupportedMediaType', code: 415 })
  const merge = await fetch(`${api.url}/api/v1/nodes/n1`, { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json' }, body: '{"spec":{"unschedulable":true}}' })
  t.equal(merge.status, 200)
  t.equal(api.node('n1')?.spec.unschedulable, true)
  const stale = await fetch(`${api.url}/api/v1/nodes/n1`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/merge-patch+json' },
    body: '{"metadata":{"resourceVersion":"1"},"spec":{"unschedulable":false}}',
  })
  t.match(await stale.json(), { reason: 'Conflict', code: 409 })
  const invalid = await fetch(`${api.url}/api/v1/nodes/n1`, { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json' }, body: '{"spec":{"unschedulable":"yes"}}' })
  t.match(await invalid.json(), { reason: 'Invalid', code: 422, details: { causes: [{ field: 'spec.unschedulable' }] } })
  const gone = await fetch(`${api.url}/api/v1/namespaces/default/pods/ghost`)
  t.same(await gone.json(), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'pods "ghost" not found',
    reason: 'NotFound',
    details: { name: 'ghost', kind: 'pods' },
    code: 404,
  })
})

t.test('drain evicts controller pods, skips DaemonSet and mirror pods, waits until the pods are gone', async (t) => {
  const { api, drainer } = await setup(t)
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  api.addPod(web('web-b', 'n1'))
  api.addPod({ name: 'db-0', namespace: 'data', node: 'n1', labels: { app: 'db' }, controller: { kind: 'StatefulSet', name: 'db' } })
  api.addPod({ name: 'kube-proxy-x7k2p', namespace: 'kube-system', node: 'n1', controller: { kind: 'DaemonSet', name: 'kube-proxy' }, emptyDir: true })
  api.addPod({
    name: 'etcd-n1',
    namespace: 'kube-system',
    node: 'n1',
    annotations: { 'kubernetes.io/config.mirror': '0a1b2c', 'kubernetes.io/config.source': 'file' },
    controller: { kind: 'Node', name: 'n1', apiVersion: 'v1' },
  })
  api.addPod({ name: 'migration-done', node: 'n1', phase: 'Succeeded', emptyDir: true })
  // Terminating until its eviction arrives (no race with the listing on a slow machine).
  api.addPod({ name: 'leaving', node: 'n1', terminating: true, terminationDelayMs: 60_000 })
  api.onRequest = (request) => {
    if (request.method === 'POST' && request.path.endsWith('/leaving/eviction')) api.removePod('default', 'leaving')
  }
  api.addPod(web('web-c', 'n2'))
  const dbUid = api.pod('data', 'db-0')?.metadata.uid

  const messages: string[] = []
  const report = await drainer.drain('n1', drainOptions({ gracePeriodSeconds: 5 }), (message) => messages.push(message))

  t.same(report.skipped.sort(), ['kube-system/etcd-n1', 'kube-system/kube-proxy-x7k2p'])
  t.same(report.evicted.sort(), ['data/db-0', 'default/leaving', 'default/migration-done', 'default/web-a', 'default/web-b'], 'finished and terminating bare pods block nothing')
  t.equal(api.node('n1')?.spec.unschedulable, true, 'cordoned first')
  t.same(
    api.podsOn('n1').map((p) => p.metadata.name).sort(),
    ['etcd-n1', 'kube-proxy-x7k2p'],
    'only the DaemonSet and mirror pods remain',
  )
  const first = evictions(api).find((r) => r.path.endsWith('/web-a/eviction'))
  t.same(first?.body, { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'web-a', namespace: 'default' }, deleteOptions: { gracePeriodSeconds: 5 } })
  t.equal(first?.contentType, 'application/json')
  t.same(
    evictions(api).map((r) => r.path).sort(),
    [
      '/api/v1/namespaces/data/pods/db-0/eviction',
      '/api/v1/namespaces/default/pods/leaving/eviction',
      '/api/v1/namespaces/default/pods/migration-done/eviction',
      '/api/v1/namespaces/default/pods/web-a/eviction',
      '/api/v1/namespaces/default/pods/web-b/eviction',
    ],
    'one eviction per pod, none for DaemonSet or mirror pods',
  )
  const [list] = api.requestsTo('GET', /^\/api\/v1\/pods$/)
  t.equal(list?.query.fieldSelector, 'spec.nodeName=n1')
  t.equal(list?.query.limit, '500', "kubectl's chunk size")
  const replacements = api.podsOn('n2').map((p) => p.metadata.name)
  t.equal(replacements.filter((name) => name.startsWith('web-5d8f7c9b4-')).length, 2, 'the ReplicaSet replaced its pods on n2')
  for (let i = 0; i < 50 && !api.pod('data', 'db-0'); i++) await sleep(10)
  const db = api.pod('data', 'db-0')
  t.not(db?.metadata.uid, dbUid, 'the StatefulSet pod came back under its name with a new UID')
  t.equal(db?.spec.nodeName, 'n2')
  t.ok(messages.includes('cordoned node n1'))
  t.ok(messages.some((m) => /5 pod\(s\) to evict, 2 skipped/.test(m)), 'progress says what will happen')
  t.ok(messages.some((m) => m === 'evicted pod default/web-a') && messages.some((m) => m === 'pod default/web-a is gone'))
  t.match(messages.at(-1), /drained node n1: 5 pod\(s\) evicted/)
})

t.test('a pod gone before its eviction (404) counts as gone, without waiting for it', async (t) => {
  const { api, drainer } = await setup(t)
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  api.addPod(web('web-b', 'n1'))
  api.onRequest = (request) => {
    if (request.path === '/api/v1/pods') api.removePod('default', 'web-b')
  }
  const messages: string[] = []
  const report = await drainer.drain('n1', drainOptions(), (m) => messages.push(m))
  t.same(report.evicted.sort(), ['default/web-a', 'default/web-b'])
  t.same(
    api.requestsTo('POST', /web-b\/eviction$/).map((r) => r.status),
    [404],
  )
  t.same(api.requestsTo('GET', /pods\/web-b$/), [], 'no polling for a pod known to be gone')
  t.ok(messages.includes('pod default/web-b was already gone'))
})

t.test('a pod without a controller is refused before anything is evicted, unless force', async (t) => {
  const { api, drainer } = await setup(t)
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  api.addPod({ name: 'debug-shell', namespace: 'ops', node: 'n1' })

  const refused = await failure(drainer.drain('n1', drainOptions()))
  t.equal(refused.code, 'DRAIN_REFUSED')
  t.equal(refused.kind, 'conflict')
  t.match(refused.message, /ops\/debug-shell/)
  t.match(refused.message, /set force/)
  t.notMatch(refused.message, /web-a/)
  t.same(refused.details?.withoutController, ['ops/debug-shell'])
  t.equal(evictions(api).length, 0, 'nothing evicted')
  t.equal(api.node('n1')?.spec.unschedulable, true, 'the node stays cordoned')

  const report = await drainer.drain('n1', drainOptions({ force: true }))
  t.same(report.evicted.sort(), ['default/web-a', 'ops/debug-shell'])
  t.equal(api.pod('ops', 'debug-shell'), undefined, 'gone for good: nothing recreates it')
})

t.test('a pod with emptyDir is refused before anything is evicted, unless deleteEmptyDirData', async (t) => {
  const { api, drainer } = await setup(t)
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  api.addPod(web('cache-0', 'n1', { emptyDir: true }))
  api.addPod({ name: 'scratchpad', node: 'n1', emptyDir: true })

  const refused = await failure(drainer.drain('n1', drainOptions()))
  t.equal(refused.code, 'DRAIN_REFUSED')
  t.match(refused.message, /emptyDir.*deleteEmptyDirData.*default\/cache-0, default\/scratchpad/)
  t.match(refused.message, /without a controller.*force.*default\/scratchpad/, 'both reasons are named at once')
  t.equal(evictions(api).length, 0, 'nothing evicted')

  const stillRefused = await failure(drainer.drain('n1', drainOptions({ deleteEmptyDirData: true })))
  t.same(stillRefused.details, { node: 'n1', withoutController: ['default/scratchpad'], withEmptyDir: [] })
  t.equal(evictions(api).length, 0)

  const report = await drainer.drain('n1', drainOptions({ deleteEmptyDirData: true, force: true }))
  t.same(report.evicted.sort(), ['default/cache-0', 'default/scratchpad', 'default/web-a'])
})

t.test('a PodDisruptionBudget is honoured: 429s are retried until the replacements are Ready elsewhere', async (t) => {
  const { api, drainer } = await setup(t, { terminationDelayMs: 40, replacementReadyDelayMs: 150 })
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  api.addPod(web('web-b', 'n1'))
  api.addPod(web('web-c', 'n2'))
  api.addPodDisruptionBudget({ name: 'web', minAvailable: 2, matchLabels: { app: 'web' } })

  const messages: string[] = []
  const started = Date.now()
  const report = await drainer.drain('n1', drainOptions({ evictionRetryMs: 50 }), (m) => messages.push(m))
  t.same(report.evicted.sort(), ['default/web-a', 'default/web-b'])

  const refusals = evictions(api).filter((r) => r.status === 429)
  const accepted = evictions(api).filter((r) => r.status === 201)
  t.ok(refusals.length >= 1, `the budget said no at least once (${refusals.length} times)`)
  t.equal(accepted.length, 2, 'then both evictions went through')
  const firstAccepted = accepted[0]!.at
  const secondAccepted = accepted[1]!.at
  t.ok(secondAccepted - firstAccepted >= 140, 'the second pod went only once the first one\'s replacement was Ready')
  t.ok(refusals.every((r) => r.at - started < 5000))
  t.ok(
    messages.some((m) => /^pod default\/web-[ab]: a disruption budget refused the eviction \(The disruption budget web needs 2 healthy pods and has 2 currently\); retrying in 50 ms$/.test(m)),
    'progress names the pod and the budget',
  )
  t.same(api.podsOn('n1'), [])
  t.equal(api.podsOn('n2').length, 3)
})

t.test('a budget that never allows the eviction ends in DRAIN_TIMEOUT naming the pods; the node stays cordoned', async (t) => {
  const { api, drainer } = await setup(t)
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  api.addPod(web('web-b', 'n1'))
  api.addPod(web('job-runner', 'n1', { labels: { app: 'runner' } }))
  api.addPodDisruptionBudget({ name: 'web', minAvailable: 2, matchLabels: { app: 'web' } })

  const started = Date.now()
  const timedOut = await failure(drainer.drain('n1', drainOptions({ timeoutMs: 400, evictionRetryMs: 50 })))
  const elapsed = Date.now() - started
  t.equal(timedOut.code, 'DRAIN_TIMEOUT')
  t.equal(timedOut.kind, 'conflict')
  t.match(timedOut.message, /Draining node n1 timed out after 0\.\d s with 2 pod\(s\) left/)
  t.match(timedOut.message, /default\/web-a \(eviction refused \d+ time\(s\): The disruption budget web needs 2 healthy pods and has 2 currently\)/)
  t.match(timedOut.message, /default\/web-b/)
  t.notMatch(timedOut.message, /job-runner/, 'the pod that went is not named')
  t.same(timedOut.details?.left, ['default/web-a', 'default/web-b'])
  t.ok(elapsed >= 400 && elapsed < 1500, `stopped on time (${elapsed} ms)`)
  t.equal(api.node('n1')?.spec.unschedulable, true, 'the node stays cordoned')

  // Nothing keeps evicting behind the caller's back once it has the answer (a request already on its
  // way when the time ran out is let finish; no retry follows it).
  await sleep(30)
  const count = evictions(api).length
  await sleep(200)
  t.equal(evictions(api).length, count, 'no eviction after the timeout')

  await drainer.uncordon('n1')
  t.equal(api.node('n1')?.spec.unschedulable, undefined, 'uncordon puts it back')
  t.equal(api.podsOn('n1').length, 2)
})

t.test('a pod that stays terminating ends in DRAIN_TIMEOUT too', async (t) => {
  const { api, drainer } = await setup(t, { terminationDelayMs: 60_000 })
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  const timedOut = await failure(drainer.drain('n1', drainOptions({ timeoutMs: 300 })))
  t.equal(timedOut.code, 'DRAIN_TIMEOUT')
  t.match(timedOut.message, /default\/web-a \(evicted, still terminating\)/)
})

t.test('250 pods are listed in pages of 100 and all evicted', async (t) => {
  const { api, drainer } = await setup(t, { terminationDelayMs: 20, replacementReadyDelayMs: 10 }, { listPageSize: 100 })
  api.addNode('n1')
  api.addNode('n2')
  for (let i = 0; i < 250; i++) api.addPod(web(`web-${String(i).padStart(3, '0')}`, 'n1'))
  api.addPod({ name: 'elsewhere', node: 'n2' })

  const report = await drainer.drain('n1', drainOptions({ timeoutMs: 20_000 }))
  t.equal(report.evicted.length, 250)
  t.equal(new Set(report.evicted).size, 250, 'no pod twice')
  const lists = api.requestsTo('GET', /^\/api\/v1\/pods$/)
  t.equal(lists.length, 3, '100 + 100 + 50')
  t.same(lists.map((r) => r.query.limit), ['100', '100', '100'])
  t.equal(lists[0]?.query.continue, undefined)
  t.ok(lists[1]?.query.continue && lists[2]?.query.continue && lists[1].query.continue !== lists[2].query.continue, 'each page continues the last')
  t.equal(evictions(api).length, 250)
  t.equal(api.podsOn('n1').length, 0)
})

t.test('isReady reads the node\'s Ready condition', async (t) => {
  const { api, drainer } = await setup(t)
  api.addNode('n1')
  api.addNode('n2', { ready: false })
  t.equal(await drainer.isReady('n1'), true)
  t.equal(await drainer.isReady('n2'), false)
  api.setNodeReady('n1', false)
  t.equal(await drainer.isReady('n1'), false)
  api.setNodeReady('n2', true)
  t.equal(await drainer.isReady('n2'), true)
  t.equal(await drainer.isReady('never-registered'), false)
})

t.test('API failures become KUBERNETES_API_ERROR with the status, the reason and the server, never credentials', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('lab', new Date())
  const { api } = await setup(t)
  api.addNode('n1')
  api.addNode('n2')
  api.addPod(web('web-a', 'n1'))
  // The admin kubeconfig as the engine builds it, pointed at the plain-http double.
  const kubeconfig = adminKubeconfig('lab', pki, api.url)
  const drainer = new KubernetesNodeDrainer(kubeconfig, { deletePollIntervalMs: 20 })
  t.teardown(() => drainer.close())
  const secrets = [pki.admin.privateKeyPem, Buffer.from(pki.admin.privateKeyPem).toString('base64').slice(0, 40), 'client-key-data']
  const noSecrets = (error: SlipwayError) => {
    const text = `${error.message} ${JSON.stringify(error.details)}`
    t.notOk(secrets.some((secret) => text.includes(secret)), 'no credential in the error')
  }

  api.failRequests({ method: 'PATCH', path: /nodes\/n1$/ }, 403, 1)
  const forbidden = await failure(drainer.cordon('n1'))
  t.equal(forbidden.code, 'KUBERNETES_API_ERROR')
  t.equal(forbidden.kind, 'configuration')
  t.ok(forbidden.message.startsWith(`The Kubernetes API at ${api.url} forbade the engine to cordon node n1 (403 Forbidden: nodes "n1" is forbidden: User`), forbidden.message)
  t.match(forbidden.details, { server: api.url, status: 403, reason: 'Forbidden' })
  noSecrets(forbidden)

  api.failRequests({ method: 'GET', path: /nodes\/n1$/ }, 401, 1)
  const unauthorized = await failure(drainer.isReady('n1'))
  t.equal(unauthorized.code, 'KUBERNETES_API_ERROR')
  t.match(unauthorized.message, /did not accept the engine's credentials to read node n1 \(401 Unauthorized\)/)
  noSecrets(unauthorized)

  api.failRequests({ method: 'GET', path: /^\/api\/v1\/pods$/ }, 500, 1)
  const broken = await failure(drainer.drain('n1', drainOptions()))
  t.equal(broken.code, 'KUBERNETES_API_ERROR')
  t.equal(broken.kind, 'unavailable')
  t.match(broken.message, /failed to list the pods of node n1 \(500 InternalError: Internal error occurred: etcdserver: request timed out\); try again/)
  noSecrets(broken)

  api.failRequests({ method: 'POST', path: /eviction$/ }, 403, 1)
  const noEviction = await failure(drainer.drain('n1', drainOptions()))
  t.equal(noEviction.code, 'KUBERNETES_API_ERROR')
  t.match(noEviction.message, /forbade the engine to evict pod default\/web-a \(403 Forbidden: pods "web-a" is forbidden: User "system:anonymous" cannot create resource "pods\/eviction" in API group "" in the namespace "default"\)/)

  await api.close()
  const down = await failure(drainer.cordon('n2'))
  t.equal(down.code, 'KUBERNETES_API_ERROR')
  t.equal(down.kind, 'unavailable')
  // Its kept-alive connection was cut (closed by the server), the next ones are refused.
  t.match(down.message, new RegExp(`Cannot reach the Kubernetes API at ${api.url} to cordon node n2: connection (refused|closed)`))
  noSecrets(down)
  const downDuringDrain = await failure(drainer.drain('n1', drainOptions()))
  t.equal(downDuringDrain.code, 'KUBERNETES_API_ERROR')
  const refused = await failure(drainer.isReady('n1'))
  t.equal(refused.code, 'KUBERNETES_API_ERROR', 'isReady does not mistake an unreachable server for a not-ready node')
  t.match(refused.message, new RegExp(`Cannot reach the Kubernetes API at ${api.url} to read node n1: connection refused \\(ECONNREFUSED\\)`))
})

t.test('a kubeconfig that cannot work is refused up front', async (t) => {
  const code = (make: () => unknown) => {
    try {
      make()
    } catch (error) {
      return error instanceof SlipwayError ? `${error.code}: ${error.message}` : String(error)
    }
    return 'accepted'
  }
  t.match(code(() => new KubernetesNodeDrainer('clusters: [unclosed')), /^KUBECONFIG_INVALID/)
  t.match(code(() => new KubernetesNodeDrainer('apiVersion: v1\nkind: Config\nclusters: []\n')), /^KUBECONFIG_INVALID/)
  const plain = (server: string) => `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: ${server}\nusers:\n- name: u\n  user:\n    token: s3cret\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n`
  t.match(code(() => new KubernetesNodeDrainer(plain('http://10.0.0.5:8080'))), /^KUBECONFIG_INSECURE_SERVER: .*http:\/\/10\.0\.0\.5:8080/)
  t.equal(code(() => new KubernetesNodeDrainer(plain('http://127.0.0.1:8080'))), 'accepted', 'loopback http is for tests and kubectl proxy')
  t.equal(code(() => new KubernetesNodeDrainer(plain('https://10.0.0.5:6443'))), 'accepted')
  t.notMatch(code(() => new KubernetesNodeDrainer(plain('http://10.0.0.5:8080'))), /s3cret/)
})

t.test('over TLS with the admin kubeconfig: the client certificate authenticates, one connection serves the drain', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('lab', new Date())
  const api = await FakeKubeApiserver.start({ tls: { ...(await servingCertificate(pki)), clientCaPem: pki.kubernetesCa.certificatePem } })
  const drainer = new KubernetesNodeDrainer(adminKubeconfig('lab', pki, api.url), { deletePollIntervalMs: 20 })
  t.teardown(async () => {
    await drainer.close()
    await api.close()
  })
  api.addNode('n1')
  api.addNode('n2')
  for (let i = 0; i < 5; i++) api.addPod(web(`web-${i}`, 'n1'))

  const report = await drainer.drain('n1', drainOptions())
  t.equal(report.evicted.length, 5)
  t.equal(await drainer.isReady('n1'), true)
  t.ok(api.requests.length > 15, `${api.requests.length} requests`)
  t.ok(api.requests.every((r) => r.status !== 401 && /CN=slipway-admin@lab/.test(r.clientCertificate ?? '')), 'every request carried the admin certificate')
  t.ok(api.tlsConnections <= 20, `connections are reused (${api.tlsConnections} TLS connections for ${api.requests.length} requests)`)

  // A server whose certificate the cluster CA did not sign is named as such.
  const otherPki = await x509ClusterPkiIssuer.issue('other', new Date())
  const stranger = await FakeKubeApiserver.start({ tls: await servingCertificate(otherPki) })
  t.teardown(() => stranger.close())
  const wary = new KubernetesNodeDrainer(adminKubeconfig('lab', pki, stranger.url))
  t.teardown(() => wary.close())
  const untrusted = await failure(wary.isReady('n1'))
  t.equal(untrusted.code, 'KUBERNETES_API_ERROR')
  t.equal(untrusted.kind, 'configuration')
  t.match(untrusted.message, /presented a TLS certificate the engine does not trust/)
})
