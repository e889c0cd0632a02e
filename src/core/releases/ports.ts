import type { StoredChart } from './chart-service.ts'
import type { ClusterRelease, ObjectRef, Release, ReleaseRevision } from './release.ts'

/** A Kubernetes object as helm rendered it. */
export type KubeObject = Record<string, unknown> & { apiVersion?: unknown; kind?: unknown; metadata?: unknown }

export interface Rendered {
  /** The manifest exactly as helm printed it (what the release record keeps). */
  manifest: string
  objects: KubeObject[]
  notes: string
}

export interface RenderInput {
  chart: StoredChart
  archive: Buffer
  releaseName: string
  namespace: string
  values: Record<string, unknown>
  /** The cluster's version, for charts with a kubeVersion constraint (helm template --kube-version). */
  kubeVersion: string | null
}

/** `helm template`: 400 CHART_RENDER_FAILED with helm's own message when the chart does not render. */
export interface ReleaseRenderer {
  render(input: RenderInput): Promise<Rendered>
}

export interface ApplyInput {
  releaseName: string
  namespace: string
  revision: number
  description: string
  chart: StoredChart
  values: Record<string, unknown>
  rendered: Rendered
  /** When revision 1 was deployed on this cluster (Helm's info.first_deployed). */
  firstDeployedAt: string
}

/** Puts a release on a cluster and takes it off, through the cluster's API server (adapters/kubernetes). */
export interface ReleaseApplier {
  /**
   * Server-side applies every object (field manager "slipway"), deletes what `previous` had and the
   * new revision has not, writes Helm's release record; returns what is now on the cluster.
   */
  apply(cluster: string, input: ApplyInput, previous: ObjectRef[]): Promise<ObjectRef[]>
  /** Resolves once the workloads among `objects` are ready; throws what is not, after `timeoutMs`. */
  waitReady(cluster: string, objects: ObjectRef[], timeoutMs: number): Promise<void>
  /** Deletes `objects` and the release records. */
  uninstall(cluster: string, release: { name: string; namespace: string }, objects: ObjectRef[]): Promise<void>
}

export interface ReleaseEvent {
  at: string
  cluster: string | null
  message: string
}

export interface ReleaseRepository {
  list(): Promise<Release[]>
  find(namespace: string, name: string): Promise<Release | undefined>
  /** Refuses (409 RELEASE_EXISTS) an existing namespace/name. */
  insert(release: Release, revision: ReleaseRevision): Promise<void>
  save(release: Release): Promise<void>
  /**
   * Marks the release halted (its state and updatedAt, nothing else) only if it is still active at
   * `revision`; returns whether it did. The reconciler halts on a release it read earlier: an upgrade,
   * pause or delete committed meanwhile is kept, and that revision is not halted for another's failures.
   */
  halt(namespace: string, name: string, revision: number, at: string): Promise<boolean>
  delete(namespace: string, name: string): Promise<void>
  insertRevision(namespace: string, name: string, revision: ReleaseRevision): Promise<void>
  /** Oldest first. */
  listRevisions(namespace: string, name: string): Promise<ReleaseRevision[]>
  listClusters(namespace: string, name: string): Promise<ClusterRelease[]>
  saveCluster(namespace: string, name: string, status: ClusterRelease): Promise<void>
  deleteCluster(namespace: string, name: string, cluster: string): Promise<void>
  appendEvent(namespace: string, name: string, event: ReleaseEvent): Promise<void>
  /** The latest `limit`, oldest first. */
  listEvents(namespace: string, name: string, limit: number): Promise<ReleaseEvent[]>
  transaction<T>(work: (repository: ReleaseRepository) => Promise<T>): Promise<T>
}

/** A registered cluster as releases see it. */
export interface ReleaseCluster {
  name: string
  labels: Record<string, string>
  latitude: number | null
  longitude: number | null
  region: string | null
  site: string | null
  /** Only joined clusters (the engine can reach them) get releases. */
  joined: boolean
  kubernetesVersion: string | null
  /** The tenant that owns the cluster; null or absent: the fleet's. */
  tenant?: string | null
}

export interface ReleaseClusters {
  list(): Promise<ReleaseCluster[]>
}
