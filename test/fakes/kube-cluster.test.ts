/**
 * The Kubernetes API object-store TEST DOUBLE (test/fakes/kube-cluster.ts) checked with real clients
 * over TLS on 127.0.0.1: @kubernetes/client-node's KubernetesObjectApi (server-side apply, list, delete),
 * the real helm 4 (install, list, status, upgrade, uninstall; a release record written by us), and the
 * real kubectl (get, apply --server-side). A test of the test double: if these clients are content with
 * it, tests of the engine's fan-out can trust it.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { ApiException, KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node'
import t, { type Test } from 'tap'
import { decodeReleaseRecord, encodeReleaseRecord, releaseRecordName, type HelmRelease } from '../../src/adapters/helm/release-record.ts'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import type { ClusterPki } from '../../src/core/clusters/cluster-pki.ts'
import { issueCertificate, servingCertificate } from '../helpers/test-pki.ts'
import { helmPath, kubectlPath } from '../helpers/tools.ts'
import { FakeKubeCluster, type FakeKubeClusterOptions, type KubeObject } from './kube-cluster.ts'
import { sleep, until } from '../helpers/wait.ts'

const TOKEN = 'slipway-fanout-token-0123456789abcdef'
const run = promisify(execFile)

interface Setup {
  cluster: FakeKubeCluster
  pki: ClusterPki
  api: KubernetesObjectApi
  kubeconfigFile: string
  directory: string
  helm: (...args: string[]) => Promise<string>
  kubectl: (...args: string[]) => Promise<string>
  call: (method: string, path: string, body?: unknown, contentType?: string) => Promise<{ status: number; body: any }>
}

let pkiPromise: Promise<ClusterPki> | undefined
const sharedPki = () => (pkiPromise ??= x509ClusterPkiIssuer.issue('fanout', new Date()))

async function setup(t: Test, options: FakeKubeClusterOptions = {}): Promise<Setup> {
  const pki = await sharedPki()
  const cluster = await FakeKubeCluster.start({ tls: { ...(await servingCertificate(pki)), clientCaPem: pki.kubernetesCa.certificatePem }, tokens: [TOKEN], readyDelayMs: 10, ...options })
  const directory = mkdtempSync(path.join(os.tmpdir(), 'slipway-kube-cluster-'))
  t.teardown(async () => {
    await cluster.close()
    rmSync(directory, { recursive: true, force: true })
  })
  const kubeconfigFile = await cluster.writeKubeconfig(path.join(directory, 'kubeconfig'), { token: TOKEN })
  const kc = new KubeConfig()
  kc.loadFromString(cluster.kubeconfig({ token: TOKEN }))
  // Helm and kubectl keep caches and configuration under HOME: give them a throwaway one.
  const env = { PATH: process.env.PATH ?? '', HOME: directory, HELM_CACHE_HOME: path.join(directory, 'helm-cache'), HELM_CONFIG_HOME: path.join(directory, 'helm-config'), HELM_DATA_HOME: path.join(directory, 'helm-data') }
  const tool = (binary: Promise<string>) => async (...args: string[]) => {
    const { stdout } = await run(await binary, ['--kubeconfig', kubeconfigFile, ...args], { env, timeout: 30_000 })
    return stdout
  }
  const call = (method: string, requestPath: string, body?: unknown, contentType = 'application/json') =>
    new Promise<{ status: number; body: any }>((resolve, reject) => {
      const url = new URL(requestPath, cluster.url)
      const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
      // Node sends a DELETE body with neither Content-Length nor chunking unless told its length.
      const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': contentType, accept: 'application/json', 'user-agent': 'slipway-test/1.0', ...(payload ? { 'content-length': String(payload.length) } : {}) }
      const request = https.request(url, { method, ca: pki.kubernetesCa.certificatePem, headers }, (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: unknown = text
          try {
            parsed = JSON.parse(text)
          } catch {
            // A text answer (a watch stream, 404 page) stays text.
          }
          resolve({ status: response.statusCode ?? 0, body: parsed })
        })
      })
      request.on('error', reject)
      request.end(payload)
    })
  return { cluster, pki, api: KubernetesObjectApi.makeApiClient(kc), kubeconfigFile, directory, helm: tool(helmPath()), kubectl: tool(kubectlPath()), call }
}

/** The ApiException a client-node call rejects with. */
async function apiError(promise: Promise<unknown>): Promise<ApiException<string>> {
  try {
    await promise
  } catch (error) {
    if (error instanceof ApiException) return error as ApiException<string>
    throw error
  }
  throw new Error('expected the API to refuse')
}

const deployment = (replicas: number, image: string, labels: Record<string, string> = { app: 'web', tier: 'front' }): Manifest => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop', labels },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image, ports: [{ containerPort: 8080 }] }] },
    },
  },
})

const configMap = (data: Record<string, string>, name = 'settings', labels: Record<string, string> = { app: 'web' }): Manifest => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'shop', labels },
  data,
})

const namespace = (name: string): Manifest => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })
/** Any object to apply: KubernetesObject plus its other fields (spec, data...). */
type Manifest = KubernetesObject & Record<string, unknown>
const apply = (api: KubernetesObjectApi, object: Manifest, manager = 'slipway', force = true) => api.patch(object, undefined, undefined, manager, force, PatchStrategy.ServerSideApply)
const managers = (object: KubeObject | undefined) => (object?.metadata.managedFields ?? []).map((m) => `${m.manager}/${m.operation}`).sort()

t.test('client-node: server-side apply creates and updates, records managedFields, prunes dropped fields; list and delete', async (t) => {
  const { cluster, api } = await setup(t)
  await apply(api, namespace('shop'))

  const created = (await apply(api, deployment(2, 'nginx:1.27'))) as KubeObject
  t.equal(created.metadata.generation, 1)
  t.match(created.metadata.uid, /^[0-9a-f-]{36}$/)
  t.ok(created.metadata.creationTimestamp)
  const [entry, ...otherEntries] = created.metadata.managedFields ?? []
  t.equal(otherEntries.length, 0, 'one manager')
  t.match(entry, { manager: 'slipway', operation: 'Apply', apiVersion: 'apps/v1', fieldsType: 'FieldsV1' })
  t.same(entry?.fieldsV1, {
    'f:metadata': { 'f:labels': { 'f:app': {}, 'f:tier': {} } },
    'f:spec': {
      'f:replicas': {},
      'f:selector': {},
      'f:template': {
        'f:metadata': { 'f:labels': { 'f:app': {} } },
        'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {}, 'f:name': {}, 'f:ports': { 'k:{"containerPort":8080,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {} } } } } },
      },
    },
  }, 'FieldsV1 as the real server writes it: keyed containers and ports, an atomic selector')
  t.match(created.spec, { replicas: 2, strategy: { type: 'RollingUpdate' }, revisionHistoryLimit: 10 }, 'defaults')
  await apply(api, configMap({ a: '1', b: '2' }))

  // The controller: the new generation is observed and the pods become ready.
  const ready = await until('web ready', () => {
    const current = cluster.get('Deployment', 'shop', 'web')
    const status = current?.status as { readyReplicas?: number; observedGeneration?: number } | undefined
    return status?.readyReplicas === 2 ? current : undefined
  }, 5000, 10)
  t.match(ready.status, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2, conditions: [{ type: 'Available', status: 'True' }, { type: 'Progressing', reason: 'NewReplicaSetAvailable' }] })

  // Re-apply: a new image and replica count, the tier label and the key b dropped.
  const updated = (await apply(api, deployment(3, 'nginx:1.28', { app: 'web' }))) as KubeObject
  t.equal(updated.metadata.generation, 2, 'spec changed: generation 2')
  t.equal(updated.metadata.uid, created.metadata.uid)
  t.ok(Number(updated.metadata.resourceVersion) > Number(created.metadata.resourceVersion))
  t.same(updated.metadata.labels, { app: 'web' }, 'the dropped label is gone')
  t.match(updated.spec, { replicas: 3, template: { spec: { containers: [{ name: 'web', image: 'nginx:1.28' }] } } })
  const cm = (await apply(api, configMap({ a: '1' }))) as KubeObject
  t.same(cm.data, { a: '1' }, 'the dropped key is gone')
  t.equal(cm.metadata.generation, undefined, 'ConfigMaps keep no generation')
  const labelsOnly = (await apply(api, deployment(3, 'nginx:1.28', { app: 'web', team: 'shop' }))) as KubeObject
  t.equal(labelsOnly.metadata.generation, 2, 'metadata-only change: same generation')
  // The controller's status writes for generation 2 bump the resourceVersion by themselves: let them land first.
  const settled = await until('web rolled out', () => {
    const current = cluster.get('Deployment', 'shop', 'web')
    const status = current?.status as { readyReplicas?: number; observedGeneration?: number } | undefined
    return status?.observedGeneration === 2 && status.readyReplicas === 3 ? current : undefined
  }, 5000, 10)
  const same = (await apply(api, deployment(3, 'nginx:1.28', { app: 'web', team: 'shop' }))) as KubeObject
  t.equal(same.metadata.resourceVersion, settled.metadata.resourceVersion, 'a no-op apply keeps the resourceVersion')

  // list: one namespace, all namespaces, label selectors, paging.
  for (const name of ['c1', 'c2', 'c3']) await apply(api, configMap({ x: name }, name, { app: 'web', tier: name === 'c3' ? 'db' : 'cache' }))
  const all = await api.list('v1', 'ConfigMap', 'shop')
  t.same(all.items.map((i) => i.metadata?.name), ['c1', 'c2', 'c3', 'settings'])
  t.same((await api.list('v1', 'ConfigMap', undefined, undefined, undefined, undefined, undefined, 'tier in (cache,db),tier!=db')).items.map((i) => i.metadata?.name), ['c1', 'c2'])
  t.same((await api.list('v1', 'ConfigMap', 'shop', undefined, undefined, undefined, undefined, '!tier')).items.map((i) => i.metadata?.name), ['settings'])
  t.same((await api.list('v1', 'ConfigMap', 'shop', undefined, undefined, undefined, 'metadata.name!=c1', 'tier')).items.map((i) => i.metadata?.name), ['c2', 'c3'])
  const firstPage = await api.list('v1', 'ConfigMap', 'shop', undefined, undefined, undefined, undefined, undefined, 2)
  t.same(firstPage.items.map((i) => i.metadata?.name), ['c1', 'c2'])
  const secondPage = await api.list('v1', 'ConfigMap', 'shop', undefined, undefined, undefined, undefined, undefined, 2, firstPage.metadata?._continue)
  t.same(secondPage.items.map((i) => i.metadata?.name), ['c3', 'settings'])
  t.same((await api.list('apps/v1', 'Deployment')).items.map((i) => `${i.metadata?.namespace}/${i.metadata?.name}`), ['shop/web'], 'all namespaces')

  const status = await api.delete(deployment(3, 'nginx:1.28'), undefined, undefined, undefined, undefined, 'Background')
  t.match(status, { status: 'Success', details: { name: 'web', group: 'apps', kind: 'deployments' } })
  const gone = await apiError(api.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' } }))
  t.equal(gone.code, 404)
  t.match(JSON.parse(gone.body), { kind: 'Status', reason: 'NotFound', message: 'deployments.apps "web" not found', details: { name: 'web', group: 'apps', kind: 'deployments' } })
  t.equal((await apiError(api.delete(deployment(3, 'x')))).code, 404, 'deleting twice is 404')
})

t.test('server-side apply: conflicts between managers, force, shared ownership, Update managers, validation', async (t) => {
  const { cluster, api, call } = await setup(t)
  await apply(api, namespace('shop'))
  await apply(api, deployment(2, 'nginx:1.27'))

  const conflict = await apiError(apply(api, { ...deployment(5, 'nginx:1.27'), metadata: { name: 'web', namespace: 'shop' } }, 'ops', false))
  t.equal(conflict.code, 409)
  t.match(JSON.parse(conflict.body), {
    kind: 'Status',
    status: 'Failure',
    reason: 'Conflict',
    code: 409,
    message: 'Apply failed with 1 conflict: conflict with "slipway": .spec.replicas',
    details: { causes: [{ reason: 'FieldManagerConflict', message: 'conflict with "slipway"', field: '.spec.replicas' }] },
  })
  const two = await apiError(apply(api, deployment(5, 'nginx:2'), 'ops', false))
  t.equal(JSON.parse(two.body).message, 'Apply failed with 2 conflicts: conflicts with "slipway":\n- .spec.replicas\n- .spec.template.spec.containers[name="web"].image')

  // Same values are shared; force takes the differing field away from its owner.
  await apply(api, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop', labels: { owner: 'ops' } }, spec: { replicas: 5, template: { spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } } } }, 'ops', true)
  let live = cluster.get('Deployment', 'shop', 'web')!
  t.same(managers(live), ['ops/Apply', 'slipway/Apply'])
  const slipwayFields = JSON.stringify(live.metadata.managedFields!.find((m) => m.manager === 'slipway')!.fieldsV1)
  t.notMatch(slipwayFields, /f:replicas/, 'slipway lost .spec.replicas')
  t.match(slipwayFields, /f:image/, 'slipway still (co-)owns the image')
  t.equal((live.spec as { replicas: number }).replicas, 5)

  // slipway re-applies without the image: ops still owns it, so it stays; the replicas conflict again.
  const again = await apiError(apply(api, deployment(2, 'nginx:1.27'), 'slipway', false))
  t.match(JSON.parse(again.body).message, 'conflict with "ops": .spec.replicas')
  await apply(api, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } }, spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web' }] } } } }, 'slipway', false)
  live = cluster.get('Deployment', 'shop', 'web')!
  t.match(live.spec, { replicas: 5, template: { spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } } }, 'fields another manager owns survive')
  t.same(live.metadata.labels, { app: 'web', owner: 'ops' }, 'slipway\'s dropped tier label went, ops\' label stayed')

  // A non-apply write makes an Update manager, whose fields apply then conflicts with.
  const edit = await call('PATCH', '/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=kubectl-edit', { spec: { paused: true } }, 'application/merge-patch+json')
  t.equal(edit.status, 200)
  t.same(managers(cluster.get('Deployment', 'shop', 'web')), ['kubectl-edit/Update', 'ops/Apply', 'slipway/Apply'])
  const paused = await apiError(apply(api, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { paused: false } }, 'slipway', false))
  t.equal(JSON.parse(paused.body).message, 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.paused')

  // What the real server refuses.
  const noManager = await call('PATCH', '/api/v1/namespaces/shop/configmaps/x', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }, 'application/apply-patch+yaml')
  t.equal(noManager.status, 422)
  t.equal(noManager.body.message, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
  const forceMerge = await call('PATCH', '/apis/apps/v1/namespaces/shop/deployments/web?force=true', { spec: {} }, 'application/merge-patch+json')
  t.equal(forceMerge.status, 422)
  t.match(forceMerge.body.message, /force: Forbidden: may not be specified for non-apply patch/)
  const yaml = await call('PATCH', '/api/v1/namespaces/shop/configmaps/from-yaml?fieldManager=slipway', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n', 'application/apply-patch+yaml')
  t.equal(yaml.status, 201, 'apply creates, with a YAML body')
  t.same(yaml.body.data, { k: 'v' })
  const wrongName = await call('PATCH', '/api/v1/namespaces/shop/configmaps/other?fieldManager=slipway', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'from-yaml' } }, 'application/apply-patch+yaml')
  t.equal(wrongName.status, 400)
  const missingNamespace = await apiError(apply(api, { ...configMap({ a: 'b' }), metadata: { name: 'x', namespace: 'nowhere' } }))
  t.equal(missingNamespace.code, 404)
  t.equal(JSON.parse(missingNamespace.body).message, 'namespaces "nowhere" not found')
  const dryRun = await call('PATCH', '/api/v1/namespaces/shop/configmaps/dry?fieldManager=slipway&dryRun=All', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dry' }, data: { a: 'b' } }, 'application/apply-patch+yaml')
  t.equal(dryRun.status, 201)
  t.equal(cluster.get('ConfigMap', 'shop', 'dry'), undefined, 'dryRun=All stores nothing')
})

t.test('server-side apply: associative lists merge by key; dropped items go unless another manager owns them', async (t) => {
  const { cluster, api } = await setup(t)
  await apply(api, namespace('shop'))
  const withContainers = (containers: unknown[], extra: Record<string, unknown> = {}): Manifest => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers } }, ...extra },
  })
  await apply(api, withContainers([{ name: 'web', image: 'web:1', ports: [{ containerPort: 80 }, { containerPort: 81 }], env: [{ name: 'MODE', value: 'a' }] }, { name: 'sidecar', image: 'envoy:1' }]))
  await apply(api, withContainers([{ name: 'web', image: 'web:1', ports: [{ containerPort: 80 }] }]))
  let containers = (cluster.get('Deployment', 'shop', 'web')!.spec as { template: { spec: { containers: unknown[] } } }).template.spec.containers
  t.same(containers, [{ name: 'web', image: 'web:1', ports: [{ containerPort: 80 }] }], 'the sidecar, port 81 and env went whole')
  // Another manager co-owns port 80 and sets minReadySeconds: slipway dropping them leaves them.
  await apply(api, withContainers([{ name: 'web', ports: [{ containerPort: 80 }] }], { minReadySeconds: 5 }), 'ops')
  await apply(api, withContainers([{ name: 'web', image: 'web:2' }]))
  const live = cluster.get('Deployment', 'shop', 'web')!
  containers = (live.spec as { template: { spec: { containers: unknown[] } } }).template.spec.containers
  t.same(containers, [{ name: 'web', image: 'web:2', ports: [{ containerPort: 80 }] }])
  t.equal((live.spec as { minReadySeconds?: number }).minReadySeconds, 5)
})

t.test('CRUD over HTTP: create, conflicts, update, merge/strategic/JSON patch, status, delete, namespaces, watch', async (t) => {
  const { cluster, call } = await setup(t)
  t.equal((await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } })).status, 201)
  const created = await call('POST', '/api/v1/namespaces/shop/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: '1' } })
  t.equal(created.status, 201)
  t.same(managers(created.body), ['slipway-test/Update'], 'an Update entry named after the User-Agent')
  const duplicate = await call('POST', '/api/v1/namespaces/shop/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } })
  t.match(duplicate, { status: 409, body: { reason: 'AlreadyExists', message: 'configmaps "c" already exists' } })
  const generated = await call('POST', '/api/v1/namespaces/shop/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'job-' } })
  t.match(generated.body.metadata.name, /^job-[a-z0-9]{5}$/)
  t.equal((await call('POST', '/api/v1/namespaces/shop/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'Bad_Name' } })).status, 422)

  // PUT with the current resourceVersion succeeds, with a stale one is 409, on a missing object 404.
  const replaced = await call('PUT', '/api/v1/namespaces/shop/configmaps/c', { ...created.body, data: { a: '2' } })
  t.equal(replaced.status, 200)
  const stale = await call('PUT', '/api/v1/namespaces/shop/configmaps/c', { ...created.body, data: { a: '3' } })
  t.match(stale, { status: 409, body: { reason: 'Conflict', message: 'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again' } })
  t.equal((await call('PUT', '/api/v1/namespaces/shop/configmaps/none', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'none' } })).status, 404)

  // Patches: merge, strategic (keyed containers), JSON patch.
  await call('POST', '/apis/apps/v1/namespaces/shop/deployments', deployment(1, 'nginx:1'))
  const strategic = await call('PATCH', '/apis/apps/v1/namespaces/shop/deployments/web', { spec: { template: { spec: { containers: [{ name: 'sidecar', image: 'envoy:1' }, { name: 'web', image: 'nginx:2' }] } } } }, 'application/strategic-merge-patch+json')
  t.same(strategic.body.spec.template.spec.containers.map((c: { name: string; image: string }) => `${c.name}=${c.image}`), ['web=nginx:2', 'sidecar=envoy:1'], 'containers merged by name')
  t.equal(strategic.body.metadata.generation, 2)
  const merged = await call('PATCH', '/api/v1/namespaces/shop/configmaps/c', { data: { b: '2', a: null } }, 'application/merge-patch+json')
  t.same(merged.body.data, { b: '2' })
  const jsonPatched = await call('PATCH', '/api/v1/namespaces/shop/configmaps/c', [{ op: 'test', path: '/data/b', value: '2' }, { op: 'add', path: '/data/c', value: '3' }, { op: 'remove', path: '/data/b' }], 'application/json-patch+json')
  t.same(jsonPatched.body.data, { c: '3' })
  t.equal((await call('PATCH', '/api/v1/namespaces/shop/configmaps/c', [{ op: 'test', path: '/data/c', value: 'x' }], 'application/json-patch+json')).status, 422)
  t.equal((await call('PATCH', '/api/v1/namespaces/shop/configmaps/c', { data: {} }, 'text/plain')).status, 415)

  // The status subresource: main-resource writes leave it alone.
  // (after the controller's own status writes, which moved the resourceVersion on)
  await until('web ready', () => ((cluster.get('Deployment', 'shop', 'web')?.status as { readyReplicas?: number } | undefined)?.readyReplicas === 1 ? true : undefined), 5000, 10)
  const current = (await call('GET', '/apis/apps/v1/namespaces/shop/deployments/web')).body
  t.equal((await call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web/status', { ...strategic.body, status: { replicas: 42 } })).status, 409, 'a stale resourceVersion')
  const withStatus = await call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web/status', { ...current, status: { replicas: 42 } })
  t.equal(withStatus.body.status.replicas, 42)
  const ignored = await call('PATCH', '/apis/apps/v1/namespaces/shop/deployments/web', { status: { replicas: 7 } }, 'application/merge-patch+json')
  t.equal(ignored.body.status.replicas, 42)

  // Watch from a resourceVersion: the changes since, then live ones, until timeoutSeconds.
  const from = (await call('GET', '/api/v1/namespaces/shop/configmaps')).body.metadata.resourceVersion
  const watching = call('GET', `/api/v1/namespaces/shop/configmaps?watch=true&resourceVersion=${from}&timeoutSeconds=1&labelSelector=watched`)
  await call('POST', '/api/v1/namespaces/shop/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'w', labels: { watched: 'yes' } } })
  await sleep(50)
  await call('DELETE', '/api/v1/namespaces/shop/configmaps/w')
  const events = String((await watching).body).trim().split('\n').map((line) => JSON.parse(line) as { type: string; object: KubeObject })
  t.same(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED w', 'DELETED w'])
  const expired = await call('GET', '/api/v1/namespaces/shop/configmaps?watch=true&resourceVersion=5')
  t.match(expired.body, { type: 'ERROR', object: { code: 410, reason: 'Expired' } }, 'one ERROR event: too old')

  // Delete: preconditions, cascading to dependents, namespaces taking their content.
  const owner = cluster.get('Deployment', 'shop', 'web')!
  cluster.put({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-1', namespace: 'shop', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: owner.metadata.uid!, controller: true }] }, spec: { replicas: 1, selector: { matchLabels: { app: 'web' } } } })
  t.equal((await call('DELETE', '/apis/apps/v1/namespaces/shop/deployments/web', { preconditions: { uid: 'other' } })).status, 409)
  t.equal((await call('DELETE', '/apis/apps/v1/namespaces/shop/deployments/web', { propagationPolicy: 'Background' })).status, 200)
  await until('the ReplicaSet collected', () => (cluster.get('ReplicaSet', 'shop', 'web-1') ? undefined : true), 5000, 10)
  const terminating = await call('DELETE', '/api/v1/namespaces/shop')
  t.match(terminating.body, { kind: 'Namespace', status: { phase: 'Terminating' } })
  t.equal((await call('POST', '/api/v1/namespaces/shop/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'late' } })).status, 403)
  await until('shop gone', () => (cluster.get('Namespace', undefined, 'shop') ? undefined : true), 5000, 10)
  t.same(cluster.objects({ namespace: 'shop' }), [], 'its content went with it')
  t.equal((await call('DELETE', '/api/v1/namespaces/default')).status, 403)
})

t.test('readiness: workloads become ready after readyDelayMs, unless held back', async (t) => {
  const { cluster, api } = await setup(t, { readyDelayMs: 30, neverReady: (o) => o.metadata.name === 'stuck' })
  await apply(api, namespace('shop'))
  await apply(api, { ...deployment(2, 'nginx:1'), metadata: { name: 'stuck', namespace: 'shop' } })
  await apply(api, { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'a', image: 'agent:1' }] } } } })
  await apply(api, { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: 'shop' }, spec: { replicas: 3, serviceName: 'db', selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'db', image: 'pg:16' }] } } } })
  await apply(api, { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'migrate', namespace: 'shop' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'm', image: 'm:1' }] } } } })
  await until('daemonset, statefulset and job done', () => {
    const ds = cluster.get('DaemonSet', 'shop', 'agent')?.status as { numberReady?: number } | undefined
    const sts = cluster.get('StatefulSet', 'shop', 'db')?.status as { readyReplicas?: number } | undefined
    const job = cluster.get('Job', 'shop', 'migrate')?.status as { succeeded?: number } | undefined
    return ds?.numberReady === 1 && sts?.readyReplicas === 3 && job?.succeeded === 1 ? true : undefined
  }, 5000, 10)
  t.match(cluster.get('DaemonSet', 'shop', 'agent')?.status, { desiredNumberScheduled: 1, numberReady: 1, observedGeneration: 1 })
  const stuck = cluster.get('Deployment', 'shop', 'stuck')!
  t.match(stuck.status, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, unavailableReplicas: 2, conditions: [{ type: 'Available', status: 'False' }] })
  t.equal((stuck.status as { readyReplicas?: number }).readyReplicas, undefined, 'never ready')
  cluster.setNeverReady(undefined)
  await until('stuck ready once released', () => ((cluster.get('Deployment', 'shop', 'stuck')?.status as { readyReplicas?: number }).readyReplicas === 2 ? true : undefined), 5000, 10)
})

t.test('authentication, faults, latency and a hung server', async (t) => {
  const { cluster, api, pki } = await setup(t, { latencyMs: 20 })
  const anonymous = new KubeConfig()
  anonymous.loadFromString(cluster.kubeconfig())
  const refused = await apiError(KubernetesObjectApi.makeApiClient(anonymous).list('v1', 'ConfigMap', 'default'))
  t.equal(refused.code, 401)
  const client = await issueCertificate(pki, { subject: 'O=system:masters, CN=fanout-admin', usage: 'client' })
  const byCertificate = new KubeConfig()
  byCertificate.loadFromString(cluster.kubeconfig({ clientCertificatePem: client.certificatePem, clientKeyPem: client.privateKeyPem }))
  t.same((await KubernetesObjectApi.makeApiClient(byCertificate).list('v1', 'Namespace')).items.map((n) => n.metadata?.name), ['default', 'kube-node-lease', 'kube-public', 'kube-system'])
  t.match(cluster.requests.at(-1), { user: 'O=system:masters, CN=fanout-admin', status: 200 })

  cluster.failRequests({ method: 'PATCH', path: /\/configmaps\/x$/ }, 403, 1)
  const forbidden = await apiError(apply(api, { ...configMap({}), metadata: { name: 'x', namespace: 'default' } }))
  t.equal(forbidden.code, 403)
  t.match(JSON.parse(forbidden.body).message, 'configmaps "x" is forbidden: User "system:serviceaccount:slipway:fanout" cannot patch resource "configmaps" in API group "" in the namespace "default"')
  await apply(api, { ...configMap({}), metadata: { name: 'x', namespace: 'default' } })

  const started = Date.now()
  await api.list('v1', 'ConfigMap', 'default')
  t.ok(Date.now() - started >= 20, 'latency')

  cluster.setUnresponsive(true)
  const hung = api.list('v1', 'ConfigMap', 'default')
  const outcome = await Promise.race([hung.then(() => 'answered', () => 'failed'), sleep(200).then(() => 'pending')])
  t.equal(outcome, 'pending', 'a hung server never answers')
  cluster.setUnresponsive(false)
  t.equal(await hung.then(() => 'answered', () => 'failed'), 'failed', 'the held request fails when the server lets go')
})

/** A small chart: a Deployment, a Service and a ConfigMap from values. */
function writeChart(directory: string): string {
  const chart = path.join(directory, 'web')
  mkdirSync(path.join(chart, 'templates'), { recursive: true })
  writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: "1.0.0"\n')
  writeFileSync(path.join(chart, 'values.yaml'), 'replicas: 2\ngreeting: hello\n')
  writeFileSync(path.join(chart, 'templates', 'NOTES.txt'), 'web is served by {{ .Release.Name }}-web\n')
  writeFileSync(
    path.join(chart, 'templates', 'deployment.yaml'),
    [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: {{ .Release.Name }}-web',
      '  labels: {app: web, release: {{ .Release.Name }}}',
      'spec:',
      '  replicas: {{ .Values.replicas }}',
      '  selector: {matchLabels: {app: web}}',
      '  template:',
      '    metadata: {labels: {app: web}}',
      '    spec:',
      '      containers:',
      '      - name: web',
      '        image: nginx:1.27',
      '        ports: [{containerPort: 80}]',
      '',
    ].join('\n'),
  )
  writeFileSync(path.join(chart, 'templates', 'service.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n')
  writeFileSync(path.join(chart, 'templates', 'configmap.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-config}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n')
  return chart
}

t.test('helm: install, list, status, upgrade, uninstall against the double', async (t) => {
  const { cluster, helm, directory } = await setup(t)
  const chart = writeChart(directory)

  // --wait: helm 4 watches (WatchList: sendInitialEvents and the initial-events-end bookmark) until ready.
  t.match(await helm('install', 'demo', chart, '-n', 'shop', '--create-namespace', '--set', 'greeting=hi', '--wait', '--timeout', '20s'), /STATUS: deployed/)
  t.ok(cluster.requests.some((r) => r.query.watch === 'true' && r.query.sendInitialEvents === 'true' && r.path.endsWith('/deployments')), 'helm watched the deployment')
  t.same(cluster.objects({ namespace: 'shop' }).map((o) => `${o.kind}/${o.metadata.name}`), [
    'ConfigMap/demo-config',
    'Deployment/demo-web',
    'Secret/sh.helm.release.v1.demo.v1',
    'Service/demo-web',
  ])
  t.same(managers(cluster.get('Deployment', 'shop', 'demo-web')), ['helm/Apply'], 'helm 4 applies server-side as "helm"')
  t.same(cluster.get('ConfigMap', 'shop', 'demo-config')?.data, { greeting: 'hi' })

  const [listed] = JSON.parse(await helm('list', '-n', 'shop', '-o', 'json')) as Array<Record<string, string>>
  t.match(listed, { name: 'demo', namespace: 'shop', revision: '1', status: 'deployed', chart: 'web-0.1.0', app_version: '1.0.0' })
  const status = JSON.parse(await helm('status', 'demo', '-n', 'shop', '-o', 'json')) as { info: { status: string; notes: string; resources?: Record<string, unknown[]> }; version: number }
  t.match(status, { version: 1, info: { status: 'deployed', notes: /web is served by demo-web/ } })
  t.same(Object.keys(status.info.resources ?? {}).sort(), ['v1/ConfigMap', 'v1/Pod(related)', 'v1/Service', 'v1/Deployment'].sort(), 'helm status read the resources back')

  // The record helm wrote decodes with our reader.
  const record = decodeReleaseRecord(cluster.get('Secret', 'shop', releaseRecordName('demo', 1)) as never)
  t.match(record.release, { name: 'demo', namespace: 'shop', version: 1, info: { status: 'deployed' }, chart: { metadata: { name: 'web', version: '0.1.0' } }, config: { greeting: 'hi' }, apply_method: 'ssa' })

  t.match(await helm('upgrade', 'demo', chart, '-n', 'shop', '--set', 'replicas=3', '--set', 'greeting=hi'), /REVISION: 2/)
  t.equal((cluster.get('Deployment', 'shop', 'demo-web')?.spec as { replicas: number }).replicas, 3)
  const history = JSON.parse(await helm('history', 'demo', '-n', 'shop', '-o', 'json')) as Array<{ revision: number; status: string }>
  t.same(history.map((h) => `${h.revision}:${h.status}`), ['1:superseded', '2:deployed'])

  t.match(await helm('uninstall', 'demo', '-n', 'shop'), /release "demo" uninstalled/)
  t.same(cluster.objects({ namespace: 'shop' }), [], 'objects and release records gone')
  t.same(JSON.parse(await helm('list', '-A', '-o', 'json')), [])

  // A workload that never becomes ready: helm --wait times out and records a failed release.
  cluster.setNeverReady((object) => object.kind === 'Deployment')
  const timedOut = await helm('install', 'slow', chart, '-n', 'shop', '--wait', '--timeout', '1s').then(
    () => '',
    (error: { stderr?: string }) => error.stderr ?? '',
  )
  t.match(timedOut, /context deadline exceeded|timed out|timeout/i, 'helm --wait gave up')
  const [failed] = JSON.parse(await helm('list', '-n', 'shop', '--failed', '-o', 'json')) as Array<Record<string, string>>
  t.match(failed, { name: 'slow', status: 'failed' })
})

t.test('helm reads a release record written directly, as the engine will write it', async (t) => {
  const { cluster, api, helm, directory } = await setup(t)
  const chart = writeChart(directory)
  await apply(api, namespace('shop'))
  // The manifest as `helm template` renders it; the engine applies its objects server-side itself.
  const manifest = await helm('template', 'shop-web', chart, '-n', 'shop', '--set', 'greeting=bonjour')
  const objects = manifest.split(/^---$/m).map((document) => document.trim()).filter((document) => document.includes('kind:'))
  const { parse } = await import('yaml')
  for (const document of objects) {
    const object = parse(document) as Manifest
    object.metadata = { ...object.metadata, namespace: 'shop' }
    await apply(api, object)
  }
  const deployedAt = '2026-01-02T03:04:05.123456789Z'
  const release: HelmRelease = {
    name: 'shop-web',
    namespace: 'shop',
    version: 1,
    info: { first_deployed: deployedAt, last_deployed: deployedAt, description: 'Install complete (slipway fan-out)', status: 'deployed', notes: 'web is served by shop-web-web' },
    chart: { metadata: { name: 'web', version: '0.1.0', apiVersion: 'v2', appVersion: '1.0.0' }, lock: null, templates: [], values: { replicas: 2, greeting: 'hello' }, schema: null, files: null },
    config: { greeting: 'bonjour' },
    manifest,
    apply_method: 'ssa',
  }
  const secret = encodeReleaseRecord(release, { modifiedAt: new Date(deployedAt), labels: { 'slipway.io/release': 'shop-web' } })
  t.match(secret, { metadata: { name: 'sh.helm.release.v1.shop-web.v1', namespace: 'shop', labels: { owner: 'helm', name: 'shop-web', status: 'deployed', version: '1' } }, type: 'helm.sh/release.v1' })
  t.same(decodeReleaseRecord(secret), { release, labels: { 'slipway.io/release': 'shop-web' } }, 'round trip')
  await apply(api, secret as unknown as Manifest)

  const [listed] = JSON.parse(await helm('list', '-n', 'shop', '-o', 'json')) as Array<Record<string, string>>
  t.match(listed, { name: 'shop-web', namespace: 'shop', revision: '1', status: 'deployed', chart: 'web-0.1.0', app_version: '1.0.0', updated: /^2026-01-02 03:04:05\.123456789 \+0000 UTC$/ })
  const status = JSON.parse(await helm('status', 'shop-web', '-n', 'shop', '-o', 'json')) as { name: string; version: number; info: Record<string, unknown>; config: unknown; manifest: string }
  t.match(status, { name: 'shop-web', version: 1, info: { status: 'deployed', description: 'Install complete (slipway fan-out)', notes: 'web is served by shop-web-web' }, config: { greeting: 'bonjour' } })
  t.match(await helm('get', 'values', 'shop-web', '-n', 'shop', '-o', 'json'), /"greeting":"bonjour"/)

  // helm can take over: an upgrade with the same values shares the fields with "slipway"; a changed
  // value conflicts with slipway's ownership (helm 4 applies without force) unless --force-conflicts.
  const conflict = await helm('upgrade', 'shop-web', chart, '-n', 'shop', '--set', 'greeting=bonjour', '--set', 'replicas=4').then(
    () => '',
    (error: { stderr?: string }) => error.stderr ?? '',
  )
  t.match(conflict, /conflict with "slipway": \.spec\.replicas/)
  t.match(await helm('upgrade', 'shop-web', chart, '-n', 'shop', '--set', 'greeting=bonjour', '--set', 'replicas=4', '--force-conflicts'), /STATUS: deployed/)
  t.equal((cluster.get('Deployment', 'shop', 'shop-web-web')?.spec as { replicas: number }).replicas, 4)
  t.match(await helm('uninstall', 'shop-web', '-n', 'shop'), /uninstalled/)
  t.same(cluster.objects({ namespace: 'shop' }).map((o) => o.metadata.name), [], 'helm removed what the engine applied')
})

t.test('kubectl: get across namespaces, apply --server-side', async (t) => {
  const { cluster, api, kubectl, directory } = await setup(t)
  await apply(api, namespace('shop'))
  await apply(api, deployment(2, 'nginx:1.27'))
  await until('ready', () => ((cluster.get('Deployment', 'shop', 'web')?.status as { readyReplicas?: number } | undefined)?.readyReplicas === 2 ? true : undefined), 5000, 10)
  const table = await kubectl('get', 'deployments', '-A')
  t.match(table, /^NAMESPACE\s+NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\nshop\s+web\s+2\/2\s+2\s+2\s+\d+s\n$/)
  t.match(await kubectl('rollout', 'status', 'deployment/web', '-n', 'shop', '--timeout=10s'), /deployment "web" successfully rolled out/)
  const listed = JSON.parse(await kubectl('get', 'configmaps,deployments', '-n', 'shop', '-o', 'json')) as { items: KubeObject[] }
  t.same(listed.items.map((i) => `${i.kind}/${i.metadata.name}`), ['Deployment/web'])

  const file = path.join(directory, 'cm.yaml')
  writeFileSync(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: shop}\ndata: {a: "1", b: "2"}\n')
  t.match(await kubectl('apply', '--server-side', '-f', file), /configmap\/extra serverside-applied/)
  writeFileSync(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: shop}\ndata: {a: "10"}\n')
  await kubectl('apply', '--server-side', '-f', file)
  const extra = cluster.get('ConfigMap', 'shop', 'extra')!
  t.same(extra.data, { a: '10' }, 'kubectl\'s dropped key pruned')
  t.same(managers(extra), ['kubectl/Apply'])
  t.match(await kubectl('get', 'configmap', 'extra', '-n', 'shop', '-o', 'jsonpath={.data.a}'), '10')
  t.match(await kubectl('delete', 'configmap', 'extra', '-n', 'shop'), /configmap "extra" deleted/)
  t.equal(cluster.get('ConfigMap', 'shop', 'extra'), undefined)
})
