import type { Machine } from '../machines/machine-service.ts'
import type { Cluster, ClusterMember, EtcdMembership, Flavor, Role } from './cluster.ts'

/** The matchbox profile each role boots once installed (profiles/profiles/*.json). */
export const PROFILE_OF_ROLE: Readonly<Record<Role, string>> = {
  'control-plane': 'etcd-member-kubernetes-control-plane',
  node: 'kubernetes-node',
}

const HOSTNAME_PART: Readonly<Record<Role, string>> = { 'control-plane': 'cp', node: 'node' }
export const hostnameOf = (cluster: string, role: Role, ordinal: number) => `${cluster}-${HOSTNAME_PART[role]}-${ordinal}`
/** The per-machine group id: one group per scheduled machine, like Enjoliver's. */
export const groupIdOf = (cluster: string, hostname: string) => `${cluster}-${hostname}`

/** A current member together with its boot IP: the control plane's IPs go into every member's metadata. */
export interface PlacedMember extends ClusterMember {
  ip: string
}

/** What the role templates need (ignition/kubernetes-*.json); written as the group's metadata. */
export interface RoleMetadata {
  cluster_name: string
  role: Role
  hostname: string
  ip: string
  /** etcd's --initial-cluster: `<hostname>=https://<ip>:2380,...` over the control plane. */
  etcd_initial_cluster: string
  /** `https://<ip>:<port>,...` over the control plane (port: the flavor's api_server_port). */
  kubernetes_apiserver_endpoints: string
  kubernetes_apiserver_port: number
  kubernetes_apiserver_count: number
  kubernetes_version: string
}

export interface Assignment extends PlacedMember {
  bootMac: string
  profile: string
  metadata: RoleMetadata
}

export interface SchedulePlan {
  assignments: Assignment[]
  /** Why nothing (or less than the flavor allows) was assigned; empty when the flavor is satisfied. */
  waiting: string[]
  /** The cluster's state once the plan is applied. */
  state: Cluster['state']
}

/** Why a machine does not qualify for a flavor, or undefined if it does. */
export function disqualification(machine: Machine, flavor: Flavor): string | undefined {
  for (const [key, value] of Object.entries(flavor.selector)) {
    if (machine.labels[key] !== value) return `label ${key}=${value} missing`
  }
  const cores = machine.facts.cpu?.cores ?? 0
  if (cores < flavor.minCpuCores) return `${cores} CPU cores < ${flavor.minCpuCores}`
  const memory = machine.facts.memory?.totalBytes ?? 0
  if (memory < flavor.minMemoryBytes) return `${memory} bytes of memory < ${flavor.minMemoryBytes}`
  const disk = Math.max(0, ...machine.disks.map((candidate) => candidate.sizeBytes))
  if (disk < flavor.minDiskBytes) return `largest disk ${disk} bytes < ${flavor.minDiskBytes}`
  if (!bootIpOf(machine)) return 'its boot interface reported no IPv4 address'
  return undefined
}

/** The address the machine booted from: never `interfaces[0]` (Enjoliver's mistake). */
export const bootIpOf = (machine: Machine): string | undefined => machine.interfaces.find((nic) => nic.isBoot)?.ipv4 ?? undefined

const byBootMac = (a: Machine, b: Machine) => (a.bootMac < b.bootMac ? -1 : a.bootMac > b.bootMac ? 1 : a.uuid < b.uuid ? -1 : 1)

/**
 * Enjoliver's scheduler for one cluster, pure. Available machines are `discovered`, in no cluster
 * (`taken` holds every machine of every cluster) and qualify for the flavor; they are taken in boot
 * MAC order so that the same inventory always gives the same plan. The control plane is all or
 * nothing: if it is incomplete and too few machines are available, nothing is assigned, so that a
 * half-built etcd never waits for members that may never come. Once it is complete, the remaining
 * available machines become nodes, up to the flavor's maximum.
 */
export function planSchedule(cluster: Cluster, flavor: Flavor, members: readonly PlacedMember[], machines: readonly Machine[], taken: ReadonlySet<string>): SchedulePlan {
  const memberUuids = new Set(members.map((member) => member.machineUuid))
  const available = machines
    .filter((machine) => machine.state === 'discovered' && !taken.has(machine.uuid) && !memberUuids.has(machine.uuid))
    .filter((machine) => disqualification(machine, flavor) === undefined)
    .sort(byBootMac)
  const bootMacOf = new Map(available.map((machine) => [machine.uuid, machine.bootMac]))
  const controlPlane = members.filter((member) => member.role === 'control-plane')
  const nodes = members.filter((member) => member.role === 'node')
  const planned: PlacedMember[] = []
  const waiting: string[] = []

  const missingControlPlane = flavor.controlPlaneCount - controlPlane.length
  if (missingControlPlane > 0) {
    if (available.length < missingControlPlane) {
      waiting.push(`control plane needs ${missingControlPlane} more qualifying machine(s), ${available.length} available: nothing assigned`)
      return { assignments: [], waiting, state: 'pending' }
    }
    // A control plane that has members has a running etcd: a newcomer replaces one that left and
    // joins it once the engine has added it; a control plane placed whole forms a new one.
    const etcdMembership: EtcdMembership = controlPlane.length > 0 ? 'to_add' : 'initial'
    const ordinals = freeOrdinals(controlPlane, missingControlPlane)
    for (const ordinal of ordinals) planned.push({ ...place(cluster.name, 'control-plane', ordinal, available.shift()!), etcdMembership })
  }
  const missingNodes = flavor.nodesMax - nodes.length
  if (missingNodes > 0) {
    const count = Math.min(missingNodes, available.length)
    for (const ordinal of freeOrdinals(nodes, count)) planned.push(place(cluster.name, 'node', ordinal, available.shift()!))
  }
  const nodeCount = nodes.length + planned.filter((member) => member.role === 'node').length
  if (nodeCount < flavor.nodesMin) waiting.push(`${nodeCount} node(s) of at least ${flavor.nodesMin}`)

  const fullControlPlane = [...controlPlane, ...planned.filter((member) => member.role === 'control-plane')].sort((a, b) => a.ordinal - b.ordinal)
  const shared = {
    etcd_initial_cluster: etcdInitialCluster(fullControlPlane),
    kubernetes_apiserver_endpoints: fullControlPlane.map((member) => `https://${member.ip}:${flavor.apiServerPort}`).join(','),
    kubernetes_apiserver_port: flavor.apiServerPort,
    kubernetes_apiserver_count: fullControlPlane.length,
    kubernetes_version: flavor.kubernetesVersion,
  }
  const assignments = planned.map((member): Assignment => ({
    ...member,
    // The members that form etcd together keep the list they formed it with.
    ...(member.etcdMembership === 'initial' ? { etcdInitialCluster: shared.etcd_initial_cluster } : {}),
    bootMac: bootMacOf.get(member.machineUuid)!,
    profile: PROFILE_OF_ROLE[member.role],
    metadata: { cluster_name: cluster.name, role: member.role, hostname: member.hostname, ip: member.ip, ...shared },
  }))
  return { assignments, waiting, state: waiting.length === 0 ? 'scheduled' : 'pending' }
}

/** etcd's --initial-cluster over a control plane: `<hostname>=https://<ip>:2380`, by ordinal. */
export function etcdInitialCluster(controlPlane: readonly PlacedMember[]): string {
  return [...controlPlane]
    .filter((member) => member.role === 'control-plane')
    .sort((a, b) => a.ordinal - b.ordinal)
    .map((member) => `${member.hostname}=https://${member.ip}:${ETCD_PEER_PORT}`)
    .join(',')
}

export const ETCD_PEER_PORT = 2380
export const ETCD_CLIENT_PORT = 2379

function place(cluster: string, role: Role, ordinal: number, machine: Machine): PlacedMember {
  return { cluster, machineUuid: machine.uuid, role, ordinal, hostname: hostnameOf(cluster, role, ordinal), ip: bootIpOf(machine)! }
}

/** The `count` lowest ordinals (from 1) no member of the role holds. */
function freeOrdinals(members: readonly ClusterMember[], count: number): number[] {
  const used = new Set(members.map((member) => member.ordinal))
  const free: number[] = []
  for (let ordinal = 1; free.length < count; ordinal++) if (!used.has(ordinal)) free.push(ordinal)
  return free
}
