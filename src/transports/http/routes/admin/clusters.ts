import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { CLUSTER_STATES, FlavorDocument, NAME_PATTERN, ROLES, type Flavor } from '../../../../core/clusters/cluster.ts'
import type { ClusterDetail, ClusterService, ScheduleReport } from '../../../../core/clusters/cluster-service.ts'
import { groupIdOf } from '../../../../core/clusters/schedule-plan.ts'
import { MACHINE_STATES } from '../../../../core/machines/machine-state.ts'
import { adminErrors } from '../../schemas/common.ts'
import { clusterOwner, operate, read } from '../../../../core/access/route-policy.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const Role = Type.Enum([...ROLES])

export const FlavorResponse = Type.Object({
  name: Type.String(),
  control_plane_count: Type.Integer(),
  nodes_min: Type.Integer(),
  nodes_max: Type.Integer(),
  selector: Type.Record(Type.String(), Type.String()),
  min_cpu_cores: Type.Integer(),
  min_memory_bytes: Type.Integer(),
  min_disk_bytes: Type.Integer(),
  kubernetes_version: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  api_server_port: Type.Integer(),
})
export const MemberResponse = Type.Object({
  machine_uuid: Type.String(),
  boot_mac: Type.String(),
  ip: Nullable(Type.String()),
  role: Role,
  ordinal: Type.Integer(),
  hostname: Type.String(),
  group: Type.String({ description: 'The per-machine group (selector {mac, os: "installed"}).' }),
  machine_state: Type.Enum([...MACHINE_STATES]),
})
const AssignmentResponse = Type.Object({
  cluster: Type.String(),
  machine_uuid: Type.String(),
  boot_mac: Type.String(),
  ip: Type.String(),
  role: Role,
  hostname: Type.String(),
  group: Type.String(),
  profile: Type.String(),
})
export const ScheduleResponse = Type.Object({
  assignments: Type.Array(AssignmentResponse, { description: 'What this pass assigned (empty if nothing changed).' }),
  clusters: Type.Array(Type.Object({ name: Type.String(), state: Type.Enum([...CLUSTER_STATES]), waiting: Type.Array(Type.String()) })),
})
const NameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN, maxLength: 63 }) })

export const toFlavorResponse = (flavor: Flavor) => ({
  name: flavor.name,
  control_plane_count: flavor.controlPlaneCount,
  nodes_min: flavor.nodesMin,
  nodes_max: flavor.nodesMax,
  selector: flavor.selector,
  min_cpu_cores: flavor.minCpuCores,
  min_memory_bytes: flavor.minMemoryBytes,
  min_disk_bytes: flavor.minDiskBytes,
  kubernetes_version: flavor.kubernetesVersion,
  labels: flavor.labels,
  api_server_port: flavor.apiServerPort,
})
export const toMemberResponse = (cluster: string, member: ClusterDetail['members'][number]) => ({
  machine_uuid: member.machineUuid,
  boot_mac: member.bootMac,
  ip: member.ip,
  role: member.role,
  ordinal: member.ordinal,
  hostname: member.hostname,
  group: groupIdOf(cluster, member.hostname),
  machine_state: member.machineState,
})
export const toScheduleResponse = (reports: ScheduleReport[]) => ({
  assignments: reports.flatMap((report) =>
    report.assignments.map((assignment) => ({
      cluster: report.cluster,
      machine_uuid: assignment.machineUuid,
      boot_mac: assignment.bootMac,
      ip: assignment.ip,
      role: assignment.role,
      hostname: assignment.hostname,
      group: groupIdOf(report.cluster, assignment.hostname),
      profile: assignment.profile,
    })),
  ),
  clusters: reports.map((report) => ({ name: report.cluster, state: report.state, waiting: report.waiting })),
})

const Pem = (description: string) => Type.String({ description })
const CertificatesResponse = Type.Object({
  kubernetes_ca: Pem('Kubernetes CA certificate (PEM): what kubelets and clients trust.'),
  etcd_ca: Pem('etcd CA certificate (PEM).'),
  front_proxy_ca: Pem('Front-proxy CA certificate (PEM), for the aggregation layer.'),
  admin: Pem("The engine's admin client certificate (PEM, O=system:masters); its key never leaves the engine."),
  service_account_public_key: Pem('Service-account token verification key (PEM).'),
  kubernetes_ca_cert_hash: Type.String({ description: 'For kubeadm join --discovery-token-ca-cert-hash.' }),
})

export const clusterRoutes: FastifyPluginAsyncTypebox<{ clusters: ClusterService; scheduler: { runNow(reason?: string): Promise<ScheduleReport[]> } }> = async (
  app,
  { clusters, scheduler },
) => {
  app.get('/flavors', { config: { access: read('tenant') }, schema: { tags: ['clusters'], summary: 'List flavors (cluster shapes)', response: { 200: Type.Array(FlavorResponse), ...adminErrors } } }, async () =>
    (await clusters.listFlavors()).map(toFlavorResponse),
  )

  app.post(
    '/flavors',
    { config: { access: operate() }, schema: { tags: ['clusters'], summary: 'Create a flavor (409 FLAVOR_EXISTS)', body: FlavorDocument, response: { 201: FlavorResponse, ...adminErrors } } },
    async (request, reply) => reply.status(201).send(toFlavorResponse(await clusters.createFlavor(request.body))),
  )

  app.get(
    '/clusters/:name/certificates',
    {
      config: { access: read('tenant', clusterOwner) },
      schema: {
        tags: ['clusters'],
        summary: "The cluster's public certificates (generated with the cluster; private keys are encrypted at rest and never returned)",
        params: NameParams,
        response: { 200: CertificatesResponse, ...adminErrors },
      },
    },
    async (request) => {
      const certificates = await clusters.certificates(request.params.name)
      return {
        kubernetes_ca: certificates.kubernetesCa,
        etcd_ca: certificates.etcdCa,
        front_proxy_ca: certificates.frontProxyCa,
        admin: certificates.admin,
        service_account_public_key: certificates.serviceAccountPublicKey,
        kubernetes_ca_cert_hash: certificates.kubernetesCaCertHash,
      }
    },
  )

  // Enjoliver's read routes: where every machine was placed, and what is left to place.
  const SchedulerEntry = Type.Object({
    cluster: Type.String(),
    role: Role,
    profile: Type.String(),
    hostname: Type.String(),
    uuid: Type.String(),
    mac: Type.String(),
    ip: Type.Union([Type.String(), Type.Null()]),
    state: Type.Enum([...MACHINE_STATES]),
  })
  const RoleParams = Type.Object({ role: Type.String({ maxLength: 64, description: 'control-plane, node, or Enjoliver\'s etcd-member-kubernetes-control-plane, kubernetes-node' }) })
  const schedulerTags = ['scheduler']
  app.get('/scheduler', { config: { access: read() }, schema: { tags: schedulerTags, summary: 'Every assignment', response: { 200: Type.Array(SchedulerEntry), ...adminErrors } } }, async () =>
    clusters.assignments(),
  )
  app.get(
    '/scheduler/available',
    {
      config: { access: read() },
      schema: {
        tags: schedulerTags,
        summary: 'Discovered machines in no cluster',
        response: { 200: Type.Array(Type.Object({ uuid: Type.String(), mac: Type.String(), ip: Type.Union([Type.String(), Type.Null()]) })), ...adminErrors },
      },
    },
    async () => (await clusters.availableMachines()).map((machine) => ({ uuid: machine.uuid, mac: machine.bootMac, ip: machine.interfaces.find((nic) => nic.isBoot)?.ipv4 ?? null })),
  )
  app.get(
    '/scheduler/ip-list/:role',
    { config: { access: read() }, schema: { tags: schedulerTags, summary: 'Boot IPs of the machines with a role', params: RoleParams, response: { 200: Type.Array(Type.String()), ...adminErrors } } },
    async (request) => (await clusters.assignments(request.params.role)).flatMap((entry) => (entry.ip ? [entry.ip] : [])),
  )
  app.get(
    '/scheduler/:role',
    { config: { access: read() }, schema: { tags: schedulerTags, summary: 'The machines with a role', params: RoleParams, response: { 200: Type.Array(SchedulerEntry), ...adminErrors } } },
    async (request) => clusters.assignments(request.params.role),
  )

  app.post(
    '/scheduler/run',
    { config: { access: operate() }, schema: { tags: ['clusters'], summary: 'Run one scheduling pass over every cluster; returns what it assigned', response: { 200: ScheduleResponse, ...adminErrors } } },
    async () => toScheduleResponse(await scheduler.runNow('api')),
  )
}
