/**
 * A TEST DOUBLE of a Kubernetes API server as a generic object store, for what Helm release fan-out
 * touches: real clients (@kubernetes/client-node's KubernetesObjectApi, `helm` and `kubectl`) talk to it
 * over node:https (or plain http) on 127.0.0.1. It is not Kubernetes: it keeps the real API's paths,
 * shapes, status codes and Status bodies, and models just enough of the control plane for a release to
 * be meaningful. See test/fakes/kube-apiserver.ts for the node-drain double it borrows its style from.
 *
 * - discovery: /version, /api, /api/v1, /apis, /apis/{group}/{version} (legacy discovery: aggregated
 *   discovery is answered with the legacy documents, which client-go accepts as a fallback) for core v1,
 *   apps, batch, networking.k8s.io, rbac, policy, autoscaling, apiextensions.k8s.io, and the kinds of
 *   every established CustomResourceDefinition. /openapi/v3 lists each resource's PATCH parameters
 *   (helm and kubectl look for `fieldValidation` there and then leave validation to the server; without
 *   it they want the /openapi/v2 schemas, which stay 404). GET answers a meta.k8s.io Table when asked
 *   (kubectl get), with the real printer columns for the common kinds. Request bodies may be JSON, YAML
 *   or, for Secrets, ConfigMaps and DeleteOptions, protobuf (helm's release storage sends protobuf; see
 *   kube-protobuf.ts); answers are JSON.
 * - CRUD on every resource: GET, LIST (one namespace or all) with labelSelector (full syntax),
 *   fieldSelector (metadata.name, metadata.namespace, and a few per kind), limit/continue; WATCH
 *   (`watch=true`: initial ADDED events or replay after a resourceVersion from a bounded history, 410
 *   when it is too old, sendInitialEvents with the initial-events-end bookmark, timeoutSeconds); POST
 *   (409 AlreadyExists, generateName, 404 in a missing namespace, 403 in a terminating one); PUT (409
 *   on a stale resourceVersion, 404 when absent); DELETE (Status or the object as the real server
 *   answers, preconditions, ownerReference garbage collection unless Orphan; a namespace turns
 *   Terminating and takes its content with it); DELETE on a collection; the status subresource.
 * - PATCH: merge (RFC 7386), strategic merge (merge plus keyed lists, see kube-api-double.ts), JSON
 *   patch (RFC 6902) and server-side apply (application/apply-patch+yaml, YAML or JSON body): fieldManager
 *   required (422), force only with apply (422), creates the object when absent, conflicts with other
 *   managers' fields answered 409 with the real message and FieldManagerConflict causes unless
 *   force=true, fields dropped from a manager's configuration removed when nobody else owns them.
 *   Every write maintains metadata.managedFields (Apply and Update entries, FieldsV1) as the real
 *   server does, with the subset of structured-merge-diff in kube-api-double.ts; `dryRun=All` changes
 *   nothing.
 * - every write bumps resourceVersion and keeps uid and creationTimestamp; kinds with a spec keep a
 *   generation that grows when anything but metadata and status changes. A few defaults the API
 *   server applies (Service clusterIP, ports' protocol and targetPort, Deployment replicas and
 *   strategy, Secret type and stringData, Namespace phase and finalizers); Secrets and ConfigMaps over
 *   1 MiB are 422 as on the real server.
 * - "controllers": Deployments, StatefulSets, DaemonSets and ReplicaSets report their new generation at
 *   once and become ready `readyDelayMs` later (observedGeneration, replicas, readyReplicas,
 *   updatedReplicas, availableReplicas and conditions; desiredNumberScheduled/numberReady for DaemonSets);
 *   Jobs complete, Pods run and turn Ready, PersistentVolumeClaims bind. `setNeverReady` keeps chosen
 *   workloads unready (readiness timeouts).
 * - authentication with bearer tokens and/or client certificates from a CA (401 otherwise), `latencyMs`,
 *   `setUnresponsive`, `failRequests`, and a request log: the server and every patch format are
 *   kube-api-double.ts's, shared with the node-drain double.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import type http from 'node:http'
import { parse as parseYaml } from 'yaml'
import { SlipwayError } from '../../src/core/errors.ts'
import { parseLabelSelector, type LabelSelector } from '../../src/core/selection/label-selector.ts'
import {
  changedFieldSet,
  clone,
  deepEqual,
  fail,
  FieldSet,
  fieldSetOf,
  generatedSuffix,
  HttpError,
  isObject,
  KubeApiDouble,
  kubeconfigFor,
  mergeApplied,
  now,
  patchDocument,
  patchMediaType,
  pathString,
  PROTOBUF,
  removeAt,
  statusBody,
  strategicMerge,
  valueAt,
  type ApiCall,
  type ApiServerOptions,
  type BaseRecordedRequest,
  type FieldPath,
  type KubeconfigCredentials,
} from './kube-api-double.ts'
import { decodeKubernetesProtobuf } from './kube-protobuf.ts'

export type { KubeconfigCredentials }

// ----- types -----

/** A Kubernetes object as stored: any JSON object with apiVersion, kind and metadata. */
export interface KubeObject {
  apiVersion: string
  kind: string
  metadata: ObjectMeta
  [field: string]: unknown
}

export interface ObjectMeta {
  name: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  generation?: number
  creationTimestamp?: string
  deletionTimestamp?: string
  generateName?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }>
  finalizers?: string[]
  managedFields?: ManagedFieldsEntry[]
  [field: string]: unknown
}

export interface ManagedFieldsEntry {
  manager: string
  operation: 'Apply' | 'Update'
  apiVersion: string
  time: string
  fieldsType: 'FieldsV1'
  fieldsV1: Record<string, unknown>
  subresource?: string
}

/** One resource the double serves, as discovery describes it. */
export interface ResourceType {
  group: string
  version: string
  kind: string
  plural: string
  singular: string
  namespaced: boolean
  verbs: string[]
  shortNames?: string[]
  categories?: string[]
  /** metadata.generation is kept and grows with spec changes. */
  generation: boolean
  /** status is a subresource: writes to the main resource leave it alone. */
  status: boolean
  scale?: boolean
  /** A CustomResourceDefinition's kind (served as unstructured: list items keep apiVersion and kind). */
  custom?: boolean
}

export interface RecordedRequest extends BaseRecordedRequest {
  accept: string | undefined
  userAgent: string | undefined
  /** Who authenticated: "token:<first 6 chars>…" or the client certificate's subject. */
  user?: string
}

export interface FakeKubeClusterOptions extends Omit<ApiServerOptions, 'tls'> {
  /**
   * Serve https with this certificate. `caPem` is the CA of the serving certificate written into
   * kubeconfigs (default `clientCaPem`, as kubeadm's one cluster CA signs both); with `clientCaPem`,
   * client certificates signed by it authenticate.
   */
  tls?: { certificatePem: string; privateKeyPem: string; caPem?: string; clientCaPem?: string }
  /** What /version answers (default v1.33.4). */
  gitVersion?: string
  /** How long a workload, Job or Pod takes to turn ready/complete after a change (default 20 ms). */
  readyDelayMs?: number
  /** How long a deleted namespace stays Terminating before its content and itself are gone (default 20 ms). */
  namespaceDeletionDelayMs?: number
  /** Nodes a DaemonSet is scheduled on (default 1). */
  nodeCount?: number
  /** Workloads that never become ready (see setNeverReady). */
  neverReady?: (object: KubeObject) => boolean
  /** Watch events kept for resumption from a resourceVersion (default 5000). */
  watchHistory?: number
}

export interface ObjectFilter {
  /** Kind ("Deployment"), plural ("deployments") or plural.group ("deployments.apps"). */
  kind?: string
  namespace?: string
  labelSelector?: string
}

interface WatchEvent {
  resourceVersion: number
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  resource: ResourceType
  object: KubeObject
  previous?: KubeObject
}

interface Watcher {
  resource: ResourceType
  namespace: string | undefined
  labels: LabelSelector
  fields: FieldRequirement[]
  response: http.ServerResponse
}

interface FieldRequirement {
  field: string
  equal: boolean
  value: string
}

interface RequestContext {
  /** The fieldManager for non-apply writes: the query parameter, else the User-Agent's first word. */
  manager: string
  dryRun: boolean
  /** group/version of the request, for managedFields. */
  apiVersion: string
}

// ----- the resources served -----

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']

function resource(group: string, version: string, kind: string, plural: string, namespaced: boolean, extra: Partial<ResourceType> = {}): ResourceType {
  return { group, version, kind, plural, singular: kind.toLowerCase(), namespaced, verbs: ALL_VERBS, generation: false, status: false, ...extra }
}

const BUILT_IN: ResourceType[] = [
  resource('', 'v1', 'Namespace', 'namespaces', false, { shortNames: ['ns'], status: true, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] }),
  resource('', 'v1', 'ConfigMap', 'configmaps', true, { shortNames: ['cm'] }),
  resource('', 'v1', 'Secret', 'secrets', true),
  resource('', 'v1', 'Service', 'services', true, { shortNames: ['svc'], categories: ['all'], status: true }),
  resource('', 'v1', 'ServiceAccount', 'serviceaccounts', true, { shortNames: ['sa'] }),
  resource('', 'v1', 'Pod', 'pods', true, { shortNames: ['po'], categories: ['all'], status: true }),
  resource('', 'v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', true, { shortNames: ['pvc'], status: true }),
  resource('', 'v1', 'Event', 'events', true, { shortNames: ['ev'] }),
  resource('', 'v1', 'Endpoints', 'endpoints', true, { shortNames: ['ep'], singular: 'endpoints' }),
  resource('', 'v1', 'Node', 'nodes', false, { shortNames: ['no'], status: true }),
  resource('apps', 'v1', 'Deployment', 'deployments', true, { shortNames: ['deploy'], categories: ['all'], generation: true, status: true, scale: true }),
  resource('apps', 'v1', 'StatefulSet', 'statefulsets', true, { shortNames: ['sts'], categories: ['all'], generation: true, status: true, scale: true }),
  resource('apps', 'v1', 'DaemonSet', 'daemonsets', true, { shortNames: ['ds'], categories: ['all'], generation: true, status: true }),
  resource('apps', 'v1', 'ReplicaSet', 'replicasets', true, { shortNames: ['rs'], categories: ['all'], generation: true, status: true, scale: true }),
  resource('apps', 'v1', 'ControllerRevision', 'controllerrevisions', true),
  resource('batch', 'v1', 'Job', 'jobs', true, { categories: ['all'], generation: true, status: true }),
  resource('batch', 'v1', 'CronJob', 'cronjobs', true, { shortNames: ['cj'], categories: ['all'], generation: true, status: true }),
  resource('networking.k8s.io', 'v1', 'Ingress', 'ingresses', true, { shortNames: ['ing'], generation: true, status: true }),
  resource('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', true, { shortNames: ['netpol'], generation: true }),
  resource('networking.k8s.io', 'v1', 'IngressClass', 'ingressclasses', false),
  resource('rbac.authorization.k8s.io', 'v1', 'Role', 'roles', true),
  resource('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings', true),
  resource('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', false),
  resource('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', false),
  resource('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets', true, { shortNames: ['pdb'], generation: true, status: true }),
  resource('autoscaling', 'v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers', true, { shortNames: ['hpa'], categories: ['all'], status: true }),
  resource('apiextensions.k8s.io', 'v1', 'CustomResourceDefinition', 'customresourcedefinitions', false, { shortNames: ['crd', 'crds'], generation: true, status: true }),
]

const groupVersion = (r: { group: string; version: string }) => (r.group ? `${r.group}/${r.version}` : r.version)
const qualified = (r: ResourceType) => (r.group ? `${r.plural}.${r.group}` : r.plural)
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public'])
/** etcd's and the API server's limit on Secret and ConfigMap data. */
const MAX_DATA_BYTES = 1024 * 1024
const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'])
/** Fields the server owns: never part of a manager's field set. */
const SYSTEM_METADATA = ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink']

export class FakeKubeCluster extends KubeApiDouble<RecordedRequest> {
  private readonly resources: ResourceType[] = [...BUILT_IN]
  /** By `group|plural|namespace|name`. */
  private readonly store = new Map<string, KubeObject>()
  private readonly watchers = new Set<Watcher>()
  private readonly history: WatchEvent[] = []
  private neverReady: ((object: KubeObject) => boolean) | undefined
  private nextClusterIp = 10

  private constructor(private readonly options: FakeKubeClusterOptions) {
    super(options)
    this.neverReady = options.neverReady
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.commit(this.resourceOf('Namespace'), undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, { manager: 'kube-apiserver', dryRun: false, apiVersion: 'v1' })
    }
  }

  static async start(options: FakeKubeClusterOptions = {}): Promise<FakeKubeCluster> {
    const cluster = new FakeKubeCluster(options)
    await cluster.listen()
    return cluster
  }

  override async close(): Promise<void> {
    for (const watcher of this.watchers) watcher.response.end()
    this.watchers.clear()
    await super.close()
  }

  // ----- for tests -----

  /** A kubeconfig for helm, kubectl or client-node: server, CA data, and a token or client certificate. */
  kubeconfig(credentials: KubeconfigCredentials = {}): string {
    return kubeconfigFor(this.url, this.options.tls?.caPem ?? this.options.tls?.clientCaPem, credentials)
  }

  /** Writes `kubeconfig(credentials)` to `file` readable by its owner only (helm warns otherwise). */
  async writeKubeconfig(file: string, credentials: KubeconfigCredentials = {}): Promise<string> {
    await writeFile(file, this.kubeconfig(credentials), { mode: 0o600 })
    return file
  }

  /** The resource types served (built-in and from established CRDs). */
  resourceTypes(): ResourceType[] {
    return this.resources.map((r) => ({ ...r }))
  }

  /** Stored objects (copies) ordered by namespace, kind and name, optionally filtered. */
  objects(filter: ObjectFilter = {}): KubeObject[] {
    const wanted = filter.kind ? this.resourceOf(filter.kind) : undefined
    const selector = filter.labelSelector ? parseLabelSelector(filter.labelSelector) : undefined
    const order = (o: KubeObject) => `${o.metadata.namespace ?? ''}\u0000${o.kind}\u0000${o.metadata.name}`
    return [...this.store.values()]
      .filter((o) => !wanted || (this.resourceFor(o)?.plural === wanted.plural && this.resourceFor(o)?.group === wanted.group))
      .filter((o) => filter.namespace === undefined || o.metadata.namespace === filter.namespace)
      .filter((o) => !selector || selector.matches(o.metadata.labels ?? {}))
      .sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))
      .map((o) => clone(o))
  }

  /** One object (a copy), by kind ("Deployment", "deployments" or "deployments.apps"). */
  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const type = this.resourceOf(kind)
    const object = this.store.get(this.key(type, type.namespaced ? namespace ?? 'default' : undefined, name))
    return object && clone(object)
  }

  /** Creates or replaces an object directly (manager "test"), with the server's defaults and controllers. */
  put(object: Omit<KubeObject, 'metadata'> & { metadata: Partial<ObjectMeta> & { name: string } }): KubeObject {
    const type = this.resourceFor(object as KubeObject)
    if (!type) throw new Error(`no resource for ${object.apiVersion} ${object.kind}`)
    const namespace = type.namespaced ? object.metadata.namespace ?? 'default' : undefined
    const existing = this.store.get(this.key(type, namespace, object.metadata.name))
    const next = clone(object) as KubeObject
    if (namespace) next.metadata.namespace = namespace
    return clone(this.commit(type, existing, next, { manager: 'test', dryRun: false, apiVersion: groupVersion(type) }))
  }

  /** Deletes an object directly, as the API would (namespaces terminate, dependents are collected). */
  remove(kind: string, namespace: string | undefined, name: string): void {
    const type = this.resourceOf(kind)
    this.deleteObject(type, type.namespaced ? namespace ?? 'default' : undefined, name, {}, false)
  }

  /**
   * Workloads (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, Pods) for which the predicate
   * is true stay unready; undefined lets everything become ready. Already ready workloads are left as
   * they are until their next change.
   */
  setNeverReady(predicate: ((object: KubeObject) => boolean) | undefined): void {
    this.neverReady = predicate
    if (!predicate) for (const object of this.store.values()) this.reconcile(object, true)
  }

  // ----- HTTP -----

  protected describe(base: BaseRecordedRequest, { request }: ApiCall): RecordedRequest {
    return { ...base, accept: request.headers.accept, userAgent: request.headers['user-agent'] }
  }

  protected override authenticated(record: RecordedRequest, user: string): void {
    if (user) record.user = user
  }

  protected override unexpected(error: unknown): HttpError {
    // The label selector parser's INVALID_SELECTOR.
    if (error instanceof SlipwayError) return fail(400, `unable to parse requirement: ${error.message}`)
    return super.unexpected(error)
  }

  protected override stream(url: URL, response: http.ServerResponse): void {
    this.startWatch(url, response)
  }

  protected override faultFor(status: number, method: string, path: string): HttpError | undefined {
    const target = this.parseResourcePath(path.split('/').filter(Boolean))
    if (status === 403 && target) {
      const { type, namespace, name, subresource } = target
      const verb = method === 'PATCH' ? 'patch' : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'DELETE' ? 'delete' : name ? 'get' : 'list'
      const scope = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope'
      const full = subresource ? `${type.plural}/${subresource}` : type.plural
      return fail(403, `${qualified(type)}${name ? ` "${name}"` : ''} is forbidden: User "system:serviceaccount:slipway:fanout" cannot ${verb} resource "${full}" in API group "${type.group}" ${scope}`, {
        ...(name ? { name } : {}),
        group: type.group,
        kind: type.plural,
      })
    }
    if (status === 404 && target?.name) return this.notFound(target.type, target.name)
    if (status === 409 && target?.name) return this.conflict(target.type, target.name)
    return undefined
  }

  private notFound(type: ResourceType, name: string): HttpError {
    return fail(404, `${qualified(type)} "${name}" not found`, { name, group: type.group, kind: type.plural })
  }

  private conflict(type: ResourceType, name: string): HttpError {
    return fail(409, `Operation cannot be fulfilled on ${qualified(type)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, {
      name,
      group: type.group,
      kind: type.plural,
    })
  }

  protected route({ method, url, request, raw, bytes }: ApiCall): [number, unknown] | 'streaming' {
    const parts = url.pathname.split('/').filter(Boolean)
    const query = url.searchParams
    if (method === 'GET' && url.pathname === '/version') {
      const gitVersion = this.options.gitVersion ?? 'v1.33.4'
      const [major = '1', minor = '33'] = gitVersion.replace(/^v/, '').split('.')
      return [200, { major, minor, gitVersion, gitCommit: '0'.repeat(40), gitTreeState: 'clean', buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.24.0', compiler: 'gc', platform: 'linux/amd64' }]
    }
    if (method === 'GET' && url.pathname === '/api') {
      return [200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: new URL(this.url).host }] }]
    }
    if (method === 'GET' && url.pathname === '/apis') return [200, this.groupList()]
    if (method === 'GET' && url.pathname.startsWith('/openapi/v3')) return [200, this.openApiV3(url.pathname.slice('/openapi/v3'.length).replace(/^\//, ''))]
    if (parts[0] !== 'api' && parts[0] !== 'apis') throw new HttpError(404, '404 page not found\n', 'text/plain; charset=utf-8')
    // Discovery of one group version.
    const gvLength = parts[0] === 'api' ? 2 : 3
    if (parts.length === gvLength) {
      const [group, version] = parts[0] === 'api' ? ['', parts[1] ?? ''] : [parts[1] ?? '', parts[2] ?? '']
      if (method !== 'GET') throw fail(405, 'the server does not allow this method on the requested resource')
      const list = this.resourceList(group, version)
      if (!list) throw fail(404, 'the server could not find the requested resource')
      return [200, list]
    }
    if (parts[0] === 'apis' && parts.length === 2) {
      const group = this.groupList().groups.find((g) => g.name === parts[1])
      if (!group) throw fail(404, 'the server could not find the requested resource')
      return [200, { kind: 'APIGroup', apiVersion: 'v1', ...group }]
    }
    const target = this.parseResourcePath(parts)
    if (!target) throw fail(404, 'the server could not find the requested resource')
    const { type, namespace, name, subresource } = target
    const context: RequestContext = {
      manager: this.managerFor(query, request),
      dryRun: query.getAll('dryRun').includes('All'),
      apiVersion: groupVersion(type),
    }
    if (query.has('fieldManager') && (query.get('fieldManager') ?? '').length > 128) {
      throw fail(422, `${method === 'PATCH' ? 'PatchOptions' : method === 'POST' ? 'CreateOptions' : 'UpdateOptions'}.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes`)
    }
    if (type.namespaced && namespace === undefined && (name !== undefined || !['GET', 'DELETE'].includes(method))) throw fail(404, 'the server could not find the requested resource')
    if (subresource !== undefined && !(subresource === 'status' && type.status)) throw fail(404, 'the server could not find the requested resource')

    if (name === undefined) {
      switch (method) {
        case 'GET':
          if (['true', '1'].includes(query.get('watch') ?? '')) return 'streaming'
          if (wantsTable(request)) return [200, this.table(type, this.list(type, namespace, query), query)]
          return [200, this.list(type, namespace, query)]
        case 'POST':
          return [201, this.create(type, namespace, this.decodeBody(request, raw, bytes), query, context)]
        case 'DELETE':
          return [200, this.deleteCollection(type, namespace, query, context)]
        default:
          throw fail(405, 'the server does not allow this method on the requested resource')
      }
    }
    switch (method) {
      case 'GET': {
        const object = this.existing(type, namespace, name)
        if (wantsTable(request)) return [200, this.table(type, { metadata: { resourceVersion: object.metadata.resourceVersion }, items: [object] }, query)]
        return [200, object]
      }
      case 'PUT':
        return this.update(type, namespace, name, this.decodeBody(request, raw, bytes), subresource, context)
      case 'PATCH':
        return this.patch(type, namespace, name, request.headers['content-type'], raw, query, subresource, context)
      case 'DELETE': {
        const options = raw ? this.decodeBody(request, raw, bytes) : {}
        return [200, this.deleteObject(type, namespace, name, { ...options, ...(query.get('propagationPolicy') ? { propagationPolicy: query.get('propagationPolicy') } : {}) }, context.dryRun)]
      }
      default:
        throw fail(405, 'the server does not allow this method on the requested resource')
    }
  }

  /** /api/v1/[namespaces/{ns}/]{plural}[/{name}[/{sub}]] and /apis/{g}/{v}/... */
  private parseResourcePath(parts: string[]): { type: ResourceType; namespace: string | undefined; name: string | undefined; subresource: string | undefined } | undefined {
    const [group, version, rest] = parts[0] === 'api' ? ['', parts[1], parts.slice(2)] : parts[0] === 'apis' ? [parts[1], parts[2], parts.slice(3)] : [undefined, undefined, []]
    if (group === undefined || version === undefined || rest.length === 0) return undefined
    const find = (plural: string | undefined) => this.resources.find((r) => r.group === group && r.version === version && r.plural === plural)
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const type = find(rest[2])
      if (type?.namespaced && rest.length <= 5) return { type, namespace: rest[1], name: rest[3], subresource: rest[4] }
    }
    const type = find(rest[0])
    if (!type || rest.length > 3) return undefined
    return { type, namespace: undefined, name: rest[1], subresource: rest[2] }
  }

  private managerFor(query: URLSearchParams, request: http.IncomingMessage): string {
    const explicit = query.get('fieldManager')
    if (explicit) return explicit
    // The real server's default: the User-Agent up to its first "/".
    return (request.headers['user-agent'] ?? 'unknown').split('/')[0]!.slice(0, 128)
  }

  private decodeBody(request: http.IncomingMessage, raw: string, bytes: Buffer): Record<string, unknown> {
    const type = (request.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase()
    if (type === PROTOBUF) {
      try {
        return decodeKubernetesProtobuf(bytes)
      } catch (error) {
        // The real server decodes every built-in type; the double only those clients send (kube-protobuf.ts).
        throw fail(415, `the body of the request was in an unknown format - ${(error as Error).message}`)
      }
    }
    if (!['application/json', 'application/yaml', '*/*'].includes(type)) {
      throw fail(415, `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, ${PROTOBUF}`)
    }
    let decoded: unknown
    try {
      decoded = type === 'application/yaml' ? parseYaml(raw) : JSON.parse(raw)
    } catch (error) {
      throw fail(400, `error decoding request body: ${(error as Error).message}`)
    }
    if (!isObject(decoded)) throw fail(400, 'Object \'Kind\' is missing in request body')
    return decoded
  }

  // ----- discovery -----

  private groupList() {
    const groups = new Map<string, string[]>()
    for (const r of this.resources) if (r.group) groups.set(r.group, [...new Set([...(groups.get(r.group) ?? []), r.version])])
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups.entries()].map(([name, versions]) => ({
        name,
        versions: versions.map((version) => ({ groupVersion: `${name}/${version}`, version })),
        preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
      })),
    }
  }

  private resourceList(group: string, version: string) {
    const served = this.resources.filter((r) => r.group === group && r.version === version)
    if (served.length === 0) return undefined
    const resources: Array<Record<string, unknown>> = []
    for (const r of served) {
      resources.push({
        name: r.plural,
        singularName: r.singular,
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: r.verbs,
        ...(r.shortNames ? { shortNames: r.shortNames } : {}),
        ...(r.categories ? { categories: r.categories } : {}),
      })
      if (r.status) resources.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] })
      if (r.scale) resources.push({ name: `${r.plural}/scale`, singularName: '', namespaced: r.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] })
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources }
  }

  /**
   * OpenAPI v3, reduced to what clients read: the root's list of group versions, and per group version
   * each resource's PATCH operation with its query parameters and x-kubernetes-group-version-kind.
   * kubectl and helm look there for `fieldValidation` to leave validation to the server (without it they
   * would download the /openapi/v2 schemas for client-side validation, which the double does not have).
   */
  private openApiV3(groupVersionPath: string): unknown {
    const versions = new Map<string, ResourceType[]>()
    for (const r of this.resources) {
      const path = r.group ? `apis/${r.group}/${r.version}` : `api/${r.version}`
      versions.set(path, [...(versions.get(path) ?? []), r])
    }
    const hash = (resources: ResourceType[]) => Buffer.from(resources.map((r) => r.plural).join(',')).toString('base64url').slice(0, 32).toUpperCase()
    if (!groupVersionPath) {
      return { paths: Object.fromEntries([...versions.entries()].map(([path, resources]) => [path, { serverRelativeURL: `/openapi/v3/${path}?hash=${hash(resources)}` }])) }
    }
    const resources = versions.get(groupVersionPath)
    if (!resources) throw fail(404, 'the server could not find the requested resource')
    const parameter = (name: string) => ({ name, in: 'query', schema: { type: name === 'force' ? 'boolean' : 'string', uniqueItems: true } })
    const paths: Record<string, unknown> = {}
    for (const r of resources) {
      const prefix = `/${groupVersionPath}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.plural}/{name}`
      paths[prefix] = {
        patch: {
          operationId: `patch${r.namespaced ? 'Namespaced' : ''}${r.kind}`,
          parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map(parameter),
          responses: { '200': { description: 'OK' } },
          'x-kubernetes-action': 'patch',
          'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
        },
      }
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes', version: this.options.gitVersion ?? 'v1.33.4' }, paths, components: { schemas: {} } }
  }

  /** A resource by kind, plural or plural.group (for the test helpers). */
  private resourceOf(name: string): ResourceType {
    const [plural, ...group] = name.split('.')
    const found =
      this.resources.find((r) => r.kind === name) ??
      this.resources.find((r) => r.plural === plural && (group.length === 0 || r.group === group.join('.'))) ??
      this.resources.find((r) => r.kind.toLowerCase() === name.toLowerCase())
    if (!found) throw new Error(`the double serves no resource "${name}"`)
    return found
  }

  private resourceFor(object: Pick<KubeObject, 'apiVersion' | 'kind'>): ResourceType | undefined {
    const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion]
    return this.resources.find((r) => r.group === group && r.version === version && r.kind === object.kind)
  }

  // ----- reading -----

  private key(type: ResourceType, namespace: string | undefined, name: string): string {
    return `${type.group}|${type.plural}|${type.namespaced ? namespace ?? '' : ''}|${name}`
  }

  private existing(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const object = this.store.get(this.key(type, namespace, name))
    if (!object) throw this.notFound(type, name)
    return object
  }

  private fieldRequirements(type: ResourceType, text: string | null): FieldRequirement[] {
    if (!text) return []
    return text.split(',').map((term) => {
      const match = /^\s*([A-Za-z0-9.]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term)
      if (!match) throw fail(400, `invalid selector: '${text}'; can't understand '${term}'`)
      const [, field = '', operator, value = ''] = match
      const allowed = ['metadata.name', 'metadata.namespace', ...(type.kind === 'Secret' ? ['type'] : []), ...(type.kind === 'Pod' ? ['spec.nodeName', 'status.phase'] : []), ...(type.kind === 'Event' ? ['involvedObject.name', 'involvedObject.kind', 'involvedObject.namespace', 'involvedObject.uid'] : [])]
      if (!allowed.includes(field)) throw fail(400, `field label not supported: ${field}`)
      return { field, equal: operator !== '!=', value }
    })
  }

  private matches(object: KubeObject, labels: LabelSelector, fields: FieldRequirement[]): boolean {
    if (!labels.matches(object.metadata.labels ?? {})) return false
    return fields.every(({ field, equal, value }) => {
      const actual = field.split('.').reduce<unknown>((node, part) => (isObject(node) ? node[part] : undefined), object)
      return (String(actual ?? '') === value) === equal
    })
  }

  private list(type: ResourceType, namespace: string | undefined, query: URLSearchParams) {
    const labels = parseLabelSelector(query.get('labelSelector') ?? '')
    const fields = this.fieldRequirements(type, query.get('fieldSelector'))
    const limit = Number(query.get('limit') ?? 0)
    if (!Number.isInteger(limit) || limit < 0) throw fail(400, `limit: Invalid value: "${query.get('limit')}"`)
    let start = ''
    const token = query.get('continue')
    if (token) {
      try {
        const decoded = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { v?: string; start?: string }
        if (decoded.v !== 'meta.k8s.io/v1' || typeof decoded.start !== 'string') throw new Error('bad')
        start = decoded.start
      } catch {
        throw fail(400, 'continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)')
      }
    }
    const prefix = `${type.group}|${type.plural}|`
    const matching = [...this.store.entries()]
      .filter(([key, object]) => key.startsWith(prefix) && (namespace === undefined || object.metadata.namespace === namespace))
      .map(([key, object]) => [key.slice(prefix.length), object] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .filter(([key, object]) => (!start || key >= start) && this.matches(object, labels, fields))
    const page = limit > 0 ? matching.slice(0, limit) : matching
    const metadata: Record<string, unknown> = { resourceVersion: String(this.resourceVersion) }
    if (limit > 0 && matching.length > limit) {
      metadata.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: this.resourceVersion, start: `${page[page.length - 1]![0]}\u0000` })).toString('base64')
      if (!query.get('labelSelector') && !query.get('fieldSelector')) metadata.remainingItemCount = matching.length - limit
    }
    return {
      kind: `${type.kind}List`,
      apiVersion: groupVersion(type),
      metadata,
      // Typed lists carry no apiVersion/kind on their items; unstructured (custom) ones do.
      items: page.map(([, object]) => (type.custom ? clone(object) : this.withoutTypeMeta(object))),
    }
  }

  /**
   * A meta.k8s.io/v1 Table, as kubectl asks for (`Accept: application/json;as=Table;...`): the printer
   * columns of the real server for the common kinds, Name and Age for the others.
   */
  private table(type: ResourceType, list: { metadata: Record<string, unknown>; items: unknown[] }, query: URLSearchParams) {
    const columns = tableColumns(type.kind)
    const include = query.get('includeObject') ?? 'Metadata'
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: list.metadata,
      columnDefinitions: columns.map(({ name, type: columnType, priority, format }) => ({ name, type: columnType, format: format ?? (name === 'Name' ? 'name' : ''), description: '', priority: priority ?? 0 })),
      rows: list.items.map((item) => {
        const object = { apiVersion: groupVersion(type), kind: type.kind, ...(item as Record<string, unknown>) } as KubeObject
        return {
          cells: columns.map((column) => column.cell(object)),
          ...(include === 'None'
            ? {}
            : include === 'Object'
              ? { object }
              : { object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: clone(object.metadata) } }),
        }
      }),
    }
  }

  private withoutTypeMeta(object: KubeObject): Omit<KubeObject, 'apiVersion' | 'kind'> {
    const { apiVersion: _apiVersion, kind: _kind, ...rest } = clone(object)
    return rest
  }

  // ----- watch -----

  private startWatch(url: URL, response: http.ServerResponse): void {
    const target = this.parseResourcePath(url.pathname.split('/').filter(Boolean))!
    const query = url.searchParams
    const labels = parseLabelSelector(query.get('labelSelector') ?? '')
    const fields = this.fieldRequirements(target.type, query.get('fieldSelector'))
    response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' })
    // The real server sends the headers at once; clients wait for them before they read any event.
    response.flushHeaders()
    const watcher: Watcher = { resource: target.type, namespace: target.namespace, labels, fields, response }
    const send = (type: string, object: unknown) => response.write(`${JSON.stringify({ type, object })}\n`)
    const from = query.get('resourceVersion')
    const initial = query.get('sendInitialEvents') === 'true'
    const selected = (object: KubeObject) => (watcher.namespace === undefined || object.metadata.namespace === watcher.namespace) && this.matches(object, labels, fields)
    if (from && from !== '0' && !initial) {
      const since = Number(from)
      const oldest = this.history[0]?.resourceVersion ?? this.resourceVersion + 1
      if (!Number.isInteger(since) || since < oldest - 1) {
        send('ERROR', statusBody(410, `too old resource version: ${from} (${oldest - 1})`, undefined, 'Expired'))
        response.end()
        return
      }
      for (const event of this.history) if (event.resourceVersion > since && event.resource === target.type) this.deliver(watcher, event)
    } else {
      for (const object of this.list(target.type, target.namespace, new URLSearchParams({ labelSelector: query.get('labelSelector') ?? '' })).items) {
        const full = { apiVersion: groupVersion(target.type), kind: target.type.kind, ...object } as KubeObject
        if (selected(full)) send('ADDED', full)
      }
      if (initial) {
        send('BOOKMARK', { apiVersion: groupVersion(target.type), kind: target.type.kind, metadata: { resourceVersion: String(this.resourceVersion), annotations: { 'k8s.io/initial-events-end': 'true' } } })
      }
    }
    this.watchers.add(watcher)
    const timeout = Number(query.get('timeoutSeconds') ?? 0)
    const stop = () => {
      this.watchers.delete(watcher)
      if (!response.writableEnded) response.end()
    }
    if (timeout > 0) this.later(timeout * 1000, stop)
    response.on('close', stop)
  }

  private deliver(watcher: Watcher, event: WatchEvent): void {
    if (watcher.resource !== event.resource) return
    const selected = (object: KubeObject | undefined) =>
      object !== undefined && (watcher.namespace === undefined || object.metadata.namespace === watcher.namespace) && this.matches(object, watcher.labels, watcher.fields)
    const now = selected(event.object)
    const before = event.type === 'MODIFIED' ? selected(event.previous) : now
    // As the watch cache does: an object that starts or stops matching is ADDED or DELETED.
    const type = event.type === 'MODIFIED' ? (now && before ? 'MODIFIED' : now ? 'ADDED' : before ? 'DELETED' : undefined) : now ? event.type : undefined
    if (type) watcher.response.write(`${JSON.stringify({ type, object: event.object })}\n`)
  }

  private emit(type: WatchEvent['type'], resourceType: ResourceType, object: KubeObject, previous?: KubeObject): void {
    const event: WatchEvent = { resourceVersion: Number(object.metadata.resourceVersion), type, resource: resourceType, object: clone(object), ...(previous ? { previous } : {}) }
    this.history.push(event)
    const limit = this.options.watchHistory ?? 5000
    if (this.history.length > limit) this.history.splice(0, this.history.length - limit)
    for (const watcher of this.watchers) this.deliver(watcher, event)
  }

  // ----- writing -----

  private create(type: ResourceType, namespace: string | undefined, body: Record<string, unknown>, query: URLSearchParams, context: RequestContext): KubeObject {
    const object = this.checkBody(type, namespace, body, undefined)
    if (query.get('force')) throw fail(422, 'CreateOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for create')
    if (!object.metadata.name) {
      if (!object.metadata.generateName) throw fail(422, `${type.kind} "" is invalid: metadata.name: Required value: name or generateName is required`)
      object.metadata.name = `${object.metadata.generateName}${generatedSuffix()}`
    }
    if (this.store.has(this.key(type, namespace, object.metadata.name))) {
      throw fail(409, `${qualified(type)} "${object.metadata.name}" already exists`, { name: object.metadata.name, group: type.group, kind: type.plural }, 'AlreadyExists')
    }
    if (object.metadata.resourceVersion) throw fail(422, `${type.kind} "${object.metadata.name}" is invalid: metadata.resourceVersion: Invalid value: "${object.metadata.resourceVersion}": must be empty`)
    return this.commit(type, undefined, object, context)
  }

  private update(type: ResourceType, namespace: string | undefined, name: string, body: Record<string, unknown>, subresource: string | undefined, context: RequestContext): [number, KubeObject] {
    const object = this.checkBody(type, namespace, body, name)
    const existing = this.existing(type, namespace, name)
    if (object.metadata.resourceVersion && object.metadata.resourceVersion !== existing.metadata.resourceVersion) throw this.conflict(type, name)
    if (object.metadata.uid && object.metadata.uid !== existing.metadata.uid) {
      throw fail(409, `Precondition failed: UID in precondition: ${object.metadata.uid}, UID in object meta: ${existing.metadata.uid}`, { name, group: type.group, kind: type.plural })
    }
    if (subresource === 'status') return [200, this.commitStatus(type, existing, object.status, context)]
    return [200, this.commit(type, existing, object, context)]
  }

  private patch(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    contentType: string | undefined,
    raw: string,
    query: URLSearchParams,
    subresource: string | undefined,
    context: RequestContext,
  ): [number, KubeObject] {
    const mediaType = patchMediaType(contentType)
    if (mediaType === 'application/apply-patch+yaml') return this.apply(type, namespace, name, raw, query, subresource, context)
    if (query.get('force')) throw fail(422, 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch')
    // Read only once the body parsed: a malformed patch of a missing object is 400, as on the real server.
    let existing!: KubeObject
    const patched = patchDocument(mediaType, raw, () => (existing = this.existing(type, namespace, name)), { strategic: strategicMerge, conflict: () => this.conflict(type, name) })
    const object = this.checkBody(type, namespace, patched as Record<string, unknown>, name)
    if (subresource === 'status') return [200, this.commitStatus(type, existing, object.status, context)]
    return [200, this.commit(type, existing, object, context)]
  }

  /** Server-side apply: merge the configuration, check and record field ownership, prune what it dropped. */
  private apply(type: ResourceType, namespace: string | undefined, name: string, raw: string, query: URLSearchParams, subresource: string | undefined, context: RequestContext): [number, KubeObject] {
    const manager = query.get('fieldManager')
    if (!manager) {
      throw fail(422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', {
        group: 'meta.k8s.io',
        kind: 'PatchOptions',
        causes: [{ reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager' }],
      })
    }
    const force = query.get('force') === 'true'
    let decoded: unknown
    try {
      decoded = parseYaml(raw)
    } catch (error) {
      throw fail(400, `error decoding YAML: ${(error as Error).message}`)
    }
    if (!isObject(decoded)) throw fail(400, 'error decoding YAML: the apply configuration is not an object')
    if (typeof decoded.apiVersion !== 'string' || typeof decoded.kind !== 'string') throw fail(400, 'Object \'Kind\' is missing in \'apply configuration\'')
    if (decoded.apiVersion !== groupVersion(type) || decoded.kind !== type.kind) {
      throw fail(400, `the API version in the data (${decoded.apiVersion}) does not match the expected API version (${groupVersion(type)}) or kind (${decoded.kind} vs ${type.kind})`)
    }
    const metadata = isObject(decoded.metadata) ? decoded.metadata : {}
    if (metadata.managedFields !== undefined && metadata.managedFields !== null) throw fail(400, 'metadata.managedFields must be nil')
    const applied = this.checkBody(type, namespace, decoded, name)
    const existing = this.store.get(this.key(type, namespace, name))
    if (existing && applied.metadata.resourceVersion && applied.metadata.resourceVersion !== existing.metadata.resourceVersion) throw this.conflict(type, name)
    if (subresource === 'status') {
      if (!existing) throw this.notFound(type, name)
      return [200, this.commitStatus(type, existing, mergeApplied(existing.status, applied.status), context)]
    }

    const config = this.tracked(type, applied)
    const appliedSet = fieldSetOf(config)
    const live: KubeObject = existing ? clone(existing) : { apiVersion: applied.apiVersion, kind: applied.kind, metadata: { name, ...(namespace ? { namespace } : {}) } }
    const entries = (existing?.metadata.managedFields ?? []).map((entry) => ({ entry, set: FieldSet.fromFieldsV1(entry.fieldsV1) }))
    const mine = entries.find(({ entry }) => entry.manager === manager && entry.operation === 'Apply' && !entry.subresource)
    const others = entries.filter((e) => e !== mine && !e.entry.subresource)
    const merged = mergeApplied(live, config) as KubeObject

    // Conflicts: another manager owns a field this configuration sets to a different value.
    const conflicts: Array<{ entry: ManagedFieldsEntry; path: FieldPath }> = []
    for (const other of others) {
      for (const path of appliedSet.paths()) {
        if (!other.set.has(path) || path[path.length - 1]!.startsWith('k:')) continue
        if (!deepEqual(valueAt(live, path), valueAt(merged, path))) conflicts.push({ entry: other.entry, path })
      }
    }
    if (conflicts.length > 0 && !force) throw applyConflict(conflicts)
    for (const { entry, path } of conflicts) others.find((o) => o.entry === entry)!.set.delete(path)

    // Fields this manager applied before and dropped now go, unless another manager owns them.
    // Shallowest first: a dropped list item goes whole (its fields, keys included, with it); a field
    // still set by this configuration or owned by another manager below a dropped path keeps it.
    const dropped = mine ? mine.set.difference(appliedSet).paths() : []
    const ownedByOthers = (path: FieldPath) => others.some((o) => o.set.hasAtOrBelow(path))
    const kept = (path: FieldPath) => ownedByOthers(path) || appliedSet.hasAtOrBelow(path)
    for (const path of dropped.sort((a, b) => a.length - b.length)) {
      if (!kept(path) && !isItemKey(path)) removeAt(merged, path, kept)
    }

    const time = now()
    const managedFields: ManagedFieldsEntry[] = [
      { manager, operation: 'Apply', apiVersion: context.apiVersion, time, fieldsType: 'FieldsV1', fieldsV1: appliedSet.toFieldsV1() },
      ...entries
        .filter((e) => e !== mine)
        .filter((e) => e.set.size > 0)
        .map((e) => ({ ...e.entry, fieldsV1: e.set.toFieldsV1() })),
    ]
    merged.metadata.managedFields = managedFields
    const stored = this.commit(type, existing, merged, { ...context, manager }, managedFields)
    return [existing ? 200 : 201, stored]
  }

  /** The fields a manager can own: no type or system metadata, no status where it is a subresource. */
  private tracked(type: ResourceType, object: KubeObject): Record<string, unknown> {
    const { apiVersion: _apiVersion, kind: _kind, metadata, status, ...rest } = clone(object)
    const meta: Record<string, unknown> = { ...metadata }
    for (const field of SYSTEM_METADATA) delete meta[field]
    return { ...(Object.keys(meta).length ? { metadata: meta } : {}), ...rest, ...(type.status || status === undefined ? {} : { status }) }
  }

  /** Validates the body's identity against the URL and returns it as an object. */
  private checkBody(type: ResourceType, namespace: string | undefined, body: Record<string, unknown>, name: string | undefined): KubeObject {
    const object = clone(body) as KubeObject
    if (object.apiVersion === undefined) object.apiVersion = groupVersion(type)
    if (object.kind === undefined) object.kind = type.kind
    if (object.apiVersion !== groupVersion(type) || object.kind !== type.kind) {
      throw fail(400, `the API version in the data (${String(object.apiVersion)}) does not match the expected API version (${groupVersion(type)})`)
    }
    if (!isObject(object.metadata)) object.metadata = { name: name ?? '' }
    if (name !== undefined && object.metadata.name && object.metadata.name !== name) {
      throw fail(400, `the name of the object (${object.metadata.name}) does not match the name on the URL (${name})`)
    }
    if (name !== undefined) object.metadata.name = name
    if (type.namespaced) {
      if (object.metadata.namespace && object.metadata.namespace !== namespace) {
        throw fail(400, 'the namespace of the provided object does not match the namespace sent on the request')
      }
      object.metadata.namespace = namespace!
    } else delete object.metadata.namespace
    return object
  }

  /**
   * Stores a create or update: validation, admission, defaults, identity, generation, managedFields (an
   * Update entry for `context.manager` unless `applied` gives them), the event, and the controllers.
   */
  private commit(type: ResourceType, existing: KubeObject | undefined, input: KubeObject, context: RequestContext, applied?: ManagedFieldsEntry[]): KubeObject {
    const object = clone(input)
    const { name } = object.metadata
    const namespace = type.namespaced ? object.metadata.namespace : undefined
    this.validate(type, object)
    if (type.namespaced) {
      const ns = this.store.get(this.key(this.resourceOf('Namespace'), undefined, namespace ?? ''))
      if (!ns) throw fail(404, `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' })
      if (!existing && ns.metadata.deletionTimestamp) {
        throw fail(403, `${type.plural} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`, {
          name,
          kind: type.plural,
          causes: [{ reason: 'NamespaceTerminating', message: `namespace ${namespace} is being terminated`, field: 'metadata.namespace' }],
        })
      }
    }
    if (type.status) object.status = existing ? clone(existing.status) : undefined
    if (object.status === undefined) delete object.status
    this.applyDefaults(type, object, existing)

    const metadata = object.metadata
    metadata.uid = existing?.metadata.uid ?? randomUUID()
    metadata.creationTimestamp = existing?.metadata.creationTimestamp ?? now()
    if (existing?.metadata.deletionTimestamp) metadata.deletionTimestamp = existing.metadata.deletionTimestamp
    else delete metadata.deletionTimestamp
    if (type.generation) {
      const specChanged = existing && !deepEqual(withoutMetaAndStatus(existing), withoutMetaAndStatus(object))
      metadata.generation = existing ? (existing.metadata.generation ?? 1) + (specChanged ? 1 : 0) : 1
    } else delete metadata.generation
    if (applied) metadata.managedFields = applied
    else metadata.managedFields = this.updatedManagedFields(type, existing, object, context, input.metadata.managedFields)
    if (metadata.managedFields.length === 0) delete metadata.managedFields

    if (existing && deepEqual(withoutVolatile(existing), withoutVolatile(object))) {
      // A no-op write: the real server keeps the resourceVersion and sends no event.
      return clone(existing)
    }
    if (context.dryRun) return { ...object, metadata: { ...metadata, resourceVersion: existing?.metadata.resourceVersion ?? '' } }
    metadata.resourceVersion = this.nextResourceVersion()
    this.store.set(this.key(type, namespace, name), object)
    this.emit(existing ? 'MODIFIED' : 'ADDED', type, object, existing)
    if (type.kind === 'CustomResourceDefinition') this.registerCustomResource(object)
    this.reconcile(object, !existing || existing.metadata.generation !== object.metadata.generation)
    return clone(object)
  }

  /** managedFields after a non-apply write: the writer owns what it changed, and nobody owns removed fields. */
  private updatedManagedFields(type: ResourceType, existing: KubeObject | undefined, object: KubeObject, context: RequestContext, sent: ManagedFieldsEntry[] | undefined): ManagedFieldsEntry[] {
    // A client that sends managedFields different from the stored ones replaces them (an empty list resets them).
    const base = Array.isArray(sent) && !deepEqual(sent, existing?.metadata.managedFields ?? []) ? sent : existing?.metadata.managedFields ?? []
    const before = existing ? this.tracked(type, existing) : {}
    const after = this.tracked(type, object)
    const changed = changedFieldSet(before, after)
    const present = fieldSetOf(after, true)
    const entries = base.map((entry) => ({ entry, set: FieldSet.fromFieldsV1(entry.fieldsV1) }))
    for (const { set } of entries) {
      for (const path of set.paths()) if (changed.has(path) || !present.has(path)) set.delete(path)
    }
    let mine = entries.find(({ entry }) => entry.manager === context.manager && entry.operation === 'Update' && !entry.subresource)
    if (changed.size > 0) {
      if (!mine) {
        mine = { entry: { manager: context.manager, operation: 'Update', apiVersion: context.apiVersion, time: now(), fieldsType: 'FieldsV1', fieldsV1: {} }, set: new FieldSet() }
        entries.push(mine)
      }
      for (const path of changed.paths()) mine.set.add(path)
      mine.entry = { ...mine.entry, time: now(), apiVersion: context.apiVersion }
    }
    return entries.filter((e) => e.set.size > 0).map((e) => ({ ...e.entry, fieldsV1: e.set.toFieldsV1() }))
  }

  private commitStatus(type: ResourceType, existing: KubeObject, status: unknown, context: RequestContext): KubeObject {
    if (context.dryRun) return { ...clone(existing), status: clone(status) }
    const object = clone(existing)
    if (status === undefined) delete object.status
    else object.status = clone(status)
    if (deepEqual(existing, object)) return clone(existing)
    object.metadata.resourceVersion = this.nextResourceVersion()
    this.store.set(this.key(type, object.metadata.namespace, object.metadata.name), object)
    this.emit('MODIFIED', type, object, existing)
    return clone(object)
  }

  private validate(type: ResourceType, object: KubeObject): void {
    const { name } = object.metadata
    const invalid = (field: string, value: unknown, message: string) =>
      fail(422, `${type.kind} "${name}" is invalid: ${field}: Invalid value: ${JSON.stringify(value)}: ${message}`, {
        name,
        group: type.group,
        kind: type.kind,
        causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${message}`, field }],
      })
    if (typeof name !== 'string' || name === '') throw fail(422, `${type.kind} "" is invalid: metadata.name: Required value: name or generateName is required`)
    const label = type.kind === 'Namespace' || type.kind === 'Service'
    const pattern = type.kind === 'Service' ? DNS_1035_LABEL : label ? DNS_LABEL : DNS_SUBDOMAIN
    if (!pattern.test(name) || name.length > (label ? 63 : 253)) {
      throw invalid('metadata.name', name, label ? 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character' : "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
    }
    for (const [key, value] of Object.entries(object.metadata.labels ?? {})) {
      if (typeof value !== 'string' || value.length > 63 || !LABEL_VALUE.test(value)) {
        throw invalid(`metadata.labels`, value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)")
      }
      if (key.length === 0) throw invalid('metadata.labels', key, 'name part must be non-empty')
    }
    if (type.kind === 'Secret' || type.kind === 'ConfigMap') {
      let size = 0
      for (const field of ['data', 'binaryData', 'stringData']) {
        const data = object[field]
        if (data === undefined || data === null) continue
        if (!isObject(data)) throw invalid(field, data, 'must be a map of strings')
        for (const [key, value] of Object.entries(data)) {
          if (typeof value !== 'string') throw invalid(`${field}[${key}]`, value, 'must be a string')
          if (field === 'data' && type.kind === 'Secret' && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
            throw fail(400, `illegal base64 data at input byte ${value.search(/[^A-Za-z0-9+/=]/)}`)
          }
          size += key.length + (field === 'stringData' || (field === 'data' && type.kind === 'ConfigMap') ? Buffer.byteLength(value) : Math.floor((value.length * 3) / 4))
        }
      }
      if (size > MAX_DATA_BYTES) {
        throw fail(422, `${type.kind} "${name}" is invalid: data: Too long: must have at most ${MAX_DATA_BYTES} bytes`, {
          name,
          kind: type.kind,
          causes: [{ reason: 'FieldValueTooLong', message: `Too long: must have at most ${MAX_DATA_BYTES} bytes`, field: 'data' }],
        })
      }
    }
  }

  /** The defaults the API server writes (a subset: the ones clients and tests look at). */
  private applyDefaults(type: ResourceType, object: KubeObject, existing: KubeObject | undefined): void {
    const spec = isObject(object.spec) ? object.spec : undefined
    switch (type.kind) {
      case 'Namespace':
        object.spec = { finalizers: ['kubernetes'], ...(spec ?? {}) }
        object.status = existing?.status ?? { phase: 'Active' }
        object.metadata.labels = { ...object.metadata.labels, 'kubernetes.io/metadata.name': object.metadata.name }
        break
      case 'Secret':
        object.type ??= 'Opaque'
        if (isObject(object.stringData)) {
          const data: Record<string, unknown> = isObject(object.data) ? object.data : {}
          for (const [key, value] of Object.entries(object.stringData)) data[key] = Buffer.from(String(value), 'utf8').toString('base64')
          object.data = data
          delete object.stringData
        }
        break
      case 'Service': {
        const service = spec ?? (object.spec = {})
        service.type ??= 'ClusterIP'
        service.sessionAffinity ??= 'None'
        if (service.type !== 'ExternalName') {
          const previous = isObject(existing?.spec) ? existing.spec.clusterIP : undefined
          service.clusterIP ??= previous ?? `10.96.0.${this.nextClusterIp++ % 250}`
          service.clusterIPs ??= [service.clusterIP]
          service.ipFamilies ??= ['IPv4']
          service.ipFamilyPolicy ??= 'SingleStack'
          service.internalTrafficPolicy ??= 'Cluster'
        }
        if (Array.isArray(service.ports)) {
          service.ports = service.ports.map((port: unknown) => (isObject(port) ? { protocol: 'TCP', targetPort: port.port, ...port } : port))
        }
        if (type.status) object.status = existing?.status ?? { loadBalancer: service.type === 'LoadBalancer' ? { ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }] } : {} }
        break
      }
      case 'Deployment':
      case 'StatefulSet':
      case 'ReplicaSet': {
        const workload = spec ?? (object.spec = {})
        workload.replicas ??= 1
        workload.revisionHistoryLimit ??= 10
        if (type.kind === 'Deployment') {
          workload.progressDeadlineSeconds ??= 600
          workload.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } }
        }
        if (type.kind === 'StatefulSet') {
          workload.podManagementPolicy ??= 'OrderedReady'
          workload.updateStrategy ??= { type: 'RollingUpdate', rollingUpdate: { partition: 0 } }
        }
        break
      }
      case 'DaemonSet': {
        const workload = spec ?? (object.spec = {})
        workload.revisionHistoryLimit ??= 10
        workload.updateStrategy ??= { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }
        break
      }
      case 'Job': {
        const job = spec ?? (object.spec = {})
        job.completions ??= 1
        job.parallelism ??= 1
        job.backoffLimit ??= 6
        break
      }
      case 'PersistentVolumeClaim':
        object.status = existing?.status ?? { phase: 'Bound', accessModes: spec?.accessModes ?? ['ReadWriteOnce'], capacity: { storage: (spec?.resources as { requests?: { storage?: string } } | undefined)?.requests?.storage ?? '1Gi' } }
        break
      case 'Pod':
        object.status = existing?.status ?? { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: now() }] }
        break
      default:
        break
    }
  }

  private deleteObject(type: ResourceType, namespace: string | undefined, name: string, options: Record<string, unknown>, dryRun: boolean): unknown {
    const key = this.key(type, namespace, name)
    const object = this.existing(type, namespace, name)
    const preconditions = isObject(options.preconditions) ? options.preconditions : {}
    if (typeof preconditions.uid === 'string' && preconditions.uid !== object.metadata.uid) {
      throw fail(409, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${object.metadata.uid}`, { name, group: type.group, kind: type.plural })
    }
    if (typeof preconditions.resourceVersion === 'string' && preconditions.resourceVersion !== object.metadata.resourceVersion) {
      throw fail(409, `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${object.metadata.resourceVersion}`, { name, group: type.group, kind: type.plural })
    }
    const policy = typeof options.propagationPolicy === 'string' ? options.propagationPolicy : undefined
    if (policy !== undefined && !['Orphan', 'Background', 'Foreground'].includes(policy)) {
      throw fail(422, `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan", "nil"`)
    }
    const success = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: type.group, kind: type.plural, uid: object.metadata.uid } }
    if (dryRun) return success
    if (type.kind === 'Namespace') {
      if (PROTECTED_NAMESPACES.has(name)) throw fail(403, `namespaces "${name}" is forbidden: this namespace may not be deleted`, { name, kind: 'namespaces' })
      if (!object.metadata.deletionTimestamp) {
        const terminating = clone(object)
        terminating.metadata.deletionTimestamp = now()
        terminating.status = { phase: 'Terminating' }
        terminating.metadata.resourceVersion = this.nextResourceVersion()
        this.store.set(key, terminating)
        this.emit('MODIFIED', type, terminating, object)
        // The namespace controller empties the namespace, then lets it go.
        this.later(this.options.namespaceDeletionDelayMs ?? 20, () => {
          for (const [otherKey, other] of [...this.store.entries()]) {
            const otherType = this.resourceFor(other)
            if (otherType?.namespaced && other.metadata.namespace === name) this.drop(otherKey, otherType, other)
          }
          const current = this.store.get(key)
          if (current && current.metadata.uid === object.metadata.uid) this.drop(key, type, current)
        })
        return clone(terminating)
      }
      return clone(object)
    }
    this.drop(key, type, object)
    if (policy !== 'Orphan') this.collectDependents(object.metadata.uid ?? '', policy === 'Foreground')
    // Built-in kinds answer a Status; custom resources the deleted object, as their stores are configured.
    return type.custom ? clone(object) : success
  }

  private deleteCollection(type: ResourceType, namespace: string | undefined, query: URLSearchParams, context: RequestContext) {
    if (!type.verbs.includes('deletecollection')) throw fail(405, 'the server does not allow this method on the requested resource')
    const list = this.list(type, namespace, new URLSearchParams({ ...(query.get('labelSelector') ? { labelSelector: query.get('labelSelector')! } : {}), ...(query.get('fieldSelector') ? { fieldSelector: query.get('fieldSelector')! } : {}) }))
    for (const item of list.items) {
      const { namespace: itemNamespace, name } = (item as KubeObject).metadata
      this.deleteObject(type, itemNamespace, name, { propagationPolicy: query.get('propagationPolicy') ?? undefined }, context.dryRun)
    }
    return { ...list, items: list.items.map((item) => (type.custom ? item : { apiVersion: groupVersion(type), kind: type.kind, ...item })) }
  }

  private drop(key: string, type: ResourceType, object: KubeObject): void {
    if (!this.store.delete(key)) return
    const gone = clone(object)
    gone.metadata.resourceVersion = this.nextResourceVersion()
    this.emit('DELETED', type, gone)
    if (type.kind === 'CustomResourceDefinition') this.unregisterCustomResource(object)
  }

  /** The garbage collector: objects whose ownerReferences name the deleted uid go too. */
  private collectDependents(uid: string, now: boolean): void {
    const collect = () => {
      for (const [key, object] of [...this.store.entries()]) {
        if (!object.metadata.ownerReferences?.some((o) => o.uid === uid)) continue
        const type = this.resourceFor(object)
        if (!type) continue
        this.drop(key, type, object)
        this.collectDependents(object.metadata.uid ?? '', true)
      }
    }
    if (now) collect()
    else this.later(0, collect)
  }

  // ----- custom resources -----

  private registerCustomResource(crd: KubeObject): void {
    const spec = isObject(crd.spec) ? crd.spec : {}
    const names = isObject(spec.names) ? spec.names : {}
    const group = String(spec.group ?? '')
    const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObject) : []
    this.unregisterCustomResource(crd, false)
    for (const version of versions) {
      if (version.served === false) continue
      this.resources.push({
        group,
        version: String(version.name),
        kind: String(names.kind),
        plural: String(names.plural),
        singular: String(names.singular ?? String(names.kind).toLowerCase()),
        namespaced: spec.scope !== 'Cluster',
        verbs: ALL_VERBS,
        ...(Array.isArray(names.shortNames) ? { shortNames: names.shortNames.map(String) } : {}),
        ...(Array.isArray(names.categories) ? { categories: names.categories.map(String) } : {}),
        generation: true,
        status: isObject(version.subresources) && 'status' in version.subresources,
        custom: true,
      })
    }
    const established = [
      { type: 'NamesAccepted', status: 'True', lastTransitionTime: now(), reason: 'NoConflicts', message: 'no conflicts found' },
      { type: 'Established', status: 'True', lastTransitionTime: now(), reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
    ]
    const status = { acceptedNames: names, conditions: established, storedVersions: versions.filter((v) => v.storage).map((v) => String(v.name)) }
    if (!deepEqual(isObject(crd.status) ? { ...crd.status, conditions: undefined } : undefined, { ...status, conditions: undefined })) {
      const stored = this.store.get(this.key(this.resourceOf('CustomResourceDefinition'), undefined, crd.metadata.name))
      if (!stored) return
      this.commitStatus(this.resourceOf('CustomResourceDefinition'), stored, status, {
        manager: 'kube-apiserver',
        dryRun: false,
        apiVersion: 'apiextensions.k8s.io/v1',
      })
    }
  }

  private unregisterCustomResource(crd: KubeObject, deleteObjects = true): void {
    const spec = isObject(crd.spec) ? crd.spec : {}
    const plural = isObject(spec.names) ? String(spec.names.plural) : ''
    const group = String(spec.group ?? '')
    for (let index = this.resources.length - 1; index >= 0; index--) {
      const r = this.resources[index]!
      if (r.custom && r.group === group && r.plural === plural) {
        if (deleteObjects) for (const [key, object] of [...this.store.entries()]) if (key.startsWith(`${group}|${plural}|`)) this.drop(key, r, object)
        this.resources.splice(index, 1)
      }
    }
  }

  // ----- the controllers' part -----

  private reconcile(object: KubeObject, changed: boolean): void {
    const kind = object.kind
    if (!WORKLOAD_KINDS.has(kind) && kind !== 'Job' && kind !== 'Pod') return
    const type = this.resourceFor(object)!
    const key = this.key(type, object.metadata.namespace, object.metadata.name)
    const uid = object.metadata.uid
    const generation = object.metadata.generation
    const stillCurrent = () => {
      const current = this.store.get(key)
      return current && current.metadata.uid === uid && current.metadata.generation === generation && !current.metadata.deletionTimestamp ? current : undefined
    }
    const context: RequestContext = { manager: 'kube-controller-manager', dryRun: false, apiVersion: groupVersion(type) }
    const becomeReady = () =>
      this.later(this.options.readyDelayMs ?? 20, () => {
        const current = stillCurrent()
        if (!current || this.neverReady?.(current)) return
        if (kind === 'Job') this.commitStatus(type, current, jobStatus(current), context)
        else if (kind === 'Pod') this.commitStatus(type, current, podStatus(current), context)
        else this.commitStatus(type, current, workloadStatus(current, true, this.options.nodeCount ?? 1), context)
      })
    if (changed && kind !== 'Pod' && kind !== 'Job') {
      // The controller notices the new generation at once; the pods take readyDelayMs to be ready.
      // The ready timer starts only once the unready status is written: timers of different durations
      // may fire out of order after a busy stretch of the event loop (the unready status would then
      // overwrite the ready one for good).
      this.later(0, () => {
        const current = stillCurrent()
        if (!current) return
        this.commitStatus(type, current, workloadStatus(current, false, this.options.nodeCount ?? 1), context)
        becomeReady()
      })
    } else becomeReady()
  }

}

// ----- helpers -----

const wantsTable = (request: http.IncomingMessage) => /(^|,)\s*application\/json;\s*as=Table/.test(request.headers.accept ?? '')

interface TableColumn {
  name: string
  type: 'string' | 'integer' | 'date'
  priority?: number
  format?: string
  cell: (object: KubeObject) => unknown
}

/** kubectl's short durations: 45s, 5m10s, 3h, 12d. */
function age(object: KubeObject): string {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(object.metadata.creationTimestamp ?? '')) / 1000))
  if (!Number.isFinite(seconds)) return '<unknown>'
  if (seconds < 120) return `${seconds}s`
  if (seconds < 600) return `${Math.floor(seconds / 60)}m${seconds % 60 ? `${seconds % 60}s` : ''}`
  if (seconds < 3 * 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 2 * 86400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86400)}d`
}

const field = (object: KubeObject, path: string): unknown => path.split('.').reduce<unknown>((node, part) => (isObject(node) ? node[part] : undefined), object)
const count = (value: unknown) => (typeof value === 'number' ? value : 0)

function tableColumns(kind: string): TableColumn[] {
  const name: TableColumn = { name: 'Name', type: 'string', cell: (o) => o.metadata.name }
  const created: TableColumn = { name: 'Age', type: 'string', cell: age }
  const containers = (o: KubeObject) => (field(o, 'spec.template.spec.containers') as Array<{ name: string; image: string }> | undefined) ?? []
  switch (kind) {
    case 'Deployment':
      return [
        name,
        { name: 'Ready', type: 'string', cell: (o) => `${count(field(o, 'status.readyReplicas'))}/${count(field(o, 'spec.replicas'))}` },
        { name: 'Up-to-date', type: 'integer', cell: (o) => count(field(o, 'status.updatedReplicas')) },
        { name: 'Available', type: 'integer', cell: (o) => count(field(o, 'status.availableReplicas')) },
        created,
        { name: 'Containers', type: 'string', priority: 1, cell: (o) => containers(o).map((c) => c.name).join(',') },
        { name: 'Images', type: 'string', priority: 1, cell: (o) => containers(o).map((c) => c.image).join(',') },
      ]
    case 'StatefulSet':
      return [name, { name: 'Ready', type: 'string', cell: (o) => `${count(field(o, 'status.readyReplicas'))}/${count(field(o, 'spec.replicas'))}` }, created]
    case 'DaemonSet':
      return [
        name,
        { name: 'Desired', type: 'integer', cell: (o) => count(field(o, 'status.desiredNumberScheduled')) },
        { name: 'Current', type: 'integer', cell: (o) => count(field(o, 'status.currentNumberScheduled')) },
        { name: 'Ready', type: 'integer', cell: (o) => count(field(o, 'status.numberReady')) },
        { name: 'Up-to-date', type: 'integer', cell: (o) => count(field(o, 'status.updatedNumberScheduled')) },
        { name: 'Available', type: 'integer', cell: (o) => count(field(o, 'status.numberAvailable')) },
        created,
      ]
    case 'Service':
      return [
        name,
        { name: 'Type', type: 'string', cell: (o) => field(o, 'spec.type') ?? 'ClusterIP' },
        { name: 'Cluster-IP', type: 'string', cell: (o) => field(o, 'spec.clusterIP') ?? '<none>' },
        { name: 'External-IP', type: 'string', cell: (o) => ((field(o, 'status.loadBalancer.ingress') as Array<{ ip?: string }> | undefined) ?? []).map((i) => i.ip).join(',') || '<none>' },
        { name: 'Port(s)', type: 'string', cell: (o) => ((field(o, 'spec.ports') as Array<{ port: number; protocol?: string }> | undefined) ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',') || '<none>' },
        created,
      ]
    case 'Pod':
      return [
        name,
        { name: 'Ready', type: 'string', cell: (o) => `${(field(o, 'status.conditions') as Array<{ type: string; status: string }> | undefined)?.some((c) => c.type === 'Ready' && c.status === 'True') ? 1 : 0}/1` },
        { name: 'Status', type: 'string', cell: (o) => field(o, 'status.phase') ?? 'Pending' },
        { name: 'Restarts', type: 'string', cell: () => '0' },
        created,
      ]
    case 'ConfigMap':
      return [name, { name: 'Data', type: 'integer', cell: (o) => Object.keys(isObject(o.data) ? o.data : {}).length + Object.keys(isObject(o.binaryData) ? o.binaryData : {}).length }, created]
    case 'Secret':
      return [name, { name: 'Type', type: 'string', cell: (o) => o.type }, { name: 'Data', type: 'integer', cell: (o) => Object.keys(isObject(o.data) ? o.data : {}).length }, created]
    case 'Namespace':
      return [name, { name: 'Status', type: 'string', cell: (o) => field(o, 'status.phase') ?? 'Active' }, created]
    case 'Job':
      return [
        name,
        { name: 'Status', type: 'string', cell: (o) => ((field(o, 'status.conditions') as Array<{ type: string; status: string }> | undefined)?.some((c) => c.type === 'Complete' && c.status === 'True') ? 'Complete' : 'Running') },
        { name: 'Completions', type: 'string', cell: (o) => `${count(field(o, 'status.succeeded'))}/${count(field(o, 'spec.completions'))}` },
        created,
      ]
    default:
      return [name, created]
  }
}

/** A key field of an associative-list item (`k:{"name":"web"}` then `f:name`): it goes only with its item. */
function isItemKey(path: FieldPath): boolean {
  const parent = path[path.length - 2]
  const last = path[path.length - 1]
  if (!parent?.startsWith('k:') || !last?.startsWith('f:')) return false
  return Object.prototype.hasOwnProperty.call(JSON.parse(parent.slice(2)) as Record<string, unknown>, last.slice(2))
}

function withoutMetaAndStatus(object: KubeObject): Record<string, unknown> {
  const { metadata: _metadata, status: _status, ...rest } = object
  return rest
}

/** The object without what every write changes by itself (to recognise a no-op write). */
function withoutVolatile(object: KubeObject): KubeObject {
  const copy = clone(object)
  delete copy.metadata.resourceVersion
  copy.metadata.managedFields = copy.metadata.managedFields?.map((entry) => ({ ...entry, time: '' }))
  return copy
}

/** The real server's 409 for an apply that would change fields other managers own. */
function applyConflict(conflicts: Array<{ entry: ManagedFieldsEntry; path: FieldPath }>): HttpError {
  const printManager = (entry: ManagedFieldsEntry) =>
    `"${entry.manager}"${entry.subresource ? ` with subresource "${entry.subresource}"` : ''}${entry.operation === 'Update' ? ` using ${entry.apiVersion}` : ''}`
  const causes = conflicts.map(({ entry, path }) => ({ reason: 'FieldManagerConflict', message: `conflict with ${printManager(entry)}`, field: pathString(path) }))
  let message: string
  if (conflicts.length === 1) {
    message = `Apply failed with 1 conflict: conflict with ${printManager(conflicts[0]!.entry)}: ${pathString(conflicts[0]!.path)}`
  } else {
    const byManager = new Map<string, string[]>()
    for (const { entry, path } of conflicts) byManager.set(printManager(entry), [...(byManager.get(printManager(entry)) ?? []), pathString(path)])
    const lines = [...byManager.keys()].sort().flatMap((manager) => [`conflicts with ${manager}:`, ...byManager.get(manager)!.map((p) => `- ${p}`)])
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`
  }
  return fail(409, message, { causes }, 'Conflict')
}

function workloadStatus(object: KubeObject, ready: boolean, nodes: number): Record<string, unknown> {
  const spec = isObject(object.spec) ? object.spec : {}
  const generation = object.metadata.generation ?? 1
  const time = now()
  if (object.kind === 'DaemonSet') {
    return {
      currentNumberScheduled: nodes,
      desiredNumberScheduled: nodes,
      numberMisscheduled: 0,
      numberReady: ready ? nodes : 0,
      observedGeneration: generation,
      updatedNumberScheduled: nodes,
      ...(ready ? { numberAvailable: nodes } : { numberUnavailable: nodes }),
    }
  }
  const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1
  const readyCount = ready ? replicas : 0
  const base: Record<string, unknown> = {
    observedGeneration: generation,
    replicas,
    ...(readyCount > 0 ? { readyReplicas: readyCount, availableReplicas: readyCount } : {}),
  }
  if (object.kind === 'StatefulSet') {
    const revision = `${object.metadata.name}-${generation}`
    return { ...base, currentReplicas: replicas, updatedReplicas: replicas, currentRevision: revision, updateRevision: revision, collisionCount: 0, availableReplicas: readyCount }
  }
  if (object.kind === 'ReplicaSet') return { ...base, fullyLabeledReplicas: replicas }
  return {
    ...base,
    updatedReplicas: replicas,
    ...(readyCount < replicas ? { unavailableReplicas: replicas - readyCount } : {}),
    conditions: [
      ready
        ? { type: 'Available', status: 'True', lastUpdateTime: time, lastTransitionTime: time, reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }
        : { type: 'Available', status: 'False', lastUpdateTime: time, lastTransitionTime: time, reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' },
      ready
        ? { type: 'Progressing', status: 'True', lastUpdateTime: time, lastTransitionTime: time, reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${object.metadata.name}-${generation}" has successfully progressed.` }
        : { type: 'Progressing', status: 'True', lastUpdateTime: time, lastTransitionTime: time, reason: 'ReplicaSetUpdated', message: `ReplicaSet "${object.metadata.name}-${generation}" is progressing.` },
    ],
  }
}

function jobStatus(object: KubeObject): Record<string, unknown> {
  const spec = isObject(object.spec) ? object.spec : {}
  const time = now()
  return {
    startTime: object.metadata.creationTimestamp,
    completionTime: time,
    succeeded: typeof spec.completions === 'number' ? spec.completions : 1,
    ready: 0,
    terminating: 0,
    uncountedTerminatedPods: {},
    conditions: [
      { type: 'SuccessCriteriaMet', status: 'True', lastProbeTime: time, lastTransitionTime: time, reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' },
      { type: 'Complete', status: 'True', lastProbeTime: time, lastTransitionTime: time, reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' },
    ],
  }
}

function podStatus(object: KubeObject): Record<string, unknown> {
  const time = now()
  const condition = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: time })
  return {
    phase: 'Running',
    startTime: object.metadata.creationTimestamp,
    hostIP: '10.0.0.11',
    podIP: `10.244.1.${2 + (randomBytes(1)[0] ?? 0) % 250}`,
    conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(condition),
  }
}
