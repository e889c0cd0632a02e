import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ClusterService } from '../../../../core/clusters/cluster-service.ts'
import { ClusterDocument } from '../../../../core/clusters/cluster.ts'
import { forbidden, SlipwayError } from '../../../../core/errors.ts'
import { RegistrationDocument, RegistrationUpdateDocument } from '../../../../core/registry/registered-cluster.ts'
import type { ClusterRegistry, SweepReport } from '../../../../core/registry/registry-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { toMemberResponse } from '../../schemas/clusters.ts'
import {
  HealthHistoryResponse,
  RegistryDetailQuery,
  RegistryDetailResponse,
  RegistryListQuery,
  RegistryNameParams,
  RegistryResponse,
  SweepResponse,
  toClusterProfile,
  toHealthResponse,
  toLiveResponse,
  toRegistryResponse,
  toSweepResponse,
  toTransition,
} from '../../schemas/registry.ts'
import { tenancyOf } from '../../auth.ts'
import { clusterOwner, operate, read } from '../../../../core/access/route-policy.ts'

export interface RegistryRouteOptions {
  registry: ClusterRegistry
  clusters: ClusterService
  healthSweep: { runNow(reason?: string): Promise<SweepReport> }
  /** Timeout of each API server request made for `?live=true`. */
  requestTimeoutMs: number
  /** Deprovisions machines a destroyed cluster released (`?wipe=true`): MachineFlows.retireAll. */
  retire: (uuids: readonly string[], requestedBy: string) => Promise<unknown>
}

/**
 * The cluster registry's API: every cluster, provisioned or added by hand. Registered under /api/v1
 * and, for optikon's users, at the root (`/clusters`, behind the same token). A POST with `flavor`
 * provisions a cluster from machines; without it, it registers an existing cluster.
 */
export const registryRoutes: FastifyPluginAsyncTypebox<RegistryRouteOptions> = async (app, { registry, clusters, healthSweep, requestTimeoutMs, retire }) => {
  const tags = ['clusters']
  app.get(
    '/clusters',
    { config: { access: read('tenant') }, schema: { tags, summary: 'Every cluster, or those whose labels match ?labels= (Kubernetes selector syntax)', querystring: RegistryListQuery, response: { 200: Type.Array(RegistryResponse), ...adminErrors } } },
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
        params: RegistryNameParams,
        querystring: RegistryDetailQuery,
        response: { 200: RegistryDetailResponse, ...adminErrors },
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
        params: RegistryNameParams,
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
        summary:
          'Remove a cluster added by hand, or destroy a provisioned one (its machines return to discovered; 409 CLUSTER_MEMBERS_INSTALLING during an install). wipe=true (administrators): its machines are also deprovisioned, out of the pool until returned, wiped on their next network boot (sent there at once through their BMCs)',
        params: RegistryNameParams,
        querystring: Type.Object({ wipe: Type.Optional(Type.Enum(['true', 'false'], { description: "true: deprovision the cluster's machines too (administrators)." })) }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...adminErrors },
      },
    },
    async (request, reply) => {
      // Wiping disks is an administrator's decision, as a deprovision is.
      if (request.query.wipe === 'true' && request.principal?.role !== 'admin') throw forbidden('WIPE_NEEDS_ADMIN', 'wipe=true deprovisions the machines (their disks are wiped): an administrator token is needed')
      const { released } = await registry.remove(request.params.name)
      if (request.query.wipe === 'true') await retire(released, `api:${request.principal?.name ?? 'unknown'}`)
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
        params: RegistryNameParams,
        response: { 200: HealthHistoryResponse, ...adminErrors },
      },
    },
    async (request) => {
      const detail = await registry.get(request.params.name, 500)
      return { health: detail.health ? toHealthResponse(detail.health) : null, transitions: detail.transitions.map(toTransition) }
    },
  )

  app.get(
    '/clusters/:name/profile',
    { config: { access: read('tenant', clusterOwner) }, schema: { tags, summary: 'The cluster as a SIG-Multicluster ClusterProfile object', params: RegistryNameParams, response: { 200: Type.Unknown(), ...adminErrors } } },
    async (request) => toClusterProfile(await registry.get(request.params.name, 0)),
  )

  app.post(
    '/clusters/health-sweep',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: 'Check every cluster now (and let provisioned ones join); returns the statuses',
        response: { 200: SweepResponse, ...adminErrors },
      },
    },
    async () => toSweepResponse(await healthSweep.runNow('api')),
  )
}

// The documents the POST and PUT bodies follow, for readers of this file.
export { ClusterDocument, RegistrationDocument, RegistrationUpdateDocument }
