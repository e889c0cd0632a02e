import t from 'tap'
import { parseCluster, parseFlavor, type ClusterMember } from '../../../src/core/clusters/cluster.ts'
import { disqualification, planSchedule, type PlacedMember } from '../../../src/core/clusters/schedule-plan.ts'
import { SlipwayError } from '../../../src/core/errors.ts'
import type { Machine } from '../../../src/core/machines/machine-service.ts'
import type { MachineState } from '../../../src/core/machines/machine-state.ts'
import { FIRST_CREDENTIAL } from '../../../src/core/lifecycle/machine-credentials.ts'

const uuidOf = (n: number) => `4c4c4544-0042-3510-8050-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:0e:${n.toString(16).padStart(2, '0')}`
const ipOf = (n: number) => `10.1.0.${n}`
const now = new Date('2026-11-21T10:00:00.000Z')

function machine(n: number, options: { state?: MachineState; labels?: Record<string, string>; cores?: number; memory?: number; disk?: number; ip?: string | null } = {}): Machine {
  return {
    uuid: uuidOf(n),
    bootMac: macOf(n),
    bootRandomId: null,
    state: options.state ?? 'discovered',
    stateChangedAt: now.toISOString(),
    facts: { cpu: { cores: options.cores ?? 4 }, memory: { totalBytes: options.memory ?? 8e9 } },
    firstSeenAt: now.toISOString(),
    lastSeenAt: now.toISOString(),
    // A secondary NIC listed first: the boot NIC's address must be the one used.
    interfaces: [
      { name: 'eth1', mac: '52:54:00:ff:ff:ff', ipv4: '192.168.99.1', cidr: null, gateway: null, fqdn: [], isBoot: false },
      { name: 'eth0', mac: macOf(n), ipv4: options.ip === undefined ? ipOf(n) : options.ip, cidr: null, gateway: null, fqdn: [], isBoot: true },
    ],
    disks: [{ path: '/dev/vda', sizeBytes: options.disk ?? 100e9, model: null, serial: null }],
    labels: options.labels ?? {},
    credential: FIRST_CREDENTIAL,
    reprovisionUntil: null,
  }
}

const flavor = (extra: Record<string, unknown> = {}) => parseFlavor({ name: 'small', control_plane_count: 3, nodes_max: 5, ...extra })
const cluster = parseCluster({ name: 'edge', flavor: 'small' }, now)
const none = new Set<string>()
/** Turns a plan's assignments into current members, as the store would hold them after commit. */
const asMembers = (plan: ReturnType<typeof planSchedule>): PlacedMember[] =>
  plan.assignments.map(({ cluster, machineUuid, role, ordinal, hostname, ip }) => ({ cluster, machineUuid, role, ordinal, hostname, ip }))
const summary = (plan: ReturnType<typeof planSchedule>) => plan.assignments.map((assignment) => `${assignment.hostname}:${assignment.machineUuid.slice(-2)}`)

t.test('the control plane is all or nothing; then nodes', async (t) => {
  const two = planSchedule(cluster, flavor(), [], [machine(1), machine(2)], none)
  t.same(two.assignments, [], '2 of 3: nothing')
  t.equal(two.state, 'pending')
  t.match(two.waiting[0], /control plane needs 3 more qualifying machine\(s\), 2 available: nothing assigned/)

  const three = planSchedule(cluster, flavor(), [], [machine(3), machine(1), machine(2)], none)
  t.same(summary(three), ['edge-cp-1:01', 'edge-cp-2:02', 'edge-cp-3:03'])
  t.equal(three.state, 'scheduled')
  const first = three.assignments[0]!
  t.same(first.metadata, {
    cluster_name: 'edge',
    role: 'control-plane',
    hostname: 'edge-cp-1',
    ip: '10.1.0.1',
    etcd_initial_cluster: 'edge-cp-1=https://10.1.0.1:2380,edge-cp-2=https://10.1.0.2:2380,edge-cp-3=https://10.1.0.3:2380',
    kubernetes_apiserver_endpoints: 'https://10.1.0.1:6443,https://10.1.0.2:6443,https://10.1.0.3:6443',
    kubernetes_apiserver_port: 6443,
    kubernetes_apiserver_count: 3,
    kubernetes_version: 'v1.31.8',
  })
  t.equal(first.profile, 'etcd-member-kubernetes-control-plane')
  t.equal(first.bootMac, macOf(1))

  // The fourth machine arrives after the control plane was committed: it becomes a node.
  const members = asMembers(three)
  const scheduled = [1, 2, 3].map((n) => machine(n, { state: 'scheduled' }))
  const fourth = planSchedule(cluster, flavor(), members, [...scheduled, machine(4)], new Set(members.map((member) => member.machineUuid)))
  t.same(summary(fourth), ['edge-node-1:04'])
  t.equal(fourth.assignments[0]!.profile, 'kubernetes-node')
  t.equal(fourth.assignments[0]!.metadata.etcd_initial_cluster, first.metadata.etcd_initial_cluster, 'nodes know the control plane')
  t.equal(fourth.assignments[0]!.metadata.role, 'node')
})

t.test('a control plane placed whole forms a new etcd; a member placed into a running one (a replacement) waits to be added', async (t) => {
  const three = planSchedule(cluster, flavor(), [], [machine(1), machine(2), machine(3), machine(4)], none)
  t.same(
    three.assignments.map((assignment) => [assignment.hostname, assignment.etcdMembership]),
    [['edge-cp-1', 'initial'], ['edge-cp-2', 'initial'], ['edge-cp-3', 'initial'], ['edge-node-1', undefined]],
    'the initial control plane forms etcd together; a node has no etcd',
  )
  // edge-cp-2 left (its machine removed from the cluster): the next machine takes its place and ordinal.
  const remaining = asMembers(three).filter((member) => member.hostname !== 'edge-cp-2')
  const replacement = planSchedule(cluster, flavor(), remaining, [machine(5)], new Set(remaining.map((member) => member.machineUuid)))
  t.same(summary(replacement), ['edge-cp-2:05'])
  t.equal(replacement.assignments[0]!.etcdMembership, 'to_add', 'it joins the running etcd once the engine added it')
  t.equal(replacement.assignments[0]!.metadata.etcd_initial_cluster, 'edge-cp-1=https://10.1.0.1:2380,edge-cp-2=https://10.1.0.5:2380,edge-cp-3=https://10.1.0.3:2380', 'the cluster it joins, with itself at its own address')
})

t.test('four machines at once: 3 control plane + 1 node; the same plan whatever the input order', async (t) => {
  const machines = [4, 2, 3, 1].map((n) => machine(n))
  const plan = planSchedule(cluster, flavor(), [], machines, none)
  t.same(summary(plan), ['edge-cp-1:01', 'edge-cp-2:02', 'edge-cp-3:03', 'edge-node-1:04'])
  for (let round = 0; round < 10; round++) {
    const shuffled = [...machines].sort(() => Math.random() - 0.5)
    t.same(planSchedule(cluster, flavor(), [], shuffled, none), plan)
  }
})

t.test('nodes_max caps the nodes; nodes_min keeps the cluster pending', async (t) => {
  const machines = Array.from({ length: 10 }, (_, index) => machine(index + 1))
  const capped = planSchedule(cluster, flavor({ nodes_max: 2 }), [], machines, none)
  t.same(summary(capped), ['edge-cp-1:01', 'edge-cp-2:02', 'edge-cp-3:03', 'edge-node-1:04', 'edge-node-2:05'])
  const short = planSchedule(cluster, flavor({ nodes_min: 3, nodes_max: 4 }), [], machines.slice(0, 4), none)
  t.equal(short.assignments.length, 4)
  t.equal(short.state, 'pending')
  t.same(short.waiting, ['1 node(s) of at least 3'])
  const single = planSchedule(cluster, flavor({ control_plane_count: 1, nodes_max: 0 }), [], machines, none)
  t.same(summary(single), ['edge-cp-1:01'])
})

t.test('only qualifying, discovered machines of no cluster are taken', async (t) => {
  const strict = flavor({ selector: { rack: 'a' }, min_cpu_cores: 8, min_memory_bytes: 16e9, min_disk_bytes: 200e9 })
  const big = { labels: { rack: 'a', other: 'x' }, cores: 8, memory: 16e9, disk: 200e9 }
  const machines = [
    machine(1, { ...big, labels: { rack: 'b' } }),
    machine(2, { ...big, cores: 4 }),
    machine(3, { ...big, memory: 8e9 }),
    machine(4, { ...big, disk: 100e9 }),
    machine(5, { ...big, ip: null }),
    machine(6, { ...big, state: 'installed' }),
    machine(7, big),
    machine(8, big),
    machine(9, big),
  ]
  t.same(
    machines.slice(0, 5).map((candidate) => disqualification(candidate, strict)),
    ['label rack=a missing', '4 CPU cores < 8', '8000000000 bytes of memory < 16000000000', 'largest disk 100000000000 bytes < 200000000000', 'its boot interface reported no IPv4 address'],
  )
  t.same(planSchedule(cluster, strict, [], machines, new Set([uuidOf(7)])).assignments, [], 'machine 7 is in another cluster: 2 of 3, nothing')
  t.same(summary(planSchedule(cluster, strict, [], machines, none)), ['edge-cp-1:07', 'edge-cp-2:08', 'edge-cp-3:09'])
})

t.test('a machine of another cluster is never taken; once released it is available again', async (t) => {
  const other: ClusterMember[] = [1, 2, 3].map((n) => ({ cluster: 'other', machineUuid: uuidOf(n), role: 'control-plane', ordinal: n, hostname: `other-cp-${n}` }))
  const machines = [1, 2, 3, 4, 5, 6].map((n) => machine(n))
  // Even if a member was sent back to discovered by hand, its membership still holds it.
  const plan = planSchedule(cluster, flavor(), [], machines, new Set(other.map((member) => member.machineUuid)))
  t.same(summary(plan), ['edge-cp-1:04', 'edge-cp-2:05', 'edge-cp-3:06'])
  // "other" destroyed: its memberships are gone and its machines are discovered again.
  const again = planSchedule(cluster, flavor(), asMembers(plan), machines, new Set(asMembers(plan).map((member) => member.machineUuid)))
  t.same(summary(again), ['edge-node-1:01', 'edge-node-2:02', 'edge-node-3:03'])
})

t.test('flavor and cluster validation', async (t) => {
  const bad: [unknown, RegExp][] = [
    [{ name: 'x', control_plane_count: 2, nodes_max: 1 }, /control_plane_count/],
    [{ name: 'x', control_plane_count: 3, nodes_min: 4, nodes_max: 1 }, /nodes_max \(1\) is below nodes_min \(4\)/],
    [{ name: 'Bad_Name', control_plane_count: 3, nodes_max: 1 }, /name: must match/],
    [{ name: 'x', control_plane_count: 3, nodes_max: 1, colour: 'red' }, /unknown field\(s\) colour/],
  ]
  for (const [input, message] of bad) {
    const error = t.throws(() => parseFlavor(input)) as unknown as SlipwayError
    t.equal(error.code, 'INVALID_FLAVOR')
    t.match(error.message, message)
  }
  t.same(flavor(), { name: 'small', controlPlaneCount: 3, nodesMin: 0, nodesMax: 5, selector: {}, minCpuCores: 0, minMemoryBytes: 0, minDiskBytes: 0, kubernetesVersion: 'v1.31.8', labels: {}, apiServerPort: 6443, networking: { serviceSubnet: '10.96.0.0/12', podSubnet: '10.244.0.0/16', dnsDomain: 'cluster.local' }, controlPlaneVip: null, staticNetwork: null, os: 'flatcar' })
  t.throws(() => parseCluster({ name: 'x'.repeat(41), flavor: 'small' }, now), { code: 'INVALID_CLUSTER' })
  t.throws(() => parseCluster({ name: 'edge', flavor: 'small', latitude: 91 }, now), { code: 'INVALID_CLUSTER' })
  t.same(parseCluster({ name: 'edge', flavor: 'small', labels: { region: 'eu' }, latitude: 48.85, longitude: 2.35 }, now), {
    name: 'edge',
    flavor: 'small',
    displayName: 'edge',
    labels: { region: 'eu' },
    latitude: 48.85,
    longitude: 2.35,
    region: null,
    site: null,
    state: 'pending',
    createdAt: now.toISOString(),
  })
})
