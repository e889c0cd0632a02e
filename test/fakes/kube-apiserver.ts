/**
 * A TEST DOUBLE of the kube-apiserver's HTTP API: the part a node drain touches, on node:http (or
 * node:https with client certificates) on 127.0.0.1 and a random port. It is not Kubernetes: it keeps
 * the real API's shapes and status codes so that the real @kubernetes/client-node can talk to it, and
 * models just enough of the controllers around it for a drain to be meaningful:
 *
 * - nodes: GET (one, list); PATCH with application/strategic-merge-patch+json, application/merge-patch+json
 *   and application/json-patch+json; any other Content-Type is 415 as on the real server. Status and
 *   identity fields are kept (status is a subresource). A resourceVersion in the patch that is not the
 *   current one is 409, a non-boolean spec.unschedulable is 422, a JSON patch that is not an array is 400.
 * - pods: GET /api/v1/pods and /api/v1/namespaces/{ns}/pods with fieldSelector, labelSelector, limit
 *   and continue (items in etcd key order, namespace/name); GET one pod. A continue token resumes after
 *   its key but reads the current state, not a snapshot at its resourceVersion.
 * - POST .../pods/{name}/eviction (policy/v1 or v1beta1 Eviction) with PodDisruptionBudgets
 *   (minAvailable, matchLabels): 429 TooManyRequests with a DisruptionBudget cause while evicting would
 *   leave fewer healthy (Ready, not terminating) pods than minAvailable; 500 when two budgets select the
 *   pod; finished, pending and terminating pods are deleted without asking the budget, as the real
 *   eviction REST storage does. An evicted pod becomes terminating (deletionTimestamp) and disappears
 *   after `terminationDelayMs`.
 * - "controllers": a pod owned by a ReplicaSet (or any controller but a StatefulSet or DaemonSet) gets a
 *   replacement with a new name and UID on another schedulable, Ready node `replacementDelayMs` after its
 *   eviction; a StatefulSet pod is recreated under the same name (new UID) once the old one is gone. A
 *   replacement turns Ready `replacementReadyDelayMs` later and then counts toward its budgets. With no
 *   schedulable node it stays Pending, unbound, until one appears.
 * - GET /apis/policy/v1/.../poddisruptionbudgets shows the budgets with their computed status.
 *
 * - discovery in its legacy form (/api, /apis, /api/v1, /apis/policy/v1), enough for kubectl's
 *   cordon, uncordon and drain to find nodes, pods and evictions.
 * - /version, and /readyz, /livez, /healthz answering "ok" (or 500 with the failing check while
 *   `setApiReady(false)`), as the real server's health endpoints do.
 * - authentication: with `tokens` and/or `tls.clientCaPem`, a request must carry one of the bearer
 *   tokens or a client certificate signed by the CA, else 401 (no anonymous access).
 * - `latencyMs` delays every answer (a distant cluster); `setUnresponsive(true)` accepts connections
 *   and requests but never answers them (a hung API server), until turned off or closed.
 *
 * Every request is recorded (method, path, query, content type, parsed body, answered status, client
 * certificate) for assertions; `failRequests` makes chosen requests fail with a real-looking Status.
 * The server, authentication, faults and the patch formats are kube-api-double.ts's, shared with the
 * cluster double.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import {
  clone,
  fail,
  generatedSuffix,
  HttpError,
  isObject,
  KubeApiDouble,
  kubeconfigFor,
  now,
  patchDocument,
  patchMediaType,
  PATCH_TYPES,
  statusBody,
  strategicMerge,
  subjectOf,
  type ApiCall,
  type ApiServerOptions,
  type BaseRecordedRequest,
} from './kube-api-double.ts'

export interface OwnerReference {
  apiVersion: string
  kind: string
  name: string
  uid: string
  controller?: boolean
  blockOwnerDeletion?: boolean
}

export interface ObjectMeta {
  name: string
  namespace?: string
  uid: string
  resourceVersion: string
  creationTimestamp: string
  generateName?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ownerReferences?: OwnerReference[]
  deletionTimestamp?: string
  deletionGracePeriodSeconds?: number
  generation?: number
}

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  lastHeartbeatTime?: string
  lastProbeTime?: string | null
  lastTransitionTime: string
  reason?: string
  message?: string
}

export interface NodeObject {
  apiVersion: 'v1'
  kind: 'Node'
  metadata: ObjectMeta
  spec: { podCIDR?: string; podCIDRs?: string[]; unschedulable?: boolean; taints?: Array<{ key: string; effect: string; value?: string }> }
  status: {
    conditions: Condition[]
    addresses: Array<{ type: string; address: string }>
    capacity: Record<string, string>
    allocatable: Record<string, string>
    nodeInfo: Record<string, string>
  }
}

export interface Volume {
  name: string
  emptyDir?: { medium?: string; sizeLimit?: string }
  configMap?: { name: string }
  hostPath?: { path: string; type?: string }
}

export interface PodObject {
  apiVersion: 'v1'
  kind: 'Pod'
  metadata: ObjectMeta
  spec: {
    nodeName?: string
    containers: Array<{ name: string; image: string; volumeMounts?: Array<{ name: string; mountPath: string }> }>
    volumes?: Volume[]
    restartPolicy: string
    terminationGracePeriodSeconds: number
    schedulerName: string
    serviceAccountName: string
  }
  status: {
    phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown'
    conditions?: Condition[]
    hostIP?: string
    podIP?: string
    startTime?: string
  }
}

export interface PodDisruptionBudgetObject {
  apiVersion: 'policy/v1'
  kind: 'PodDisruptionBudget'
  metadata: ObjectMeta
  spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } }
  status: {
    observedGeneration: number
    disruptionsAllowed: number
    currentHealthy: number
    desiredHealthy: number
    expectedPods: number
    conditions: Condition[]
  }
}

export interface RecordedRequest extends BaseRecordedRequest {
  /** Subject of the client certificate (TLS mode), e.g. "O=system:masters, CN=slipway-admin@lab". */
  clientCertificate?: string
}

export interface FakeKubeApiserverOptions extends ApiServerOptions {
  /** How long an evicted pod stays terminating before it disappears (its grace period, shortened). */
  terminationDelayMs?: number
  /** How long after an eviction a controller creates the replacement pod elsewhere. */
  replacementDelayMs?: number
  /** How long a replacement pod takes to become Ready. */
  replacementReadyDelayMs?: number
  /** What /version answers (default v1.31.4). */
  gitVersion?: string
}

export interface PodInput {
  name: string
  namespace?: string
  /** The node the pod is bound to; undefined leaves it Pending and unscheduled. */
  node: string | undefined
  labels?: Record<string, string>
  annotations?: Record<string, string>
  /** The controller owning the pod (ownerReferences with controller: true); undefined for a bare pod. */
  controller?: { kind: string; name: string; apiVersion?: string }
  emptyDir?: boolean
  phase?: PodObject['status']['phase']
  /** Ready condition; default true for Running pods. */
  ready?: boolean
  /** Already being deleted (deletionTimestamp set); it then disappears after terminationDelayMs. */
  terminating?: boolean
  /** This pod's own termination time, instead of the server's terminationDelayMs. */
  terminationDelayMs?: number
}

const notFound = (resource: string, name: string) => fail(404, `${resource} "${name}" not found`, { name, kind: resource })

/** The media types a PATCH of a node accepts (server-side apply is not modelled). */
const NODE_PATCH_TYPES = PATCH_TYPES.filter((type) => type !== 'application/apply-patch+yaml')
const BODY_TYPES = ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf']

/** Pod fields the real server lets a field selector use. */
const POD_FIELDS: Record<string, (pod: PodObject) => string> = {
  'metadata.name': (p) => p.metadata.name,
  'metadata.namespace': (p) => p.metadata.namespace ?? '',
  'spec.nodeName': (p) => p.spec.nodeName ?? '',
  'spec.restartPolicy': (p) => p.spec.restartPolicy,
  'spec.schedulerName': (p) => p.spec.schedulerName,
  'spec.serviceAccountName': (p) => p.spec.serviceAccountName,
  'status.phase': (p) => p.status.phase,
  'status.podIP': (p) => p.status.podIP ?? '',
}

function parseSelector(text: string | null, kind: 'field' | 'label'): Array<{ key: string; op: '=' | '!=' | 'exists' | '!exists'; value: string }> {
  if (!text) return []
  return text.split(',').map((term) => {
    const match = /^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*(.*?))?\s*$/.exec(term)
    if (!match) throw fail(400, `unable to parse requirement: invalid ${kind} selector: '${term}'`)
    const [, not, key = '', op, value = ''] = match
    if (!op) {
      if (kind === 'field') throw fail(400, `invalid selector: '${text}'; can't understand '${term}'`)
      return { key, op: not ? '!exists' : 'exists', value: '' }
    }
    if (kind === 'field' && !POD_FIELDS[key]) throw fail(400, `field label not supported: ${key}`)
    return { key, op: op === '!=' ? '!=' : '=', value }
  })
}

const podReady = (pod: PodObject) => pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
const podFinished = (pod: PodObject) => pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed'
const podKey = (namespace: string, name: string) => `${namespace}/${name}`
const controllerOf = (pod: PodObject) => pod.metadata.ownerReferences?.find((o) => o.controller)

const resource = (name: string, kind: string, namespaced: boolean, verbs: string[]) => ({ name, singularName: name.includes('/') ? '' : kind.toLowerCase(), namespaced, kind, verbs })
const DISCOVERY_CORE_V1 = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [
    resource('nodes', 'Node', false, ['get', 'list', 'patch']),
    resource('pods', 'Pod', true, ['get', 'list']),
    { ...resource('pods/eviction', 'Eviction', true, ['create']), group: 'policy', version: 'v1' },
  ],
}
const DISCOVERY_POLICY_V1 = { kind: 'APIResourceList', groupVersion: 'policy/v1', resources: [resource('poddisruptionbudgets', 'PodDisruptionBudget', true, ['get', 'list'])] }

export class FakeKubeApiserver extends KubeApiDouble<RecordedRequest> {
  private readonly nodes = new Map<string, NodeObject>()
  /** By namespace/name. */
  private readonly pods = new Map<string, PodObject>()
  private readonly budgets = new Map<string, PodDisruptionBudgetObject>()
  /** Per-pod termination times (by UID). */
  private readonly terminationDelays = new Map<string, number>()
  private readonly terminationDelayMs: number
  private readonly replacementDelayMs: number
  private readonly replacementReadyDelayMs: number

  private constructor(private readonly options: FakeKubeApiserverOptions) {
    super(options)
    this.terminationDelayMs = options.terminationDelayMs ?? 50
    this.replacementDelayMs = options.replacementDelayMs ?? 10
    this.replacementReadyDelayMs = options.replacementReadyDelayMs ?? 50
  }

  static async start(options: FakeKubeApiserverOptions = {}): Promise<FakeKubeApiserver> {
    const fake = new FakeKubeApiserver(options)
    await fake.listen()
    return fake
  }

  /** A kubeconfig without credentials for the plain-http double. */
  kubeconfig(): string {
    return kubeconfigFor(this.url, undefined)
  }

  // ----- state, for tests -----

  addNode(name: string, options: { ready?: boolean; unschedulable?: boolean; labels?: Record<string, string> } = {}): NodeObject {
    const index = this.nodes.size + 1
    const node: NodeObject = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        uid: randomUUID(),
        resourceVersion: this.nextResourceVersion(),
        creationTimestamp: now(),
        labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...options.labels },
        annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
      },
      spec: { podCIDR: `10.244.${index}.0/24`, podCIDRs: [`10.244.${index}.0/24`], ...(options.unschedulable ? { unschedulable: true } : {}) },
      status: {
        conditions: [
          ...['MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({
            type,
            status: 'False' as const,
            lastHeartbeatTime: now(),
            lastTransitionTime: now(),
            reason: `KubeletHas${type === 'PIDPressure' ? 'SufficientPID' : type === 'DiskPressure' ? 'NoDiskPressure' : 'SufficientMemory'}`,
            message: 'kubelet reports no pressure',
          })),
          this.readyCondition(options.ready ?? true),
        ],
        addresses: [
          { type: 'InternalIP', address: `10.0.0.${10 + index}` },
          { type: 'Hostname', address: name },
        ],
        capacity: { cpu: '4', memory: '8137372Ki', pods: '110' },
        allocatable: { cpu: '4', memory: '8034972Ki', pods: '110' },
        nodeInfo: { kubeletVersion: 'v1.31.4', containerRuntimeVersion: 'containerd://1.7.24', operatingSystem: 'linux', architecture: 'amd64' },
      },
    }
    this.nodes.set(name, node)
    this.scheduleUnboundPods()
    return clone(node)
  }

  node(name: string): NodeObject | undefined {
    const node = this.nodes.get(name)
    return node && clone(node)
  }

  /** What the kubelet's status updates would do: flip the node's Ready condition. */
  setNodeReady(name: string, ready: boolean): void {
    const node = this.nodes.get(name)
    if (!node) throw new Error(`no node ${name}`)
    node.status.conditions = node.status.conditions.map((c) => (c.type === 'Ready' ? this.readyCondition(ready) : c))
    node.metadata.resourceVersion = this.nextResourceVersion()
    this.scheduleUnboundPods()
  }

  addPod(input: PodInput): PodObject {
    const namespace = input.namespace ?? 'default'
    const phase = input.phase ?? 'Running'
    const ready = input.ready ?? phase === 'Running'
    const volumes: Volume[] = [{ name: 'kube-api-access', configMap: { name: 'kube-root-ca.crt' } }]
    if (input.emptyDir) volumes.push({ name: 'scratch', emptyDir: {} })
    const pod: PodObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: input.name,
        namespace,
        uid: randomUUID(),
        resourceVersion: this.nextResourceVersion(),
        creationTimestamp: now(),
        ...(input.labels ? { labels: { ...input.labels } } : {}),
        ...(input.annotations ? { annotations: { ...input.annotations } } : {}),
        ...(input.controller
          ? {
              ownerReferences: [
                {
                  apiVersion: input.controller.apiVersion ?? (input.controller.kind === 'Node' ? 'v1' : 'apps/v1'),
                  kind: input.controller.kind,
                  name: input.controller.name,
                  uid: randomUUID(),
                  controller: true,
                  blockOwnerDeletion: true,
                },
              ],
            }
          : {}),
      },
      spec: {
        ...(input.node ? { nodeName: input.node } : {}),
        containers: [
          { name: 'main', image: 'registry.k8s.io/pause:3.10', ...(input.emptyDir ? { volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] } : {}) },
        ],
        volumes,
        restartPolicy: 'Always',
        terminationGracePeriodSeconds: 30,
        schedulerName: 'default-scheduler',
        serviceAccountName: 'default',
      },
      status: { phase, conditions: this.podConditions(ready, input.node !== undefined) },
    }
    if (input.node) this.bindStatus(pod, input.node)
    const key = podKey(namespace, input.name)
    if (this.pods.has(key)) throw new Error(`pod ${key} exists`)
    this.pods.set(key, pod)
    if (input.terminationDelayMs !== undefined) this.terminationDelays.set(pod.metadata.uid, input.terminationDelayMs)
    if (input.terminating) this.deletePod(pod, 30)
    return clone(pod)
  }

  /** A pod vanishes at once (a force delete, or its namespace going away). */
  removePod(namespace: string, name: string): void {
    if (!this.pods.delete(podKey(namespace, name))) throw new Error(`no pod ${namespace}/${name}`)
    this.resourceVersion++
  }

  pod(namespace: string, name: string): PodObject | undefined {
    const pod = this.pods.get(podKey(namespace, name))
    return pod && clone(pod)
  }

  /** Pods bound to a node (or, with undefined, pods nobody could schedule yet). */
  podsOn(node: string | undefined): PodObject[] {
    return [...this.pods.values()].filter((p) => p.spec.nodeName === node).map(clone)
  }

  addPodDisruptionBudget(input: { name: string; namespace?: string; minAvailable: number; matchLabels: Record<string, string> }): PodDisruptionBudgetObject {
    const namespace = input.namespace ?? 'default'
    const budget: PodDisruptionBudgetObject = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: input.name, namespace, uid: randomUUID(), resourceVersion: this.nextResourceVersion(), creationTimestamp: now(), generation: 1 },
      spec: { minAvailable: input.minAvailable, selector: { matchLabels: { ...input.matchLabels } } },
      status: { observedGeneration: 1, disruptionsAllowed: 0, currentHealthy: 0, desiredHealthy: input.minAvailable, expectedPods: 0, conditions: [] },
    }
    this.budgets.set(podKey(namespace, input.name), budget)
    return this.budgetWithStatus(budget)
  }

  // ----- HTTP -----

  protected describe(base: BaseRecordedRequest, _call: ApiCall, socket: TLSSocket): RecordedRequest {
    const subject = this.options.tls ? subjectOf(socket) : ''
    return subject ? { ...base, clientCertificate: subject } : base
  }

  protected override faultFor(status: number, method: string, path: string): HttpError | undefined {
    if (status === 403) {
      // /api/v1/nodes/{n}, /api/v1/pods, /api/v1/namespaces/{ns}/pods/{p}[/eviction]
      const parts = path.split('/').filter(Boolean).slice(2)
      const namespace = parts[0] === 'namespaces' ? parts[1] : undefined
      const [resource = '', name, subresource] = namespace ? parts.slice(2) : parts
      const verb = method === 'PATCH' ? 'patch' : method === 'POST' ? 'create' : method === 'DELETE' ? 'delete' : name ? 'get' : 'list'
      const full = subresource ? `${resource}/${subresource}` : resource
      const scope = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope'
      return fail(403, `${resource}${name ? ` "${name}"` : ''} is forbidden: User "system:anonymous" cannot ${verb} resource "${full}" in API group "" ${scope}`, {
        ...(name ? { name } : {}),
        kind: resource,
      })
    }
    if (status === 404) {
      const name = path.split('/').filter(Boolean).at(path.endsWith('/eviction') ? -2 : -1) ?? ''
      return notFound(path.includes('/pods') ? 'pods' : 'nodes', name)
    }
    return undefined
  }

  protected route({ method, url, contentType, raw, body }: ApiCall): [number, unknown] {
    const parts = url.pathname.split('/').filter(Boolean)
    const resourceNotFound = () => fail(404, 'the server could not find the requested resource')
    const methodNotAllowed = () => fail(405, 'the server does not allow this method on the requested resource')

    if (url.pathname === '/version' && method === 'GET') {
      const gitVersion = this.options.gitVersion ?? 'v1.31.4'
      const [major = '1', minor = '31'] = gitVersion.replace(/^v/, '').split('.')
      return [200, { major, minor, gitVersion, platform: 'linux/amd64' }]
    }
    // Discovery, the legacy (unaggregated) form kubectl falls back to: what it needs to map `nodes`
    // and `pods` to their paths before a cordon or drain.
    if (method === 'GET' && url.pathname === '/api') return [200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: url.host }] }]
    if (method === 'GET' && url.pathname === '/apis') {
      const policy = { name: 'policy', versions: [{ groupVersion: 'policy/v1', version: 'v1' }], preferredVersion: { groupVersion: 'policy/v1', version: 'v1' } }
      return [200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [policy] }]
    }
    if (method === 'GET' && url.pathname === '/api/v1') return [200, DISCOVERY_CORE_V1]
    if (method === 'GET' && url.pathname === '/apis/policy/v1') return [200, DISCOVERY_POLICY_V1]
    if (parts[0] === 'api' && parts[1] === 'v1') {
      // /api/v1/nodes[/{name}]
      if (parts[2] === 'nodes') {
        if (parts.length === 3) {
          if (method !== 'GET') throw methodNotAllowed()
          return [200, this.list('NodeList', [...this.nodes.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)))]
        }
        if (parts.length === 4) {
          const name = parts[3] ?? ''
          if (method === 'GET') return [200, this.existingNode(name)]
          if (method === 'PATCH') return [200, this.patchNode(name, contentType, raw)]
          throw methodNotAllowed()
        }
        throw resourceNotFound()
      }
      // /api/v1/pods
      if (parts[2] === 'pods' && parts.length === 3) {
        if (method !== 'GET') throw methodNotAllowed()
        return [200, this.listPods(undefined, url.searchParams)]
      }
      // /api/v1/namespaces/{ns}/pods[/{name}[/eviction]]
      if (parts[2] === 'namespaces' && parts[4] === 'pods') {
        const namespace = parts[3] ?? ''
        if (parts.length === 5) {
          if (method !== 'GET') throw methodNotAllowed()
          return [200, this.listPods(namespace, url.searchParams)]
        }
        const name = parts[5] ?? ''
        if (parts.length === 6) {
          if (method !== 'GET') throw methodNotAllowed()
          const pod = this.pods.get(podKey(namespace, name))
          if (!pod) throw notFound('pods', name)
          return [200, pod]
        }
        if (parts.length === 7 && parts[6] === 'eviction') {
          if (method !== 'POST') throw methodNotAllowed()
          return this.evict(namespace, name, contentType, body)
        }
      }
      throw resourceNotFound()
    }
    if (parts[0] === 'apis' && parts[1] === 'policy' && parts[2] === 'v1') {
      const budgets = [...this.budgets.values()]
      if (parts[3] === 'poddisruptionbudgets' && parts.length === 4 && method === 'GET') {
        return [200, this.list('PodDisruptionBudgetList', budgets.map((b) => this.budgetWithStatus(b)), 'policy/v1')]
      }
      if (parts[3] === 'namespaces' && parts[5] === 'poddisruptionbudgets' && method === 'GET') {
        const namespace = parts[4] ?? ''
        if (parts.length === 6) {
          return [200, this.list('PodDisruptionBudgetList', budgets.filter((b) => b.metadata.namespace === namespace).map((b) => this.budgetWithStatus(b)), 'policy/v1')]
        }
        const budget = this.budgets.get(podKey(namespace, parts[6] ?? ''))
        if (!budget) throw notFound('poddisruptionbudgets.policy', parts[6] ?? '')
        return [200, this.budgetWithStatus(budget)]
      }
      throw resourceNotFound()
    }
    if (parts[0] === 'api' || parts[0] === 'apis') throw resourceNotFound()
    throw new HttpError(404, '404 page not found\n', 'text/plain; charset=utf-8')
  }

  private list(kind: string, items: Array<{ apiVersion: string; kind: string }>, apiVersion = 'v1', meta: Record<string, unknown> = {}) {
    // Items of a list carry no apiVersion/kind of their own on the real server.
    return {
      kind,
      apiVersion,
      metadata: { resourceVersion: String(this.resourceVersion), ...meta },
      items: items.map(({ apiVersion: _a, kind: _k, ...rest }) => clone(rest)),
    }
  }

  private existingNode(name: string): NodeObject {
    const node = this.nodes.get(name)
    if (!node) throw notFound('nodes', name)
    return node
  }

  private patchNode(name: string, contentType: string | undefined, raw: string): NodeObject {
    const node = this.existingNode(name)
    const patched = patchDocument(patchMediaType(contentType, NODE_PATCH_TYPES), raw, () => node, {
      strategic: strategicMerge,
      conflict: () =>
        fail(409, `Operation cannot be fulfilled on nodes "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: 'nodes' }),
      precondition: (metadata) => {
        if (typeof metadata.uid === 'string' && metadata.uid !== node.metadata.uid) {
          throw fail(409, `Precondition failed: UID in precondition: ${metadata.uid}, UID in object meta: ${node.metadata.uid}`, { name, kind: 'nodes' })
        }
      },
    })
    const next = patched as NodeObject
    const unschedulable: unknown = isObject(next.spec) ? next.spec.unschedulable : undefined
    if (unschedulable !== undefined && typeof unschedulable !== 'boolean') {
      throw fail(422, `Node "${name}" is invalid: spec.unschedulable: Invalid value: ${JSON.stringify(unschedulable)}: spec.unschedulable in body must be of type boolean`, {
        name,
        kind: 'Node',
        causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(unschedulable)}: must be of type boolean`, field: 'spec.unschedulable' }],
      })
    }
    // Identity and status are not the main resource's to change (status is a subresource).
    const updated: NodeObject = {
      ...next,
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { ...next.metadata, name, uid: node.metadata.uid, creationTimestamp: node.metadata.creationTimestamp, resourceVersion: this.nextResourceVersion() },
      status: node.status,
    }
    // false is the zero value: the real server stores and serves it as absent (omitempty).
    if (updated.spec.unschedulable === false) delete updated.spec.unschedulable
    this.nodes.set(name, updated)
    this.scheduleUnboundPods()
    return updated
  }

  private listPods(namespace: string | undefined, query: URLSearchParams) {
    const fields = parseSelector(query.get('fieldSelector'), 'field')
    const labels = parseSelector(query.get('labelSelector'), 'label')
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
    const keyed = [...this.pods.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    const matching = keyed.filter(([key, pod]) => {
      if (namespace !== undefined && pod.metadata.namespace !== namespace) return false
      if (start && key < start) return false
      const fieldsMatch = fields.every((f) => (POD_FIELDS[f.key]!(pod) === f.value) === (f.op === '='))
      const podLabels = pod.metadata.labels ?? {}
      const labelsMatch = labels.every((l) =>
        l.op === 'exists' ? l.key in podLabels : l.op === '!exists' ? !(l.key in podLabels) : (podLabels[l.key] === l.value) === (l.op === '='),
      )
      return fieldsMatch && labelsMatch
    })
    const page = limit > 0 ? matching.slice(0, limit) : matching
    const meta: Record<string, unknown> = {}
    if (limit > 0 && matching.length > limit) {
      const lastKey = page[page.length - 1]![0]
      meta.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: this.resourceVersion, start: `${lastKey}\u0000` })).toString('base64')
      // The real server cannot count what remains behind a selector, so it leaves this out then.
      if (fields.length === 0 && labels.length === 0) meta.remainingItemCount = matching.length - limit
    }
    return this.list('PodList', page.map(([, pod]) => pod), 'v1', meta)
  }

  private evict(namespace: string, name: string, contentType: string | undefined, body: unknown): [number, unknown] {
    const mediaType = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
    if (!BODY_TYPES.includes(mediaType)) {
      throw fail(415, `the body of the request was in an unknown format - accepted media types include: ${BODY_TYPES.join(', ')}`)
    }
    if (!isObject(body) || body.kind !== 'Eviction' || (body.apiVersion !== 'policy/v1' && body.apiVersion !== 'policy/v1beta1')) {
      throw fail(400, `no kind "${isObject(body) ? String(body.kind) : ''}" is registered for version "${isObject(body) ? String(body.apiVersion) : ''}" in scheme "k8s.io/apiserver/pkg/endpoints/handlers"`)
    }
    const metadata = isObject(body.metadata) ? body.metadata : {}
    if (metadata.name !== name) throw fail(400, 'name in URL does not match name in Eviction object', { name, group: 'policy', kind: 'Eviction' })
    if (metadata.namespace !== undefined && metadata.namespace !== namespace) {
      throw fail(400, 'the namespace of the provided object does not match the namespace sent on the request')
    }
    const deleteOptions = isObject(body.deleteOptions) ? body.deleteOptions : {}
    const grace = deleteOptions.gracePeriodSeconds
    if (grace !== undefined && (typeof grace !== 'number' || !Number.isInteger(grace))) {
      throw fail(400, 'json: cannot unmarshal into Go struct field DeleteOptions.deleteOptions.gracePeriodSeconds of type int64')
    }

    const pod = this.pods.get(podKey(namespace, name))
    if (!pod) throw notFound('pods', name)
    const success: [number, unknown] = [201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 }]
    if (pod.metadata.deletionTimestamp) return success
    // The eviction storage deletes these without asking any budget.
    if (podFinished(pod) || pod.status.phase === 'Pending') {
      this.deletePod(pod, (grace as number | undefined) ?? pod.spec.terminationGracePeriodSeconds)
      return success
    }
    const budgets = [...this.budgets.values()].filter((b) => b.metadata.namespace === namespace && this.selects(b, pod))
    if (budgets.length > 1) throw fail(500, 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.')
    const budget = budgets[0]
    if (budget) {
      const status = this.budgetWithStatus(budget).status
      // unhealthyPodEvictionPolicy IfHealthyBudget: an unready pod may go while the budget is met.
      const allowed = podReady(pod) ? status.disruptionsAllowed > 0 : status.currentHealthy >= status.desiredHealthy
      if (!allowed) {
        throw new HttpError(
          429,
          statusBody(429, "Cannot evict pod as it would violate the pod's disruption budget.", {
            causes: [
              {
                reason: 'DisruptionBudget',
                message: `The disruption budget ${budget.metadata.name} needs ${status.desiredHealthy} healthy pods and has ${status.currentHealthy} currently`,
              },
            ],
          }),
        )
      }
    }
    this.deletePod(pod, (grace as number | undefined) ?? pod.spec.terminationGracePeriodSeconds)
    return success
  }

  // ----- the controllers' part -----

  private selects(budget: PodDisruptionBudgetObject, pod: PodObject): boolean {
    const labels = pod.metadata.labels ?? {}
    return Object.entries(budget.spec.selector.matchLabels).every(([k, v]) => labels[k] === v)
  }

  /** What the disruption controller would have written into the budget's status. */
  private budgetWithStatus(budget: PodDisruptionBudgetObject): PodDisruptionBudgetObject {
    const pods = [...this.pods.values()].filter((p) => p.metadata.namespace === budget.metadata.namespace && this.selects(budget, p) && !podFinished(p))
    const currentHealthy = pods.filter((p) => podReady(p) && !p.metadata.deletionTimestamp).length
    const desiredHealthy = budget.spec.minAvailable
    const disruptionsAllowed = Math.max(0, currentHealthy - desiredHealthy)
    return clone({
      ...budget,
      status: {
        observedGeneration: budget.metadata.generation ?? 1,
        disruptionsAllowed,
        currentHealthy,
        desiredHealthy,
        expectedPods: pods.length,
        conditions: [
          {
            type: 'DisruptionAllowed',
            status: disruptionsAllowed > 0 ? 'True' : 'False',
            reason: disruptionsAllowed > 0 ? 'SufficientPods' : 'InsufficientPods',
            message: '',
            lastTransitionTime: now(),
          },
        ],
      },
    })
  }

  /** A graceful delete: the pod turns terminating, then is gone; its controller replaces it. */
  private deletePod(pod: PodObject, graceSeconds: number): void {
    const key = podKey(pod.metadata.namespace ?? '', pod.metadata.name)
    const uid = pod.metadata.uid
    pod.metadata.deletionTimestamp = new Date(Date.now() + graceSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z')
    pod.metadata.deletionGracePeriodSeconds = graceSeconds
    pod.metadata.resourceVersion = this.nextResourceVersion()
    const controller = controllerOf(pod)
    const replaceable = controller && controller.kind !== 'DaemonSet' && controller.kind !== 'Node' && !podFinished(pod)
    // A ReplicaSet does not count terminating pods: it creates the replacement right away.
    if (replaceable && controller.kind !== 'StatefulSet') this.later(this.replacementDelayMs, () => this.createReplacement(pod, `${controller.name}-${generatedSuffix()}`))
    this.later(this.terminationDelays.get(uid) ?? this.terminationDelayMs, () => {
      if (this.pods.get(key)?.metadata.uid !== uid) return
      this.pods.delete(key)
      this.resourceVersion++
      // A StatefulSet recreates the same name only once the old pod is gone.
      if (replaceable && controller.kind === 'StatefulSet') this.later(this.replacementDelayMs, () => this.createReplacement(pod, pod.metadata.name))
    })
  }

  private createReplacement(old: PodObject, name: string): void {
    const namespace = old.metadata.namespace ?? 'default'
    const key = podKey(namespace, name)
    if (this.pods.has(key)) return
    const pod: PodObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace,
        uid: randomUUID(),
        resourceVersion: this.nextResourceVersion(),
        creationTimestamp: now(),
        ...(old.metadata.labels ? { labels: { ...old.metadata.labels } } : {}),
        ...(old.metadata.ownerReferences ? { ownerReferences: clone(old.metadata.ownerReferences) } : {}),
        ...(controllerOf(old)?.kind === 'StatefulSet' ? {} : { generateName: `${controllerOf(old)?.name ?? name}-` }),
      },
      spec: { ...clone(old.spec), nodeName: undefined },
      status: { phase: 'Pending', conditions: this.podConditions(false, false) },
    }
    delete pod.spec.nodeName
    this.pods.set(key, pod)
    this.schedule(pod)
  }

  /** The scheduler: the schedulable, Ready node with the fewest pods. */
  private schedule(pod: PodObject): void {
    const candidates = [...this.nodes.values()].filter((n) => !n.spec.unschedulable && n.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'))
    if (candidates.length === 0) return
    const load = (node: NodeObject) => [...this.pods.values()].filter((p) => p.spec.nodeName === node.metadata.name).length
    const node = candidates.sort((a, b) => load(a) - load(b) || a.metadata.name.localeCompare(b.metadata.name))[0]!
    pod.spec.nodeName = node.metadata.name
    pod.status.conditions = this.podConditions(false, true)
    pod.metadata.resourceVersion = this.nextResourceVersion()
    this.bindStatus(pod, node.metadata.name)
    const key = podKey(pod.metadata.namespace ?? '', pod.metadata.name)
    const uid = pod.metadata.uid
    this.later(this.replacementReadyDelayMs, () => {
      const current = this.pods.get(key)
      if (!current || current.metadata.uid !== uid || current.metadata.deletionTimestamp) return
      current.status.phase = 'Running'
      current.status.startTime = now()
      current.status.conditions = this.podConditions(true, true)
      current.metadata.resourceVersion = this.nextResourceVersion()
    })
  }

  private scheduleUnboundPods(): void {
    for (const pod of this.pods.values()) if (!pod.spec.nodeName && !pod.metadata.deletionTimestamp && !podFinished(pod)) this.schedule(pod)
  }

  private bindStatus(pod: PodObject, nodeName: string): void {
    const node = this.nodes.get(nodeName)
    const hostIP = node?.status.addresses.find((a) => a.type === 'InternalIP')?.address
    if (hostIP) pod.status.hostIP = hostIP
    const cidr = node?.spec.podCIDR
    if (cidr) pod.status.podIP = cidr.replace(/0\/24$/, String(2 + (randomBytes(1)[0] ?? 0) % 250))
  }

  private podConditions(ready: boolean, scheduled: boolean): Condition[] {
    const at = now()
    const status = (value: boolean) => (value ? ('True' as const) : ('False' as const))
    return [
      { type: 'PodScheduled', status: status(scheduled), lastProbeTime: null, lastTransitionTime: at },
      { type: 'Initialized', status: status(scheduled), lastProbeTime: null, lastTransitionTime: at },
      { type: 'ContainersReady', status: status(ready), lastProbeTime: null, lastTransitionTime: at },
      { type: 'Ready', status: status(ready), lastProbeTime: null, lastTransitionTime: at },
    ]
  }

  private readyCondition(ready: boolean): Condition {
    return ready
      ? { type: 'Ready', status: 'True', lastHeartbeatTime: now(), lastTransitionTime: now(), reason: 'KubeletReady', message: 'kubelet is posting ready status' }
      : { type: 'Ready', status: 'Unknown', lastHeartbeatTime: now(), lastTransitionTime: now(), reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' }
  }

}
