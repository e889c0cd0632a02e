import Type from 'typebox'
import { CREDENTIAL_KINDS, HEALTH_STATUSES, type HealthRecord, type HealthTransition } from '../../../core/registry/registered-cluster.ts'
import type { LiveDetails, RegistryView, SweepReport } from '../../../core/registry/registry-service.ts'
import { MemberResponse } from './clusters.ts'
import { Nullable } from '../../../lib/nullable.ts'

const Condition = Type.Object({
  type: Type.String({ description: 'Joined or ControlPlaneHealthy (SIG-Multicluster ClusterProfile conditions).' }),
  status: Type.Enum(['True', 'False', 'Unknown']),
  reason: Type.String(),
  message: Type.String(),
  last_transition_time: Nullable(Type.String()),
})
export const HealthResponse = Type.Object({
  status: Type.Enum([...HEALTH_STATUSES]),
  reason: Type.String(),
  message: Type.String(),
  api_ready: Type.Boolean(),
  nodes_ready: Nullable(Type.Integer()),
  nodes_total: Nullable(Type.Integer()),
  pods_running: Nullable(Type.Integer()),
  pods_total: Nullable(Type.Integer()),
  checked_at: Type.String(),
  duration_ms: Type.Integer(),
  since: Type.String({ description: 'When the status last changed.' }),
})
export const TransitionResponse = Type.Object({ at: Type.String(), from: Nullable(Type.Enum([...HEALTH_STATUSES])), to: Type.Enum([...HEALTH_STATUSES]), reason: Type.String(), message: Type.String() })
export const RegistryResponse = Type.Object({
  name: Type.String(),
  display_name: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  location: Type.Object({ latitude: Nullable(Type.Number()), longitude: Nullable(Type.Number()), region: Nullable(Type.String()), site: Nullable(Type.String()) }),
  source: Type.Enum(['manual', 'provisioned'], { description: 'provisioned: created from a flavor here, joined once its API server answered.' }),
  server: Nullable(Type.String({ description: 'The API server URL; null until a provisioned cluster joins.' })),
  ca_bundle: Nullable(Type.String({ description: 'The CA the API server chains to (public).' })),
  credential_kind: Type.Enum([...CREDENTIAL_KINDS], { description: 'How the engine authenticates; the credential itself is never returned.' }),
  provisioning: Nullable(Type.Object({ flavor: Type.String(), state: Type.String({ description: 'pending until the control plane is complete and nodes_min nodes are assigned.' }) })),
  conditions: Type.Array(Condition),
  version: Type.Object({ kubernetes: Nullable(Type.String()) }),
  properties: Type.Array(Type.Object({ name: Type.String(), value: Type.String() })),
  ingress_addresses: Type.Array(Type.String(), { description: 'What DNS answers for apps running on this cluster.' }),
  health: Nullable(HealthResponse),
  joined_at: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
})
const LiveResponse = Type.Object({
  fetched_at: Type.String(),
  nodes: Type.Array(
    Type.Object({
      name: Type.String(),
      ready: Type.Boolean(),
      unschedulable: Type.Boolean(),
      roles: Type.Array(Type.String()),
      kubelet_version: Nullable(Type.String()),
      conditions: Type.Array(Type.Object({ type: Type.String(), status: Type.String(), reason: Nullable(Type.String()), message: Nullable(Type.String()), last_transition_time: Nullable(Type.String()) })),
    }),
  ),
  pods_by_namespace: Type.Record(Type.String(), Type.Object({ running: Type.Integer(), total: Type.Integer() })),
})
export const RegistryDetailResponse = Type.Object({
  ...RegistryResponse.properties,
  members: Type.Array(MemberResponse, { description: 'The machines of a provisioned cluster (empty for one added by hand).' }),
  transitions: Type.Array(TransitionResponse, { description: 'The latest health status changes, oldest first.' }),
  live: Type.Optional(Nullable(LiveResponse)),
  live_error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
})
export const RegistryNameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) })
export const RegistryListQuery = Type.Object({ labels: Type.Optional(Type.String({ maxLength: 4096, description: 'Kubernetes label selector, e.g. region=eu,tier!=test or env in (prod,staging).' })) })
export const RegistryDetailQuery = Type.Object({ live: Type.Optional(Type.Enum(['true', 'false'], { description: "true: also fetch nodes and pods from the cluster's API server now." })) })

export const toHealthResponse = (health: HealthRecord) => ({
  status: health.status,
  reason: health.reason,
  message: health.message,
  api_ready: health.apiReady,
  nodes_ready: health.nodesReady,
  nodes_total: health.nodesTotal,
  pods_running: health.podsRunning,
  pods_total: health.podsTotal,
  checked_at: health.checkedAt,
  duration_ms: health.durationMs,
  since: health.statusSince,
})
export const toTransition = (transition: HealthTransition) => ({ ...transition })

/** ClusterProfile's two conditions: Joined (the engine can reach it) and ControlPlaneHealthy. */
function conditionsOf(view: RegistryView) {
  const joined = view.joinedAt
    ? { type: 'Joined', status: 'True' as const, reason: view.source === 'provisioned' ? 'APIServerAnswered' : 'Registered', message: `joined at ${view.joinedAt}`, last_transition_time: view.joinedAt }
    : { type: 'Joined', status: 'False' as const, reason: 'Provisioning', message: view.joinMessage ?? 'waiting for the control plane to be scheduled and installed', last_transition_time: view.createdAt }
  const health = view.health
  const healthy = health
    ? { type: 'ControlPlaneHealthy', status: health.apiReady && health.status !== 'Unreachable' ? ('True' as const) : ('False' as const), reason: health.reason, message: health.message, last_transition_time: health.statusSince }
    : { type: 'ControlPlaneHealthy', status: 'Unknown' as const, reason: 'NotChecked', message: 'no health check yet', last_transition_time: null }
  return [joined, healthy]
}

export const toRegistryResponse = (view: RegistryView) => ({
  name: view.name,
  display_name: view.displayName,
  labels: view.labels,
  location: view.location,
  source: view.source,
  server: view.server,
  ca_bundle: view.caBundle,
  credential_kind: view.credentialKind,
  provisioning: view.provisioning,
  conditions: conditionsOf(view),
  version: { kubernetes: view.health?.kubernetesVersion ?? null },
  properties: Object.entries(view.properties).map(([name, value]) => ({ name, value })),
  ingress_addresses: view.ingressAddresses,
  health: view.health ? toHealthResponse(view.health) : null,
  joined_at: view.joinedAt,
  created_at: view.createdAt,
  updated_at: view.updatedAt,
})

export const toLiveResponse = (live: LiveDetails) => ({
  fetched_at: live.fetchedAt,
  nodes: live.nodes.map((node) => ({
    name: node.name,
    ready: node.ready,
    unschedulable: node.unschedulable,
    roles: node.roles,
    kubelet_version: node.kubeletVersion,
    conditions: node.conditions.map((condition) => ({ type: condition.type, status: condition.status, reason: condition.reason, message: condition.message, last_transition_time: condition.lastTransitionTime })),
  })),
  pods_by_namespace: live.podsByNamespace,
})

/** The ClusterProfile object (multicluster.x-k8s.io/v1alpha1) of a registry entry, for tools that speak it. */
export const toClusterProfile = (view: RegistryView) => ({
  apiVersion: 'multicluster.x-k8s.io/v1alpha1',
  kind: 'ClusterProfile',
  metadata: { name: view.name, labels: { ...view.labels, 'x-k8s.io/cluster-manager': 'slipway' }, creationTimestamp: view.createdAt },
  spec: { displayName: view.displayName, clusterManager: { name: 'slipway' } },
  status: {
    conditions: conditionsOf(view).map((condition) => ({ type: condition.type, status: condition.status, reason: condition.reason, message: condition.message, lastTransitionTime: condition.last_transition_time })),
    version: { kubernetes: view.health?.kubernetesVersion ?? '' },
    properties: Object.entries(view.properties).map(([name, value]) => ({ name, value })),
  },
})

export const HealthHistoryResponse = Type.Object({ health: Nullable(HealthResponse), transitions: Type.Array(TransitionResponse) })

export const SweepResponse = Type.Object({ checked: Type.Integer(), joined: Type.Array(Type.String()), duration_ms: Type.Integer(), statuses: Type.Record(Type.String(), Type.String()) })
export const toSweepResponse = (report: SweepReport) => ({ checked: report.checked, joined: report.joined, duration_ms: Math.round(report.durationMs), statuses: report.statuses })
