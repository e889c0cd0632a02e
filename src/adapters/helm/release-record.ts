import zlib from 'node:zlib'

/**
 * Helm's release record, so that a release the engine applied itself shows in `helm list`,
 * `helm status` and `helm history` on the cluster, and `helm upgrade`/`helm uninstall` can take over.
 *
 * Helm's "secret" storage driver (helm pkg/storage/driver/secrets.go and util.go, unchanged from Helm
 * 3 to 4) keeps one Secret per revision:
 * - name `sh.helm.release.v1.<release>.v<revision>`, type `helm.sh/release.v1`, in the release's namespace;
 * - labels `owner=helm`, `name=<release>`, `status=<info.status>`, `version=<revision>` (what `helm list`
 *   selects on) and `createdAt`/`modifiedAt` (Unix seconds, set on create/update);
 * - `data.release` = base64(gzip(JSON of the release)); being Secret data, the API's JSON carries it
 *   base64-encoded once more. Helm decodes without gzip when the gzip magic is absent (old records).
 *
 * The release JSON (pkg/release/v1/release.go, info.go; pkg/chart/v2/chart.go, metadata.go; Go field
 * names in its json tags, omitempty where Helm has it) — as Helm 4.1 writes it:
 * {
 *   name, namespace, version (revision, from 1), apply_method ("ssa" | "csa"; absent means csa),
 *   info: { first_deployed, last_deployed, deleted? (RFC 3339 with nanoseconds), description, status
 *           (unknown | deployed | uninstalled | superseded | failed | uninstalling | pending-install |
 *           pending-upgrade | pending-rollback), notes? },
 *   chart: { metadata: { name, version, apiVersion ("v2"), appVersion?, description?, type?, kubeVersion?,
 *            ... }, lock: null, templates: [{ name: "templates/x.yaml", data: base64 }], values: {...},
 *            schema: base64 | null, files: [...] | null },
 *   config: the user-supplied values (not merged with the chart's),
 *   manifest: the rendered manifest ("---\n# Source: chart/templates/x.yaml\n..." documents),
 *   hooks?: [...]
 * }
 * `helm list` shows name, namespace, revision, updated (info.last_deployed), status, chart
 * (metadata.name-metadata.version) and app version; `helm status` adds description, notes and,
 * from the manifest, the resources it reads back from the cluster.
 */

export type HelmReleaseStatus =
  | 'unknown'
  | 'deployed'
  | 'uninstalled'
  | 'superseded'
  | 'failed'
  | 'uninstalling'
  | 'pending-install'
  | 'pending-upgrade'
  | 'pending-rollback'

export interface HelmChartMetadata {
  name: string
  version: string
  apiVersion: string
  appVersion?: string
  description?: string
  type?: string
  kubeVersion?: string
  [field: string]: unknown
}

export interface HelmChartFile {
  name: string
  /** base64 of the file's bytes (Go's []byte in JSON). */
  data: string
  [field: string]: unknown
}

export interface HelmRelease {
  name: string
  namespace: string
  /** The revision, from 1. */
  version: number
  info: {
    first_deployed?: string
    last_deployed?: string
    deleted?: string
    description?: string
    status: HelmReleaseStatus
    notes?: string
    [field: string]: unknown
  }
  chart: {
    metadata: HelmChartMetadata
    lock?: unknown
    templates?: HelmChartFile[] | null
    values?: Record<string, unknown> | null
    schema?: string | null
    files?: HelmChartFile[] | null
    [field: string]: unknown
  }
  config?: Record<string, unknown>
  manifest?: string
  hooks?: unknown[]
  /** "ssa" for server-side apply (what the engine does), "csa" or absent for client-side apply. */
  apply_method?: 'ssa' | 'csa'
  [field: string]: unknown
}

/** The Secret as the Kubernetes API's JSON carries it (data values base64). */
export interface ReleaseRecordSecret {
  apiVersion: 'v1'
  kind: 'Secret'
  metadata: { name: string; namespace: string; labels: Record<string, string>; [field: string]: unknown }
  type: 'helm.sh/release.v1'
  data: { release: string }
}

export const RELEASE_RECORD_TYPE = 'helm.sh/release.v1'
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08])
/** Labels Helm manages itself; any other label on a record is one of the release's own labels. */
export const SYSTEM_LABELS = ['name', 'owner', 'status', 'version', 'createdAt', 'modifiedAt']

export class ReleaseRecordError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ReleaseRecordError'
  }
}

export const releaseRecordName = (release: string, revision: number) => `sh.helm.release.v1.${release}.v${revision}`

/** The label selector `helm list` and `helm status` use to find a release's records. */
export const releaseRecordSelector = (release: string) => `name=${release},owner=helm`

/**
 * The Secret holding `release`, ready to create, replace or server-side apply. `modifiedAt` is the
 * Unix time Helm's update stamps (default now); extra `labels` are the release's own (helm --labels).
 */
export function encodeReleaseRecord(release: HelmRelease, options: { modifiedAt?: Date; labels?: Record<string, string> } = {}): ReleaseRecordSecret {
  if (!release.name || !release.namespace) throw new ReleaseRecordError('a release record needs the release name and namespace')
  if (!Number.isInteger(release.version) || release.version < 1) throw new ReleaseRecordError(`release revision must be a positive integer, not ${release.version}`)
  const gzipped = zlib.gzipSync(Buffer.from(JSON.stringify(release), 'utf8'), { level: zlib.constants.Z_BEST_COMPRESSION })
  const helmString = gzipped.toString('base64')
  const modifiedAt = Math.floor((options.modifiedAt ?? new Date()).getTime() / 1000)
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: releaseRecordName(release.name, release.version),
      namespace: release.namespace,
      labels: {
        ...options.labels,
        modifiedAt: String(modifiedAt),
        name: release.name,
        owner: 'helm',
        status: release.info.status,
        version: String(release.version),
      },
    },
    type: RELEASE_RECORD_TYPE,
    // Helm stores its base64 text as the Secret's bytes; the API's JSON encodes those bytes again.
    data: { release: Buffer.from(helmString, 'utf8').toString('base64') },
  }
}

/** The release in a record Secret (as the API returns it), and the release's own labels. */
export function decodeReleaseRecord(secret: { metadata?: { name?: string; labels?: Record<string, string> }; data?: Record<string, string> | null }): {
  release: HelmRelease
  labels: Record<string, string>
} {
  const name = secret.metadata?.name ?? '(unnamed)'
  const data = secret.data?.release
  if (typeof data !== 'string') throw new ReleaseRecordError(`Secret ${name} has no data.release`)
  const helmString = Buffer.from(data, 'base64').toString('utf8')
  let bytes = Buffer.from(helmString, 'base64')
  if (bytes.subarray(0, 3).equals(GZIP_MAGIC)) {
    try {
      bytes = zlib.gunzipSync(bytes)
    } catch (error) {
      throw new ReleaseRecordError(`Secret ${name}: data.release is not valid gzip: ${(error as Error).message}`)
    }
  }
  let release: unknown
  try {
    release = JSON.parse(bytes.toString('utf8'))
  } catch (error) {
    throw new ReleaseRecordError(`Secret ${name}: data.release is not a release JSON: ${(error as Error).message}`)
  }
  if (release === null || typeof release !== 'object' || typeof (release as HelmRelease).name !== 'string') {
    throw new ReleaseRecordError(`Secret ${name}: data.release holds no release`)
  }
  const labels = Object.fromEntries(Object.entries(secret.metadata?.labels ?? {}).filter(([key]) => !SYSTEM_LABELS.includes(key)))
  return { release: release as HelmRelease, labels }
}
