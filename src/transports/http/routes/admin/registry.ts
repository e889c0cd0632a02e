import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ClusterService } from '../../../../core/clusters/cluster-service.ts'
import { ClusterDocument } from '../../../../core/clusters/cluster.ts'
import { SlipwayError } from '../../../../core/errors.ts'
import { CREDENTIAL_KINDS, HEALTH_STATUSES, RegistrationDocument, RegistrationUpdateDocument, type HealthRecord, type HealthTransition } from '../../../../core/registry/registered-cluster.ts'
import type { ClusterRegistry, LiveDetails, RegistryView, SweepReport } from '../../../../core/registry/registry-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { tenancyOf } from '../../auth.ts'
import { MemberResponse, toMemberResponse } from './clusters.ts'
import { clusterOwner, operate, read } from '../../../../core/access/route-policy.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const Condition = Type.Object({
  type: Type.String({ description: 'Joined or ControlPlaneHealthy (SIG-Multicluster ClusterProfile conditions).' }),
  status: Type.Enum(['True', 'False', 'Unknown']),
  reason: Type.String(),
  message: Type.String(),
  last_transition_time: Nullable(Type.String()),
})
const HealthResponse = Type.Object({
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
const TransitionResponse = Type.Object({ at: Type.String(), from: Nullable(Type.Enum([...HEALTH_STATUSES])), to: Type.Enum([...HEALTH_STATUSES]), reason: Type.String(), message: Type.String() })
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
const DetailResponse = Type.Object({
  ...RegistryResponse.properties,
  members: Type.Array(MemberResponse, { description: 'The machines of a provisioned cluster (empty for one added by hand).' }),
  transitions: Type.Array(TransitionResponse, { description: 'The latest health status changes, oldest first.' }),
  live: Type.Optional(Nullable(LiveResponse)),
  live_error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
})
const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) })
const ListQuery = Type.Object({ labels: Type.Optional(Type.String({ maxLength: 4096, description: 'Kubernetes label selector, e.g. region=eu,tier!=test or env in (prod,staging).' })) })
const DetailQuery = Type.Object({ live: Type.Optional(Type.Enum(['true', 'false'], { description: "true: also fetch nodes and pods from the cluster's API server now." })) })

const toHealthResponse = (health: HealthRecord) => ({
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
const toTransition = (transition: HealthTransition) => ({ ...transition })

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

const toLiveResponse = (live: LiveDetails) => ({
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
const toClusterProfile = (view: RegistryView) => ({
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

export interface RegistryRouteOptions {
  registry: ClusterRegistry
  clusters: ClusterService
  healthSweep: { runNow(reason?: string): Promise<SweepReport> }
  /** Timeout of each API server request made for `?live=true`. */
  requestTimeoutMs: number
}

/**
 * The cluster registry's API: every cluster, provisioned or added by hand. Registered under /api/v1
 * and, for optikon's users, at the root (`/clusters`, behind the same token). A POST with `flavor`
 * provisions a cluster from machines; without it, it registers an existing cluster.
 */
export const registryRoutes: FastifyPluginAsyncTypebox<RegistryRouteOptions> = async (app, { registry, clusters, healthSweep, requestTimeoutMs }) => {
  const tags = ['clusters']
  app.get(
    '/clusters',
    { config: { access: read('tenant') }, schema: { tags, summary: 'Every cluster, or those whose labels match ?labels= (Kubernetes selector syntax)', querystring: ListQuery, response: { 200: Type.Array(RegistryResponse), ...adminErrors } } },
    async (request) => (await tenancyOf(request).clusters(await registry.list(request.query.labels))).map(toRegistryResponse),
  )

  app.post(
    '/clusters',
    {
      config: { access: operate('tenant') },
      schema: {
        tags,
        summary: 'Provision a cluster from a flavor (body with `flavor`), or register an existing one (name, server, ca_bundle, credentials: token | client_certificate + client_key | kubeconfig)',
        body: Type.Unknown({ description: 'With `flavor`: ClusterDocument. Without: RegistrationDocument.' }),
        response: { 201: RegistryResponse, ...adminErrors },
      },
    },
    async (request, reply) => {
      // `tenant`: a tenant token's clusters are its tenant's; a fleet token may name one.
      const { body, tenant } = tenancyOf(request).claim(request.body)
      const provisioning = body !== null && typeof body === 'object' && !Array.isArray(body) && 'flavor' in body
      const name = provisioning ? (await clusters.createCluster(body)).name : (await registry.register(body)).name
      await tenancyOf(request).stampCluster(name, tenant)
      return reply.status(201).send(toRegistryResponse(await registry.get(name, 0)))
    },
  )

  app.get(
    '/clusters/:name',
    {
      config: { access: read('tenant', clusterOwner) },
      schema: {
        tags,
        summary: 'A cluster with its members, health history and, with ?live=true, its nodes and pods fetched now',
        params: NameParams,
        querystring: DetailQuery,
        response: { 200: DetailResponse, ...adminErrors },
      },
    },
    async (request) => {
      const detail = await registry.get(request.params.name)
      const members = detail.provisioning ? (await clusters.getCluster(detail.name)).members.map((member) => toMemberResponse(detail.name, member)) : []
      const answer = { ...toRegistryResponse(detail), members, transitions: detail.transitions.map(toTransition) }
      if (request.query.live !== 'true') return answer
      try {
        return { ...answer, live: toLiveResponse(await registry.live(detail.name, requestTimeoutMs)) }
      } catch (error) {
        if (!(error instanceof SlipwayError)) throw error
        return { ...answer, live: null, live_error: { code: error.code, message: error.message } }
      }
    },
  )

  app.put(
    '/clusters/:name',
    {
      config: { access: operate('tenant', clusterOwner) },
      schema: {
        tags,
        summary: "Change a cluster's display name, labels, location, properties, server or (for one added by hand) CA and credentials",
        params: NameParams,
        body: Type.Unknown({ description: 'RegistrationUpdateDocument: fields left out keep their value.' }),
        response: { 200: RegistryResponse, ...adminErrors },
      },
    },
    async (request) => toRegistryResponse(await registry.update(request.params.name, request.body)),
  )

  app.delete(
    '/clusters/:name',
    {
      config: { access: operate('tenant', clusterOwner) },
      schema: {
        tags,
        summary: 'Remove a cluster added by hand, or destroy a provisioned one (its machines return to discovered; 409 CLUSTER_MEMBERS_INSTALLING during an install)',
        params: NameParams,
        response: { 204: Type.Null(), ...adminErrors },
      },
    },
    async (request, reply) => {
      await registry.remove(request.params.name)
      return reply.status(204).send(null)
    },
  )

  app.get(
    '/clusters/:name/health',
    {
      config: { access: read('tenant', clusterOwner) },
      schema: {
        tags,
        summary: 'The last health check and the history of status changes',
        params: NameParams,
        response: { 200: Type.Object({ health: Nullable(HealthResponse), transitions: Type.Array(TransitionResponse) }), ...adminErrors },
      },
    },
    async (request) => {
      const detail = await registry.get(request.params.name, 500)
      return { health: detail.health ? toHealthResponse(detail.health) : null, transitions: detail.transitions.map(toTransition) }
    },
  )

  app.get(
    '/clusters/:name/profile',
    { config: { access: read('tenant', clusterOwner) }, schema: { tags, summary: 'The cluster as a SIG-Multicluster ClusterProfile object', params: NameParams, response: { 200: Type.Unknown(), ...adminErrors } } },
    async (request) => toClusterProfile(await registry.get(request.params.name, 0)),
  )

  app.post(
    '/clusters/health-sweep',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Check every cluster now (and let provisioned ones join); returns the statuses',
        response: { 200: Type.Object({ checked: Type.Integer(), joined: Type.Array(Type.String()), duration_ms: Type.Integer(), statuses: Type.Record(Type.String(), Type.String()) }), ...adminErrors },
      },
    },
    async () => {
      const report = await healthSweep.runNow('api')
      return { checked: report.checked, joined: report.joined, duration_ms: Math.round(report.durationMs), statuses: report.statuses }
    },
  )
}

// The documents the POST and PUT bodies follow, for readers of this file.
export { ClusterDocument, RegistrationDocument, RegistrationUpdateDocument }
