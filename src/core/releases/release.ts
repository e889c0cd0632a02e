import Type, { type Static, type TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { invalid } from '../errors.ts'
import { DNS_POLICIES, type DnsPolicy } from '../dns/dns-zone.ts'
import { checkDocument } from '../selection/documents.ts'
import { parseLabelSelector } from '../selection/label-selector.ts'

/**
 * A release: one chart, one release name and namespace, one label selector, fanned out to every
 * registered cluster the selector matches (optikon's one-touch deployment, with per-cluster status).
 * Each install, upgrade or rollback is a new revision, as in Helm; the reconciler brings every
 * matching cluster to the current revision, a few clusters at a time, canaries first.
 */
export const RELEASE_STATES = ['active', 'paused', 'halted', 'deleting'] as const
export type ReleaseState = (typeof RELEASE_STATES)[number]
export const CLUSTER_PHASES = ['pending', 'applying', 'ready', 'failed', 'removing'] as const
export type ClusterPhase = (typeof CLUSTER_PHASES)[number]

/** Helm's own limit: a release name is a DNS label of at most 53 characters. */
export const RELEASE_NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$'
export const NAMESPACE_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'

const HOSTNAME_PATTERN = '^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'
const DnsDocument = Type.Object(
  {
    hostnames: Type.Array(Type.String({ pattern: HOSTNAME_PATTERN }), {
      maxItems: 16,
      uniqueItems: true,
      default: [],
      description: 'Names answered besides <release>.<namespace>.<zone> (inside the zone; others are ignored).',
    }),
    policy: Type.Enum([...DNS_POLICIES], { default: 'nearest', description: 'nearest (to the client), round_robin, weighted, failover.' }),
    ttl_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, description: 'Default: dns.ttlSeconds.' })),
    weights: Type.Record(Type.String({ maxLength: 63 }), Type.Integer({ minimum: 0, maximum: 1000 }), { default: {}, description: 'weighted: per cluster (default 1).' }),
    failover: Type.Array(Type.String({ maxLength: 63 }), { maxItems: 64, default: [], description: 'failover: clusters in order of preference.' }),
  },
  { additionalProperties: false, default: {}, description: 'How DNS answers the release names with the clusters where it is ready.' },
)

const RolloutDocument = Type.Object(
  {
    max_parallel: Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'Clusters applying at once.' }),
    canary_selector: Type.Optional(Type.String({ maxLength: 4096, description: 'Clusters (label selector) that get a new revision first; the others wait until every canary is ready.' })),
    max_failures: Type.Integer({ minimum: 1, maximum: 100_000, default: 3, description: 'The rollout halts (no new cluster starts) once this many clusters failed the current revision.' }),
    ready_timeout_seconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 300, description: "How long a cluster's workloads have to become ready." }),
  },
  { additionalProperties: false, default: {} },
)

export const ReleaseDocument = Type.Object(
  {
    name: Type.String({ pattern: RELEASE_NAME_PATTERN, description: 'Release name (a DNS label, at most 53 characters, as Helm requires).' }),
    namespace: Type.String({ pattern: NAMESPACE_PATTERN, default: 'default' }),
    chart: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 253, description: "A chart in the engine's repository (uploaded, or pulled from a Helm repository)." }),
        version: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Default: the newest stored version.' })),
      },
      { additionalProperties: false },
    ),
    selector: Type.String({ maxLength: 4096, description: 'Kubernetes label selector over cluster labels; "" matches every cluster.' }),
    values: Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'Chart values (as with helm -f values.yaml).' }),
    cluster_values: Type.Boolean({
      default: false,
      description: 'Add `slipway.cluster` (name, labels, latitude, longitude, region, site) to the values of each cluster; clusters with equal values share one render.',
    }),
    rollout: RolloutDocument,
    dns: DnsDocument,
  },
  { additionalProperties: false },
)
export type ReleaseDocument = Static<typeof ReleaseDocument>

/** An upgrade changes the chart version, values, selector or rollout settings; what is left out is kept. */
export const UpgradeDocument = Type.Object(
  {
    chart: Type.Optional(ReleaseDocument.properties.chart),
    selector: Type.Optional(ReleaseDocument.properties.selector),
    values: Type.Optional(ReleaseDocument.properties.values),
    reuse_values: Type.Boolean({ default: false, description: 'Merge `values` over the current ones instead of replacing them (helm upgrade --reuse-values).' }),
    cluster_values: Type.Optional(Type.Boolean()),
    rollout: Type.Optional(Type.Partial(RolloutDocument, { additionalProperties: false })),
    dns: Type.Optional(DnsDocument),
  },
  { additionalProperties: false },
)
export type UpgradeDocument = Static<typeof UpgradeDocument>

export interface RolloutSettings {
  maxParallel: number
  canarySelector: string | null
  maxFailures: number
  readyTimeoutSeconds: number
}

/** How DNS answers a release's names (core/dns). */
export interface ReleaseDns {
  hostnames: string[]
  policy: DnsPolicy
  ttlSeconds: number | null
  weights: Record<string, number>
  failover: string[]
}

export const dnsSettingsOf = (document: ReleaseDocument['dns']): ReleaseDns => ({
  hostnames: document.hostnames,
  policy: document.policy,
  ttlSeconds: document.ttl_seconds ?? null,
  weights: document.weights,
  failover: document.failover,
})

export interface Release {
  name: string
  namespace: string
  selector: string
  dns: ReleaseDns
  /** Clusters the release was deleted from by selector: the reconciler leaves them alone. */
  excludedClusters: string[]
  revision: number
  state: ReleaseState
  rollout: RolloutSettings
  createdAt: string
  updatedAt: string
  /** The tenant that owns the release: it goes to that tenant's clusters only. Null or absent: the fleet's, to any cluster. */
  tenant?: string | null
}

export interface ReleaseRevision {
  revision: number
  chartName: string
  chartVersion: string
  values: Record<string, unknown>
  clusterValues: boolean
  /** Helm's wording: "Install complete", "Upgrade complete", "Rollback to 2". */
  description: string
  createdAt: string
}

/** A Kubernetes object the release put on a cluster (what an upgrade prunes and an uninstall deletes). */
export interface ObjectRef {
  apiVersion: string
  kind: string
  namespace: string | null
  name: string
}

export interface ClusterRelease {
  cluster: string
  /** The revision applied (ready) or being applied / last attempted. */
  revision: number
  phase: ClusterPhase
  error: string | null
  attempts: number
  /** When a failed cluster is retried automatically (also kept on one a resume put back to pending). */
  retryAt: string | null
  objects: ObjectRef[]
  updatedAt: string
  readyAt: string | null
}

export const releaseKey = (namespace: string, name: string) => `${namespace}/${name}`

/** Defaults fill what the caller left out, on a copy: the input is never changed. */
function withDefaults(schema: TSchema, input: unknown): unknown {
  return input !== null && typeof input === 'object' && !Array.isArray(input) ? Value.Default(schema, structuredClone(input)) : input
}

export function parseReleaseDocument(input: unknown): ReleaseDocument {
  const document = checkDocument(ReleaseDocument, withDefaults(ReleaseDocument, input), 'release', 'INVALID_RELEASE')
  document.selector = parseLabelSelector(document.selector).text
  if (document.rollout.canary_selector !== undefined) document.rollout.canary_selector = parseLabelSelector(document.rollout.canary_selector).text
  checkValues(document.values)
  return document
}

export function parseUpgradeDocument(input: unknown): UpgradeDocument {
  const document = checkDocument(UpgradeDocument, withDefaults(UpgradeDocument, input), 'upgrade', 'INVALID_RELEASE')
  if (document.selector !== undefined) document.selector = parseLabelSelector(document.selector).text
  if (document.rollout?.canary_selector !== undefined) document.rollout.canary_selector = parseLabelSelector(document.rollout.canary_selector).text
  if (document.values) checkValues(document.values)
  return document
}

/** Values travel to helm as a file and into every release record: bounded. */
function checkValues(values: Record<string, unknown>): void {
  const size = JSON.stringify(values).length
  if (size > 1_000_000) throw invalid('INVALID_RELEASE', `values are ${size} bytes of JSON; at most 1,000,000`)
}

export const rolloutSettingsOf = (document: ReleaseDocument['rollout']): RolloutSettings => ({
  maxParallel: document.max_parallel,
  canarySelector: document.canary_selector ?? null,
  maxFailures: document.max_failures,
  readyTimeoutSeconds: document.ready_timeout_seconds,
})

/** Values merged the way Helm merges -f files: maps recursively, everything else replaced. */
export function mergeValues(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const current = merged[key]
    merged[key] = isPlainObject(current) && isPlainObject(value) ? mergeValues(current, value) : value
  }
  return merged
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
