import { createHash } from 'node:crypto'
import type { LookupFunction } from 'node:net'
import { createConfiguration, KubernetesObjectApi, Observable, PatchStrategy, ServerConfiguration, type KubernetesObject, type ObservableMiddleware } from '@kubernetes/client-node'
import type { ClusterConnection } from '../../core/registry/registered-cluster.ts'
import type { ApplyInput, ReleaseApplier } from '../../core/releases/ports.ts'
import type { ObjectRef } from '../../core/releases/release.ts'
import { decodeReleaseRecord, encodeReleaseRecord, releaseRecordSelector, type HelmRelease } from './release-record.ts'
import { isStatus, parseStatus, truncate } from '../kubernetes/api-answers.ts'
import { failureOf } from '../kubernetes/cluster-api-client.ts'
import { kubeConfigOf, SharedConnectionPool } from '../kubernetes/cluster-connection.ts'

/** The field manager of everything the engine applies. */
export const FIELD_MANAGER = 'slipway'
export const RELEASE_LABEL = 'slipway.io/release'
export const RELEASE_NAMESPACE_LABEL = 'slipway.io/release-namespace'

/** Helm's install order (pkg/release/util/kind_sorter.go); kinds it does not list go last, uninstall is the reverse. */
const INSTALL_ORDER = [
  'PriorityClass', 'Namespace', 'NetworkPolicy', 'ResourceQuota', 'LimitRange', 'PodSecurityPolicy', 'PodDisruptionBudget', 'ServiceAccount', 'Secret',
  'SecretList', 'ConfigMap', 'StorageClass', 'PersistentVolume', 'PersistentVolumeClaim', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleList',
  'ClusterRoleBinding', 'ClusterRoleBindingList', 'Role', 'RoleList', 'RoleBinding', 'RoleBindingList', 'Service', 'DaemonSet', 'Pod',
  'ReplicationController', 'ReplicaSet', 'Deployment', 'HorizontalPodAutoscaler', 'StatefulSet', 'Job', 'CronJob', 'IngressClass', 'Ingress',
  'APIService', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration',
]
const rank = (kind: string) => {
  const index = INSTALL_ORDER.indexOf(kind)
  return index === -1 ? INSTALL_ORDER.length : index
}
const byInstallOrder = <T extends { kind: string }>(items: T[]) => [...items].sort((a, b) => rank(a.kind) - rank(b.kind))

const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.split('/')[0]! : '')
/** Objects are the same across API versions of one group (apps/v1beta2 and apps/v1 Deployments). */
const identity = (ref: ObjectRef) => `${groupOf(ref.apiVersion)}|${ref.kind}|${ref.namespace ?? ''}|${ref.name}`
const refOf = (object: KubernetesObject): ObjectRef => ({ apiVersion: object.apiVersion!, kind: object.kind!, namespace: object.metadata?.namespace ?? null, name: object.metadata!.name! })
const describe = (ref: ObjectRef) => `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`

/** KubernetesObjectApi with its discovery (which kinds are namespaced) reachable: the one thing it keeps protected. */
class ObjectClient extends KubernetesObjectApi {
  async isNamespaced(apiVersion: string, kind: string): Promise<boolean> {
    const resource = await this.resource(apiVersion, kind)
    if (!resource) throw new Error(`the cluster does not serve ${kind} in ${apiVersion}`)
    return resource.namespaced
  }

  /** Reads (and keeps) the discovery of `apiVersion`; a kind it does not serve is reported where it is used. */
  async discover(apiVersion: string, kind: string): Promise<void> {
    await this.resource(apiVersion, kind)
  }
}

/**
 * Sends each request one turn of the event loop later. undici's pool keeps the connection that just answered
 * marked busy until a drain it signals asynchronously, so a request sent at once after an answer (every next
 * step of an apply is) opens another TLS connection: two per cluster for sequential requests, more after two
 * at once. One turn later the connection that answered carries it.
 */
const nextTurn: ObservableMiddleware = {
  pre: (context) => new Observable(new Promise((resolve) => setImmediate(() => resolve(context)))),
  post: (response) => new Observable(Promise.resolve(response)),
}

/** Why a Kubernetes call failed, in a line (never a credential). */
function apiError(error: unknown, what: string, timeoutMs: number): Error {
  const status = parseStatus((error as { body?: unknown }).body)
  if (status?.message) return new Error(`${what}: ${truncate(status.message, 400)}`)
  return new Error(`${what}: ${failureOf(error, timeoutMs).message}`)
}

export interface ReleaseApplierOptions {
  /** Each request gives up after this long. */
  requestTimeoutMs: number
  /** How often readiness is polled (default 250 ms). */
  pollMs?: number
  clock?: () => Date
  /** How host names are resolved (a provisioned cluster's endpoint by the engine itself). */
  lookup?: LookupFunction
}

/**
 * Puts releases on clusters with @kubernetes/client-node: server-side apply with field manager
 * "slipway" (forced: the engine owns what it applies), Helm's labels and annotations on every object,
 * pruning of what the previous revision had and this one has not, and Helm's own release record so
 * that `helm list` and `helm status` on the cluster show the release.
 */
export class KubernetesReleaseApplier implements ReleaseApplier {
  private readonly clients = new Map<string, { fingerprint: string; api: ObjectClient; pool: SharedConnectionPool }>()

  constructor(
    private readonly connectionOf: (cluster: string) => Promise<ClusterConnection>,
    private readonly options: ReleaseApplierOptions,
  ) {}

  async apply(cluster: string, input: ApplyInput, previous: ObjectRef[]): Promise<ObjectRef[]> {
    const api = await this.client(cluster)
    const timeout = this.options.requestTimeoutMs
    const rendered = byInstallOrder(input.rendered.objects.map((object) => object as KubernetesObject & { kind: string }))
    // Discovery of every group version the release uses (v1 for the namespace and the release record)
    // at once: on a client's first use, one round trip instead of one per group version in turn.
    const kindOf = new Map<string, string>([['v1', 'Namespace']])
    for (const object of rendered) if (typeof object.apiVersion === 'string' && !kindOf.has(object.apiVersion)) kindOf.set(object.apiVersion, object.kind)
    await Promise.all(
      [...kindOf].map(async ([apiVersion, kind]) => {
        try {
          await api.discover(apiVersion, kind)
        } catch (error) {
          throw apiError(error, `discovery of ${apiVersion}`, timeout)
        }
      }),
    )
    // The namespace and Helm's records of the earlier revisions are independent reads: at once (a list
    // in a namespace that does not exist yet is empty, as on the real API server).
    const [, records] = await Promise.all([this.ensureNamespace(api, input.namespace), this.releaseRecords(api, input.namespace, input.releaseName)])
    const objects: KubernetesObject[] = []
    for (const object of rendered) objects.push(await this.decorate(api, object, input))
    const applied: ObjectRef[] = []
    for (const object of objects) {
      try {
        await api.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
      } catch (error) {
        throw apiError(error, `apply ${describe(refOf(object))}`, timeout)
      }
      applied.push(refOf(object))
    }
    const kept = new Set(applied.map(identity))
    const stale = byInstallOrder(previous.filter((ref) => !kept.has(identity(ref)))).reverse()
    for (const ref of stale) await this.deleteObject(api, ref)
    await this.writeReleaseRecord(api, input, records)
    return applied
  }

  async waitReady(cluster: string, objects: ObjectRef[], timeoutMs: number): Promise<void> {
    const api = await this.client(cluster)
    const deadline = Date.now() + timeoutMs
    const workloads = objects.filter((ref) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(ref.kind))
    for (;;) {
      const waiting: string[] = []
      for (const ref of workloads) {
        let object: KubernetesObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> }
        try {
          object = await api.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } })
        } catch (error) {
          throw apiError(error, `read ${describe(ref)}`, this.options.requestTimeoutMs)
        }
        const why = notReady(ref.kind, object)
        if (why) waiting.push(`${describe(ref)}: ${why}`)
      }
      if (waiting.length === 0) return
      if (Date.now() >= deadline) throw new Error(`not ready after ${Math.round(timeoutMs / 1000)} s: ${waiting.slice(0, 5).join('; ')}${waiting.length > 5 ? `; and ${waiting.length - 5} more` : ''}`)
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.options.pollMs ?? 250, Math.max(0, deadline - Date.now()))))
    }
  }

  async uninstall(cluster: string, release: { name: string; namespace: string }, objects: ObjectRef[]): Promise<void> {
    const api = await this.client(cluster)
    for (const ref of byInstallOrder(objects).reverse()) await this.deleteObject(api, ref)
    for (const record of await this.releaseRecords(api, release.namespace, release.name)) {
      await this.deleteObject(api, { apiVersion: 'v1', kind: 'Secret', namespace: release.namespace, name: record.metadata!.name! })
    }
  }

  async close(): Promise<void> {
    for (const { pool } of this.clients.values()) await pool.close()
    this.clients.clear()
  }

  /** The release's labels and Helm's ownership marks (so that helm can take the release over), namespace filled in. */
  private async decorate(api: ObjectClient, object: KubernetesObject & { kind: string }, input: ApplyInput): Promise<KubernetesObject> {
    const copy = structuredClone(object) as KubernetesObject
    const metadata = (copy.metadata ??= {})
    if (await api.isNamespaced(copy.apiVersion!, copy.kind!)) metadata.namespace ??= input.namespace
    else delete metadata.namespace
    metadata.labels = { ...metadata.labels, 'app.kubernetes.io/managed-by': 'Helm', [RELEASE_LABEL]: input.releaseName, [RELEASE_NAMESPACE_LABEL]: input.namespace }
    metadata.annotations = { ...metadata.annotations, 'meta.helm.sh/release-name': input.releaseName, 'meta.helm.sh/release-namespace': input.namespace }
    return copy
  }

  private async ensureNamespace(api: ObjectClient, namespace: string): Promise<void> {
    try {
      await api.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } })
    } catch (error) {
      if (!isStatus(error, 404)) throw apiError(error, `read Namespace ${namespace}`, this.options.requestTimeoutMs)
      // Like helm install --create-namespace: created when missing, never deleted with the release.
      try {
        await api.patch({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
      } catch (createError) {
        throw apiError(createError, `create Namespace ${namespace}`, this.options.requestTimeoutMs)
      }
    }
  }

  private async deleteObject(api: ObjectClient, ref: ObjectRef): Promise<void> {
    try {
      await api.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } }, undefined, undefined, undefined, undefined, 'Background')
    } catch (error) {
      if (!isStatus(error, 404)) throw apiError(error, `delete ${describe(ref)}`, this.options.requestTimeoutMs)
    }
  }

  private async releaseRecords(api: ObjectClient, namespace: string, name: string): Promise<KubernetesObject[]> {
    try {
      return (await api.list('v1', 'Secret', namespace, undefined, undefined, undefined, undefined, releaseRecordSelector(name))).items
    } catch (error) {
      throw apiError(error, `list the release records of ${namespace}/${name}`, this.options.requestTimeoutMs)
    }
  }

  /**
   * Helm's record of this revision (deployed), and the revisions before (`records`, as listed before the
   * apply) marked superseded, as helm upgrade does.
   */
  private async writeReleaseRecord(api: ObjectClient, input: ApplyInput, records: KubernetesObject[]): Promise<void> {
    const now = (this.options.clock ?? (() => new Date()))()
    for (const record of records) {
      const { release, labels } = decodeReleaseRecord(record as { metadata?: { name?: string; labels?: Record<string, string> }; data?: Record<string, string> })
      if (release.version === input.revision || release.info.status !== 'deployed') continue
      const superseded = encodeReleaseRecord({ ...release, info: { ...release.info, status: 'superseded' } }, { modifiedAt: now, labels })
      try {
        await api.patch(superseded, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
      } catch (error) {
        throw apiError(error, `update release record ${superseded.metadata.name}`, this.options.requestTimeoutMs)
      }
    }
    const release: HelmRelease = {
      name: input.releaseName,
      namespace: input.namespace,
      version: input.revision,
      info: {
        first_deployed: input.firstDeployedAt,
        last_deployed: now.toISOString(),
        description: input.description === 'Install' ? 'Install complete' : input.description === 'Upgrade' ? 'Upgrade complete' : input.description,
        status: 'deployed',
        ...(input.rendered.notes ? { notes: input.rendered.notes } : {}),
      },
      chart: {
        metadata: {
          name: input.chart.name,
          version: input.chart.version,
          apiVersion: input.chart.apiVersion,
          ...(input.chart.appVersion ? { appVersion: input.chart.appVersion } : {}),
          ...(input.chart.description ? { description: input.chart.description } : {}),
        },
        templates: [],
        values: {},
      },
      config: input.values,
      manifest: input.rendered.manifest,
      apply_method: 'ssa',
    }
    const secret = encodeReleaseRecord(release, { modifiedAt: now })
    try {
      await api.patch(secret, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
    } catch (error) {
      throw apiError(error, `write release record ${secret.metadata.name}`, this.options.requestTimeoutMs)
    }
  }

  private async client(cluster: string): Promise<ObjectClient> {
    const connection = await this.connectionOf(cluster)
    const fingerprint = createHash('sha256').update(JSON.stringify([connection.server, connection.caBundle, connection.credential])).digest('hex')
    const current = this.clients.get(cluster)
    if (current?.fingerprint === fingerprint) return current.api
    void current?.pool.close()
    const pool = new SharedConnectionPool(connection, { keepAliveMs: 60_000, ...(this.options.lookup ? { lookup: this.options.lookup } : {}) })
    const config = kubeConfigOf(connection)
    const api = new ObjectClient(
      createConfiguration({ baseServer: new ServerConfiguration(connection.server, {}), authMethods: { default: config }, middleware: [nextTurn, pool.middleware(this.options.requestTimeoutMs)] }),
    )
    this.clients.set(cluster, { fingerprint, api, pool })
    return api
  }
}

/** Why a workload is not ready yet (undefined when it is), read from its status as kubectl rollout status does. */
function notReady(kind: string, object: { metadata?: { generation?: number }; spec?: Record<string, unknown>; status?: Record<string, unknown> }): string | undefined {
  const spec = object.spec ?? {}
  const status = object.status ?? {}
  const number = (value: unknown) => (typeof value === 'number' ? value : 0)
  if (typeof status.observedGeneration === 'number' && typeof object.metadata?.generation === 'number' && status.observedGeneration < object.metadata.generation) return 'the controller has not seen the latest spec'
  if (kind === 'Deployment' || kind === 'StatefulSet') {
    const replicas = spec.replicas === undefined ? 1 : number(spec.replicas)
    const ready = kind === 'Deployment' ? number(status.availableReplicas) : number(status.readyReplicas)
    const updated = number(status.updatedReplicas)
    if (updated < replicas) return `${updated} of ${replicas} replicas updated`
    if (ready < replicas) return `${ready} of ${replicas} replicas ${kind === 'Deployment' ? 'available' : 'ready'}`
    return undefined
  }
  if (kind === 'DaemonSet') {
    const desired = number(status.desiredNumberScheduled)
    if (status.updatedNumberScheduled !== undefined && number(status.updatedNumberScheduled) < desired) return `${number(status.updatedNumberScheduled)} of ${desired} pods updated`
    if (number(status.numberReady) < desired) return `${number(status.numberReady)} of ${desired} pods ready`
    return undefined
  }
  if (kind === 'Job') {
    const conditions = (status.conditions as { type: string; status: string }[] | undefined) ?? []
    if (conditions.some((condition) => condition.type === 'Failed' && condition.status === 'True')) return 'the job failed'
    return conditions.some((condition) => condition.type === 'Complete' && condition.status === 'True') ? undefined : 'the job has not completed'
  }
  return undefined
}

