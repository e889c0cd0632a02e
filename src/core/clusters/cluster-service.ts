import type { ContentRepository } from '../content/content-service.ts'
import { conflict, invalid, misconfigured, notFound } from '../errors.ts'
import type { Machine, MachineRepository } from '../machines/machine-service.ts'
import { transition, type MachineState } from '../machines/machine-state.ts'
import type { ClusterConnection } from '../registry/registered-cluster.ts'
import type { BootstrapRecord } from './kubeadm-config.ts'
import { adminKubeconfig, type ClusterCertificates, type ClusterPki, type ClusterPkiIssuer } from './cluster-pki.ts'
import { controlPlaneEndpointHost, type MemberCertificates } from './member-certificates.ts'
import { MemberCertificateService } from './member-certificate-service.ts'
import { parseCluster, parseFlavor, ROLES, type Cluster, type ClusterMember, type EtcdMembership, type Flavor, type Role } from './cluster.ts'
import { bootIpOf, groupIdOf, planSchedule, PROFILE_OF_ROLE, type Assignment, type PlacedMember } from './schedule-plan.ts'

/**
 * The store port for flavors, clusters and memberships; storage implements it. `machines` and
 * `content` are the same store seen through their own ports, so that one transaction covers them all.
 */
export interface ClusterRepository {
  readonly machines: MachineRepository
  readonly content: ContentRepository
  listFlavors(): Promise<Flavor[]>
  findFlavor(name: string): Promise<Flavor | undefined>
  /** Refuses (409 FLAVOR_EXISTS) an existing name. */
  insertFlavor(flavor: Flavor, now: Date): Promise<void>
  listClusters(): Promise<Cluster[]>
  findCluster(name: string): Promise<Cluster | undefined>
  /** Whether any cluster, provisioned or registered by hand, has this name. */
  clusterNameTaken(name: string): Promise<boolean>
  /** Writes the cluster and its registry entry; refuses (409 CLUSTER_EXISTS) an existing name. */
  insertCluster(cluster: Cluster): Promise<void>
  setClusterState(name: string, state: Cluster['state']): Promise<void>
  deleteCluster(name: string): Promise<void>
  /** Every membership, of every cluster when `cluster` is left out. */
  listMembers(cluster?: string): Promise<ClusterMember[]>
  /** A cluster's members with their boot IPs ('' when unknown), in one read. */
  listPlacedMembers(cluster: string): Promise<PlacedMember[]>
  /** What each member's kubeadm bootstrap reported last (the command it ran, its phase). */
  listBootstrapRecords(): Promise<(BootstrapRecord & { machineUuid: string })[]>
  /** Whether the machine is (still) a member of the cluster. */
  isMember(cluster: string, machineUuid: string): Promise<boolean>
  /** Refuses (409 MACHINE_ALREADY_IN_CLUSTER) a machine that is already a member anywhere. */
  insertMember(member: ClusterMember, now: Date): Promise<void>
  deleteMembers(cluster: string): Promise<void>
  deleteMember(machineUuid: string): Promise<void>
  setEtcdMembership(machineUuid: string, membership: EtcdMembership): Promise<void>
  /**
   * Reserves a member's boot address for its boot MAC (full DHCP mode), marked as the cluster's.
   * Leaves an existing reservation of the MAC as it is; returns false when another MAC holds the address.
   */
  reserveMemberAddress(cluster: string, mac: string, ip: string, hostname: string, now: Date): Promise<boolean>
  /** Removes the reservations the cluster's scheduling made (an operator's stay). */
  releaseMemberAddresses(cluster: string): Promise<void>
  /** Releases the reservation one member's boot MAC holds in its cluster (none: nothing). */
  releaseMemberAddress(cluster: string, mac: string): Promise<void>
  /** Stores a cluster's PKI; private keys are encrypted at rest by the store. */
  insertClusterPki(cluster: string, pki: ClusterPki, now: Date): Promise<void>
  findClusterPki(cluster: string): Promise<ClusterPki | undefined>
  /** Replaces a cluster's PKI (a renewed admin certificate); the CAs never change. */
  updateClusterPki(cluster: string, pki: ClusterPki): Promise<void>
  /** Stores (or replaces) a member's issued certificates, keys sealed and bound to the machine. */
  saveMemberCertificates(cluster: string, machineUuid: string, issued: MemberCertificates): Promise<void>
  /** When each member's set was issued and expires, of one cluster or all, without opening keys. */
  listMemberCertificateStamps(cluster?: string): Promise<MemberCertificateStamp[]>
  findMemberCertificates(machineUuid: string): Promise<MemberCertificates | undefined>
  /** The public certificates only, without opening the sealed keys. */
  findCertificates(cluster: string): Promise<ClusterCertificates | undefined>
  /** Runs `work` atomically: all of its writes land or none do. */
  transaction<T>(work: (repository: ClusterRepository) => Promise<T>): Promise<T>
}

export interface MemberCertificateStamp {
  machineUuid: string
  issuedAt: string
  notAfter: string
}

/** One machine's place, as Enjoliver's `/scheduler` routes listed it. */
export interface SchedulerEntry {
  cluster: string
  role: Role
  /** The matchbox profile the role boots once installed (Enjoliver's role name). */
  profile: string
  hostname: string
  uuid: string
  mac: string
  ip: string | null
  state: MachineState
}

export interface ClusterDetail extends Cluster {
  members: (ClusterMember & { bootMac: string; ip: string | null; machineState: Machine['state'] })[]
}

export interface ScheduleReport {
  cluster: string
  state: Cluster['state']
  assignments: Assignment[]
  waiting: string[]
}

export interface ClusterServiceHooks {
  /** Told after members' certificates (or a cluster's admin certificate) were issued or renewed. */
  certificatesChanged?: (uuids: string[]) => Promise<void> | void
  /** Told after a commit that changed machines (e.g. MachineDirectory.refresh). */
  machinesChanged?: (uuids: string[]) => Promise<void> | void
  /** Told after a commit that changed groups (e.g. CatalogDirectory.refresh), so boots see them at once. */
  contentChanged?: () => Promise<void> | void
}

export interface ClusterServiceSettings {
  /** The zone the engine's DNS answers: each cluster's control-plane endpoint is `api.<cluster>.<zone>`. */
  zone: string
  /**
   * Full DHCP mode: each scheduled machine's boot address is reserved for it, so that the addresses
   * etcd and the API servers advertise never change under a running cluster.
   */
  reserveAddresses?: boolean
}


export const scheduledReason = (cluster: string, role: string) => `scheduled into ${cluster} as ${role}`

/**
 * Flavors, clusters and the scheduler. Each cluster is scheduled in its own transaction that reads,
 * plans and writes (memberships, machine states and events, per-machine groups) together; the store's
 * one-machine-one-cluster constraint makes a concurrent pass fail rather than double-assign.
 */
export class ClusterService {
  constructor(
    private readonly repository: ClusterRepository,
    private readonly pkiIssuer: ClusterPkiIssuer,
    private readonly clock: () => Date = () => new Date(),
    private readonly hooks: ClusterServiceHooks = {},
    private readonly settings: ClusterServiceSettings = { zone: 'apps.slipway.internal' },
  ) {
    this.ca = new MemberCertificateService(repository, pkiIssuer, settings.zone, clock, hooks.certificatesChanged)
  }

  /** The engine as each cluster's CA: its members' certificates, issued after each pass and renewed. */
  readonly ca: MemberCertificateService

  listFlavors(): Promise<Flavor[]> {
    return this.repository.listFlavors()
  }

  async createFlavor(input: unknown, now: Date = this.clock()): Promise<Flavor> {
    const flavor = parseFlavor(input)
    await this.repository.transaction(async (repository) => {
      if (await repository.findFlavor(flavor.name)) throw conflict('FLAVOR_EXISTS', `flavor "${flavor.name}" already exists`)
      await repository.insertFlavor(flavor, now)
    })
    return flavor
  }

  listClusters(): Promise<Cluster[]> {
    return this.repository.listClusters()
  }

  async getCluster(name: string): Promise<ClusterDetail> {
    return this.repository.transaction(async (repository) => {
      const cluster = await repository.findCluster(name)
      if (!cluster) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
      const members = []
      for (const member of await repository.listMembers(name)) {
        const machine = (await repository.machines.findMachine(member.machineUuid))!
        members.push({ ...member, bootMac: machine.bootMac, ip: bootIpOf(machine) ?? null, machineState: machine.state })
      }
      return { ...cluster, members }
    })
  }

  /** Creates the cluster together with its PKI (CAs, service-account key, admin certificate, bootstrap token). */
  async createCluster(input: unknown, now: Date = this.clock()): Promise<Cluster> {
    const parsed = parseCluster(input, now)
    let cluster = parsed
    const checkNew = async (repository: ClusterRepository) => {
      const flavor = await repository.findFlavor(parsed.flavor)
      if (!flavor) throw notFound('FLAVOR_NOT_FOUND', `flavor "${parsed.flavor}" does not exist; create it first (POST /api/v1/flavors)`)
      if (await repository.clusterNameTaken(parsed.name)) throw conflict('CLUSTER_EXISTS', `cluster "${parsed.name}" already exists`)
      // The flavor's labels, then the cluster's own: what release selectors will match.
      cluster = { ...parsed, labels: { ...flavor.labels, ...parsed.labels } }
    }
    // Checked before the key generation so that bad input costs nothing, and again inside the
    // transaction that writes, against a concurrent create of the same name.
    await checkNew(this.repository)
    const pki = await this.pkiIssuer.issue(cluster.name, now)
    await this.repository.transaction(async (repository) => {
      await checkNew(repository)
      await repository.insertCluster(cluster)
      await repository.insertClusterPki(cluster.name, pki, now)
    })
    return cluster
  }


  /** The cluster's public certificates (never a key). */
  async certificates(name: string): Promise<ClusterCertificates> {
    const certificates = await this.repository.findCertificates(name)
    if (!certificates) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
    return certificates
  }

  /**
   * The admin kubeconfig for the engine's own use (drains), pointing at `server` when given (a load
   * balancer), else the cluster's control-plane endpoint `https://api.<cluster>.<zone>:<port>` (which
   * the engine's clients resolve from its own answers). 409 CLUSTER_NOT_SCHEDULED while the cluster
   * has no control plane yet.
   */
  async adminKubeconfig(name: string, server?: string): Promise<string> {
    return this.repository.transaction(async (repository) => {
      const pki = await repository.findClusterPki(name)
      if (!pki) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
      return adminKubeconfig(name, pki, server ?? (await this.endpointServer(repository, name)))
    })
  }

  /**
   * Where the registry reaches a provisioned cluster, once its whole control plane is installed: its
   * control-plane endpoint (never one member's address, so that a member down for a rolling update
   * or replaced does not cut the engine off), with the admin certificate and CA from the cluster's PKI.
   */
  async joinTarget(name: string): Promise<{ ready: true; connection: ClusterConnection } | { ready: false; message: string }> {
    return this.repository.transaction(async (repository) => {
      const cluster = await repository.findCluster(name)
      const pki = await repository.findClusterPki(name)
      if (!cluster || !pki) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
      const flavor = (await repository.findFlavor(cluster.flavor))!
      const controlPlane = (await repository.listMembers(name)).filter((member) => member.role === 'control-plane')
      if (controlPlane.length < flavor.controlPlaneCount) return { ready: false, message: `${controlPlane.length} of ${flavor.controlPlaneCount} control-plane members scheduled` }
      const waiting: string[] = []
      for (const member of controlPlane) {
        const machine = await repository.machines.findMachine(member.machineUuid)
        if (machine?.state !== 'installed') waiting.push(`${member.hostname} is ${machine?.state ?? 'gone'}`)
      }
      if (waiting.length) return { ready: false, message: `control plane not installed yet (${waiting.join(', ')})` }
      const server = await this.endpointServer(repository, name)
      return {
        ready: true,
        connection: { name, server, caBundle: pki.kubernetesCa.certificatePem, credential: { type: 'client_certificate', certificatePem: pki.admin.certificatePem, keyPem: pki.admin.privateKeyPem } },
      }
    })
  }

  private async endpointServer(repository: ClusterRepository, name: string): Promise<string> {
    const cluster = await repository.findCluster(name)
    const flavor = cluster && (await repository.findFlavor(cluster.flavor))
    const scheduled = (await repository.listMembers(name)).some((member) => member.role === 'control-plane')
    if (!scheduled || !flavor) throw conflict('CLUSTER_NOT_SCHEDULED', `cluster "${name}" has no control plane yet; run the scheduler once enough machines are discovered`)
    return `https://${controlPlaneEndpointHost(name, this.settings.zone)}:${flavor.apiServerPort}`
  }

  /**
   * Deletes the cluster, its per-machine groups and memberships, and sends its machines back to the
   * discovery pool (`discovered`, through the state machine). A machine in the middle of a disk
   * install cannot be sent back, so the whole destroy is refused (409) and nothing changes.
   */
  async destroyCluster(name: string, now: Date = this.clock()): Promise<{ released: string[] }> {
    const released = await this.repository.transaction(async (repository) => {
      if (!(await repository.findCluster(name))) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
      const members = await repository.listMembers(name)
      const machines = await Promise.all(members.map(async (member) => (await repository.machines.findMachine(member.machineUuid))!))
      const installing = machines.filter((machine) => machine.state === 'installing').map((machine) => machine.uuid)
      if (installing.length) {
        throw conflict('CLUSTER_MEMBERS_INSTALLING', `cluster "${name}" has machine(s) installing (${installing.join(', ')}); destroy it once they report`, { machines: installing })
      }
      for (const member of members) await repository.content.deleteGroup(groupIdOf(name, member.hostname))
      await repository.deleteMembers(name)
      await repository.releaseMemberAddresses(name)
      for (const machine of machines) {
        if (machine.state === 'discovered') continue
        const moved = transition(machine, 'discovered', `cluster ${name} destroyed`, now)
        await repository.machines.recordTransition(moved.machine, moved.event)
      }
      await repository.deleteCluster(name) // its PKI goes with it (ON DELETE CASCADE)
      return machines.map((machine) => machine.uuid)
    })
    await this.hooks.machinesChanged?.(released)
    await this.hooks.contentChanged?.()
    return { released }
  }

  /**
   * Takes one machine out of its cluster: its membership, its per-machine group and its DHCP
   * reservation go, and the machine is `discovered` again (the scheduler fills the place it leaves, with
   * the same ordinal and hostname). A control-plane machine's etcd member must be gone first
   * (EtcdMembers.removeMachine checks the quorum and removes it). A machine installing is refused (409).
   */
  async releaseMember(name: string, machineUuid: string, reason: string, now: Date = this.clock()): Promise<ClusterMember> {
    const member = await this.repository.transaction(async (repository) => {
      if (!(await repository.findCluster(name))) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
      const member = (await repository.listMembers(name)).find((candidate) => candidate.machineUuid === machineUuid)
      if (!member) throw notFound('CLUSTER_MEMBER_NOT_FOUND', `machine ${machineUuid} is not a member of cluster "${name}"`)
      const machine = (await repository.machines.findMachine(machineUuid))!
      if (machine.state === 'installing') throw conflict('MEMBER_INSTALLING', `${member.hostname} is installing; remove it once it has reported`, { uuid: machineUuid })
      await repository.content.deleteGroup(groupIdOf(name, member.hostname))
      await repository.deleteMember(machineUuid)
      await repository.releaseMemberAddress(name, machine.bootMac)
      if (machine.state !== 'discovered') {
        const moved = transition(machine, 'discovered', reason, now)
        await repository.machines.recordTransition(moved.machine, moved.event)
      }
      if ((await repository.findCluster(name))!.state === 'scheduled') await repository.setClusterState(name, 'pending')
      return member
    })
    await this.hooks.machinesChanged?.([machineUuid])
    await this.hooks.contentChanged?.()
    return member
  }

  /** Records that a control-plane member was added to (or re-added to) its cluster's running etcd. */
  async setEtcdMembership(machineUuid: string, membership: EtcdMembership): Promise<void> {
    await this.repository.setEtcdMembership(machineUuid, membership)
    // Renders read memberships from the cluster directory, which this reloads.
    await this.hooks.contentChanged?.()
  }

  /**
   * Enjoliver's scheduler view: every assignment, or those of one role. `role` may be Slipway's name
   * (`control-plane`, `node`) or the profile Enjoliver used (`etcd-member-kubernetes-control-plane`,
   * `kubernetes-node`).
   */
  async assignments(role?: string): Promise<SchedulerEntry[]> {
    const wanted = role === undefined ? undefined : roleNamed(role)
    return this.repository.transaction(async (repository) => {
      const members = (await repository.listMembers()).filter((member) => wanted === undefined || member.role === wanted)
      const entries: SchedulerEntry[] = []
      for (const member of members) {
        const machine = await repository.machines.findMachine(member.machineUuid)
        if (!machine) continue
        entries.push({
          cluster: member.cluster,
          role: member.role,
          profile: PROFILE_OF_ROLE[member.role],
          hostname: member.hostname,
          uuid: machine.uuid,
          mac: machine.bootMac,
          ip: bootIpOf(machine) ?? null,
          state: machine.state,
        })
      }
      return entries.sort((a, b) => (a.cluster + a.hostname < b.cluster + b.hostname ? -1 : 1))
    })
  }

  /** Machines the scheduler could still place: discovered and in no cluster (Enjoliver's `/scheduler/available`). */
  async availableMachines(): Promise<Machine[]> {
    return this.repository.transaction(async (repository) => {
      const taken = new Set((await repository.listMembers()).map((member) => member.machineUuid))
      return (await repository.machines.listMachines({ state: 'discovered', inService: true })).filter((machine) => !taken.has(machine.uuid))
    })
  }

  /**
   * One scheduling pass over every cluster, oldest first; reports what each cluster got. The new
   * members' certificates are issued after the pass commits, outside its transaction (a leaf takes
   * milliseconds of signing, which the whole inventory's write lock should not wait for); until then
   * a member's installed config answers 503 CERTIFICATES_PENDING, which Ignition retries.
   */
  async schedule(now: Date = this.clock()): Promise<ScheduleReport[]> {
    const reports = await this.repository.transaction((repository) => this.scheduleAll(repository, now))
    const changed = reports.flatMap((report) => report.assignments.map((assignment) => assignment.machineUuid))
    if (changed.length) {
      await this.hooks.machinesChanged?.(changed)
      await this.hooks.contentChanged?.()
      await this.ca.issue(now, new Set(reports.filter((report) => report.assignments.length).map((report) => report.cluster)))
    }
    return reports
  }


  /**
   * One transaction for the whole pass: the inventory is read once, each cluster is planned against
   * what the clusters before it took, and every write lands together (or none does, e.g. when a role
   * profile is missing). Clusters that are already complete are settled without reading machines.
   */
  private async scheduleAll(repository: ClusterRepository, now: Date): Promise<ScheduleReport[]> {
    const flavors = new Map((await repository.listFlavors()).map((flavor) => [flavor.name, flavor]))
    const allMembers = await repository.listMembers()
    const taken = new Set(allMembers.map((member) => member.machineUuid))
    const membersOf = new Map<string, ClusterMember[]>()
    for (const member of allMembers) {
      const list = membersOf.get(member.cluster)
      if (list) list.push(member)
      else membersOf.set(member.cluster, [member])
    }
    let discovered: Machine[] | undefined
    let discoveredByUuid = new Map<string, Machine>()
    const reports: ScheduleReport[] = []
    for (const cluster of await repository.listClusters()) {
      const flavor = flavors.get(cluster.flavor)!
      const current = membersOf.get(cluster.name) ?? []
      if (isComplete(current, flavor)) {
        if (cluster.state !== 'scheduled') await repository.setClusterState(cluster.name, 'scheduled')
        reports.push({ cluster: cluster.name, state: 'scheduled', assignments: [], waiting: [] })
        continue
      }
      if (!discovered) {
        discovered = await repository.machines.listMachines({ state: 'discovered', inService: true })
        discoveredByUuid = new Map(discovered.map((machine) => [machine.uuid, machine]))
      }
      const plan = planSchedule(cluster, flavor, await repository.listPlacedMembers(cluster.name), discovered, taken)
      for (const assignment of plan.assignments) {
        if (!(await repository.content.findProfile(assignment.profile))) {
          throw misconfigured('ROLE_PROFILE_MISSING', `profile "${assignment.profile}" (role ${assignment.role}) does not exist; add it to the profiles folder or through PUT /api/v1/profiles/${assignment.profile}`)
        }
        const { machineUuid, role, ordinal, hostname, etcdMembership, etcdInitialCluster } = assignment
        await repository.insertMember({ cluster: cluster.name, machineUuid, role, ordinal, hostname, ...(etcdMembership ? { etcdMembership } : {}), ...(etcdInitialCluster ? { etcdInitialCluster } : {}) }, now)
        if (this.settings.reserveAddresses) await repository.reserveMemberAddress(cluster.name, assignment.bootMac, assignment.ip, hostname, now)
        taken.add(machineUuid)
        const machine = discoveredByUuid.get(machineUuid)!
        const moved = transition(machine, 'scheduled', scheduledReason(cluster.name, role), now)
        await repository.machines.recordTransition(moved.machine, moved.event)
        await repository.content.saveGroup(
          {
            id: groupIdOf(cluster.name, hostname),
            name: `${hostname} (${role} of cluster ${cluster.name})`,
            profile: assignment.profile,
            selector: { mac: assignment.bootMac, os: 'installed' },
            metadata: { ...assignment.metadata, ssh_authorized_keys: [] },
          },
          'api',
        )
      }
      if (plan.assignments.length) discovered = discovered.filter((machine) => !taken.has(machine.uuid))
      if (plan.state !== cluster.state) await repository.setClusterState(cluster.name, plan.state)
      reports.push({ cluster: cluster.name, state: plan.state, assignments: plan.assignments, waiting: plan.waiting })
      // Boots are answered from memory: let them through between clusters of a long pass.
      await new Promise((resolve) => setImmediate(resolve))
    }
    return reports
  }
}

/** Whether a cluster has its whole control plane and its maximum of nodes: nothing to plan. */
function isComplete(members: readonly ClusterMember[], flavor: Flavor): boolean {
  let controlPlane = 0
  let nodes = 0
  for (const member of members) {
    if (member.role === 'control-plane') controlPlane++
    else nodes++
  }
  return controlPlane >= flavor.controlPlaneCount && nodes >= flavor.nodesMax
}

function roleNamed(name: string): Role {
  const role = (ROLES as readonly string[]).includes(name) ? (name as Role) : ROLES.find((candidate) => PROFILE_OF_ROLE[candidate] === name)
  if (!role) {
    throw invalid('UNKNOWN_ROLE', `unknown role "${name}"; use ${[...ROLES, ...ROLES.map((candidate) => PROFILE_OF_ROLE[candidate])].join(', ')}`)
  }
  return role
}
