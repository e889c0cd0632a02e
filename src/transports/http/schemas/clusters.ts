import Type from 'typebox'
import { BOOTSTRAP_PHASES, type BootstrapProgress } from '../../../core/clusters/bootstrap-progress.ts'
import { CLUSTER_STATES, MEMBER_OS, NAME_PATTERN, ROLES, type Flavor } from '../../../core/clusters/cluster.ts'
import type { ClusterCertificates } from '../../../core/clusters/cluster-pki.ts'
import type { ClusterDetail, ScheduleReport } from '../../../core/clusters/cluster-service.ts'
import type { CertificateReport } from '../../../core/clusters/member-certificate-service.ts'
import { groupIdOf } from '../../../core/clusters/schedule-plan.ts'
import { MACHINE_STATES } from '../../../core/machines/machine-state.ts'
import { Nullable } from '../../../lib/nullable.ts'

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
  service_subnet: Type.String(),
  pod_subnet: Type.String(),
  dns_domain: Type.String(),
  control_plane_vip: Nullable(Type.String({ description: 'The address kube-vip holds for the control plane; null: the endpoint answers the members themselves.' })),
  static_network: Nullable(Type.Boolean({ description: 'Members keep their boot address statically; null: only in proxy DHCP mode.' })),
  os: Type.Enum([...MEMBER_OS]),
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
export const ClusterNameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN, maxLength: 63 }) })

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
  service_subnet: flavor.networking.serviceSubnet,
  pod_subnet: flavor.networking.podSubnet,
  dns_domain: flavor.networking.dnsDomain,
  control_plane_vip: flavor.controlPlaneVip,
  static_network: flavor.staticNetwork,
  os: flavor.os,
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
export const CertificatesResponse = Type.Object({
  kubernetes_ca: Pem('Kubernetes CA certificate (PEM): what kubelets and clients trust.'),
  etcd_ca: Pem('etcd CA certificate (PEM).'),
  front_proxy_ca: Pem('Front-proxy CA certificate (PEM), for the aggregation layer.'),
  admin: Pem("The engine's admin client certificate (PEM, O=system:masters); its key never leaves the engine."),
  service_account_public_key: Pem('Service-account token verification key (PEM).'),
  kubernetes_ca_cert_hash: Type.String({ description: 'For kubeadm join --discovery-token-ca-cert-hash.' }),
})
export const BootstrapResponse = Type.Object({
  uuid: Type.String(),
  cluster: Type.String(),
  hostname: Type.String(),
  phase: Type.Enum([...BOOTSTRAP_PHASES], { description: 'waiting_for_endpoint, running (kubeadm init or join), done, or failed (the machine retries by itself)' }),
  command: Type.Enum(['init', 'join', 'unknown']),
  message: Type.String(),
  log: Nullable(Type.String({ description: "The last lines of kubeadm's output (with done and failed)." })),
  attempts: Type.Integer({ description: 'kubeadm runs started so far.' }),
  updated_at: Type.String(),
})

export const toBootstrapResponse = (progress: BootstrapProgress) => ({
  uuid: progress.uuid,
  cluster: progress.cluster,
  hostname: progress.hostname,
  phase: progress.phase,
  command: progress.command,
  message: progress.message,
  log: progress.log,
  attempts: progress.attempts,
  updated_at: progress.updatedAt,
})

export const CertificateRenewalResponse = Type.Object({
  renewed: Type.Array(Type.Object({ uuid: Type.String(), hostname: Type.String() }), { description: 'Members whose certificates and kubeconfigs were issued again, with new keys.' }),
  admin_renewed: Type.Boolean({ description: "Whether the engine's own admin certificate for the cluster was renewed." }),
})

export const toCertificateRenewalResponse = (report: CertificateReport) => ({
  renewed: report.issued.map((entry) => ({ uuid: entry.machineUuid, hostname: entry.hostname })),
  admin_renewed: report.adminRenewed.length > 0,
})

export const toCertificatesResponse = (certificates: ClusterCertificates) => ({
  kubernetes_ca: certificates.kubernetesCa,
  etcd_ca: certificates.etcdCa,
  front_proxy_ca: certificates.frontProxyCa,
  admin: certificates.admin,
  service_account_public_key: certificates.serviceAccountPublicKey,
  kubernetes_ca_cert_hash: certificates.kubernetesCaCertHash,
})

// Enjoliver's scheduler views: where every machine was placed, and what is left to place.

export const SchedulerEntry = Type.Object({
  cluster: Type.String(),
  role: Role,
  profile: Type.String(),
  hostname: Type.String(),
  uuid: Type.String(),
  mac: Type.String(),
  ip: Nullable(Type.String()),
  state: Type.Enum([...MACHINE_STATES]),
})
export const AvailableMachine = Type.Object({ uuid: Type.String(), mac: Type.String(), ip: Nullable(Type.String()) })
export const RoleParams = Type.Object({ role: Type.String({ maxLength: 64, description: 'control-plane, node, or Enjoliver\'s etcd-member-kubernetes-control-plane, kubernetes-node' }) })
