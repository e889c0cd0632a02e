import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { asMachine, reportInstalled, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'

const uuidOf = (n: number) => `4c4c4544-0042-3510-8050-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:0f:${n.toString(16).padStart(2, '0')}`
const ipOf = (n: number) => `10.2.0.${10 + n}`
const machineOf = (n: number) => ({ uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) })

async function engine(t: { teardown(fn: () => unknown): void }) {
  const started = await startTestEngine()
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  return started.engine.app
}

async function discover(app: FastifyInstance, n: number) {
  const response = await app.inject({
    method: 'POST',
    url: '/discovery',
    payload: {
      'boot-info': { uuid: uuidOf(n), mac: macOf(n) },
      interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n), netmask: '255.255.255.0' }],
      disks: [{ path: '/dev/vda', 'size-bytes': 20e9 }],
      cpu: { cores: 2 },
      memory: { 'total-bytes': 4e9 },
    },
  })
  if (response.statusCode !== 200) throw new Error(response.body)
}

const admin = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })
const run = (app: FastifyInstance) => admin(app, 'POST', '/api/v1/scheduler/run')
const machine = async (app: FastifyInstance, n: number) => (await admin(app, 'GET', `/api/v1/machines/${uuidOf(n)}`)).json()

async function setUp(app: FastifyInstance) {
  const flavor = await admin(app, 'POST', '/api/v1/flavors', { name: 'small', control_plane_count: 3, nodes_min: 0, nodes_max: 5, min_cpu_cores: 2 })
  if (flavor.statusCode !== 201) throw new Error(flavor.body)
  const cluster = await admin(app, 'POST', '/api/v1/clusters', { name: 'edge', flavor: 'small', labels: { region: 'eu' }, latitude: 48.85, longitude: 2.35 })
  if (cluster.statusCode !== 201) throw new Error(cluster.body)
}

t.test('flavor, cluster, scheduling with a quorum, Ignition, destroy', async (t) => {
  const app = await engine(t)
  await setUp(app)
  t.same((await admin(app, 'GET', '/api/v1/flavors')).json()[0], {
    name: 'small',
    control_plane_count: 3,
    nodes_min: 0,
    nodes_max: 5,
    selector: {},
    min_cpu_cores: 2,
    min_memory_bytes: 0,
    min_disk_bytes: 0,
    kubernetes_version: 'v1.31.8',
    labels: {},
    api_server_port: 6443,
    service_subnet: '10.96.0.0/12',
    pod_subnet: '10.244.0.0/16',
    dns_domain: 'cluster.local',
    control_plane_vip: null,
    static_network: null,
    os: 'flatcar',
  })
  t.match((await admin(app, 'GET', '/api/v1/clusters')).json(), [
    { name: 'edge', source: 'provisioned', provisioning: { flavor: 'small', state: 'pending' }, labels: { region: 'eu' }, location: { latitude: 48.85, longitude: 2.35 }, conditions: [{ type: 'Joined', status: 'False' }] },
  ])

  await discover(app, 1)
  await discover(app, 2)
  const none = await run(app)
  t.equal(none.statusCode, 200, none.body)
  t.same(none.json().assignments, [], '2 machines for a control plane of 3: nothing')
  t.match(none.json().clusters, [{ name: 'edge', state: 'pending', waiting: [/control plane needs 3 more/] }])
  t.equal((await machine(app, 1)).state, 'discovered')

  await discover(app, 4)
  await discover(app, 3)
  const assigned = await run(app)
  t.same(
    assigned.json().assignments.map((assignment: { hostname: string; boot_mac: string; role: string }) => [assignment.hostname, assignment.boot_mac, assignment.role]),
    [
      ['edge-cp-1', macOf(1), 'control-plane'],
      ['edge-cp-2', macOf(2), 'control-plane'],
      ['edge-cp-3', macOf(3), 'control-plane'],
      ['edge-node-1', macOf(4), 'node'],
    ],
  )
  t.match(assigned.json().clusters, [{ name: 'edge', state: 'scheduled', waiting: [] }])
  t.same((await run(app)).json().assignments, [], 'a second pass changes nothing')

  // Enjoliver's read routes.
  await discover(app, 5)
  t.same((await admin(app, 'GET', '/api/v1/scheduler/ip-list/etcd-member-kubernetes-control-plane')).json(), [ipOf(1), ipOf(2), ipOf(3)])
  t.same((await admin(app, 'GET', '/api/v1/scheduler/ip-list/node')).json(), [ipOf(4)])
  t.match((await admin(app, 'GET', '/api/v1/scheduler/kubernetes-node')).json(), [{ cluster: 'edge', role: 'node', profile: 'kubernetes-node', hostname: 'edge-node-1', mac: macOf(4), ip: ipOf(4), state: 'scheduled' }])
  t.equal((await admin(app, 'GET', '/api/v1/scheduler')).json().length, 4)
  t.match((await admin(app, 'GET', '/api/v1/scheduler/available')).json(), [{ mac: macOf(5), ip: ipOf(5) }], 'the fifth machine is still available')
  const unknownRole = await admin(app, 'GET', '/api/v1/scheduler/ip-list/etcd')
  t.equal(unknownRole.statusCode, 400)
  t.equal(unknownRole.json().code, 'UNKNOWN_ROLE')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/scheduler' })).statusCode, 401, 'behind the token')

  const first = await machine(app, 1)
  t.equal(first.state, 'scheduled')
  t.equal(first.events.at(-1).reason, 'scheduled into edge as control-plane')
  t.equal((await machine(app, 4)).events.at(-1).reason, 'scheduled into edge as node')

  const group = await admin(app, 'GET', '/api/v1/groups/edge-edge-cp-1')
  t.equal(group.statusCode, 200, group.body)
  t.match(group.json(), {
    profile: 'etcd-member-kubernetes-control-plane',
    selector: { mac: macOf(1), os: 'installed' },
    metadata: {
      hostname: 'edge-cp-1',
      cluster_name: 'edge',
      role: 'control-plane',
      ip: ipOf(1),
      etcd_initial_cluster: `edge-cp-1=https://${ipOf(1)}:2380,edge-cp-2=https://${ipOf(2)}:2380,edge-cp-3=https://${ipOf(3)}:2380`,
      kubernetes_apiserver_endpoints: `https://${ipOf(1)}:6443,https://${ipOf(2)}:6443,https://${ipOf(3)}:6443`,
      kubernetes_version: 'v1.31.8',
      ssh_authorized_keys: [],
    },
  })
  t.equal((await admin(app, 'GET', '/api/v1/groups/edge-edge-node-1')).json().profile, 'kubernetes-node')

  // The boot catalog picked the groups up without a restart.
  const withoutUuid = await app.inject({ method: 'GET', url: `/ignition?mac=${macOf(1)}&os=installed` })
  t.equal(withoutUuid.statusCode, 403, 'a role config carries cluster credentials: the MAC alone does not get it')
  t.equal(withoutUuid.json().code, 'MACHINE_UUID_REQUIRED')
  const wrongUuid = await app.inject({ method: 'GET', url: `/ignition?uuid=${uuidOf(9)}&mac=${macOf(1)}&os=installed` })
  t.equal(wrongUuid.statusCode, 403, "nor does the MAC with another machine's uuid")
  // An operator's re-provision window lets the scheduled members fetch their configs without a slot.
  for (const n of [1, 4]) await admin(app, 'POST', `/api/v1/machines/${uuidOf(n)}/reprovision`, {})
  const ignition = await asMachine(app, machineOf(1), 'GET', `/ignition?uuid=${uuidOf(1)}&mac=${macOf(1)}&os=installed`)
  t.equal(ignition.statusCode, 200, ignition.body)
  const config = ignition.json()
  t.equal(config.ignition.version, '3.4.0')
  const hostname = config.storage.files.find((file: { path: string }) => file.path === '/etc/hostname')
  t.match(decodeURIComponent(hostname.contents.source), /edge-cp-1/)
  t.match(config.storage.files.find((file: { path: string }) => file.path === '/etc/slipway/role').contents.source, /etcd-member-kubernetes-control-plane/)
  const nodeIgnition = await asMachine(app, machineOf(4), 'GET', `/ignition?uuid=${uuidOf(4)}&mac=${macOf(4)}&os=installed`)
  t.match(decodeURIComponent(nodeIgnition.json().storage.files[0].contents.source), /edge-node-1/)

  const detail = await admin(app, 'GET', '/api/v1/clusters/edge')
  t.equal(detail.statusCode, 200, detail.body)
  t.equal(detail.json().provisioning.state, 'scheduled')
  t.same(
    detail.json().members.map((member: { hostname: string; machine_uuid: string; ip: string; group: string; machine_state: string }) => [member.hostname, member.machine_uuid, member.ip, member.group, member.machine_state]),
    [
      ['edge-cp-1', uuidOf(1), ipOf(1), 'edge-edge-cp-1', 'scheduled'],
      ['edge-cp-2', uuidOf(2), ipOf(2), 'edge-edge-cp-2', 'scheduled'],
      ['edge-cp-3', uuidOf(3), ipOf(3), 'edge-edge-cp-3', 'scheduled'],
      ['edge-node-1', uuidOf(4), ipOf(4), 'edge-edge-node-1', 'scheduled'],
    ],
  )

  const destroyed = await admin(app, 'DELETE', '/api/v1/clusters/edge')
  t.equal(destroyed.statusCode, 204, destroyed.body)
  for (const n of [1, 2, 3, 4]) {
    const back = await machine(app, n)
    t.equal(back.state, 'discovered', `machine ${n} is back in the pool`)
    t.equal(back.events.at(-1).reason, 'cluster edge destroyed')
  }
  t.equal((await admin(app, 'GET', '/api/v1/groups/edge-edge-cp-1')).statusCode, 404, 'per-machine groups are gone')
  t.equal((await admin(app, 'GET', '/api/v1/clusters/edge')).json().code, 'CLUSTER_NOT_FOUND')
  t.same((await admin(app, 'GET', '/api/v1/clusters')).json(), [])
})

t.test('two concurrent scheduler runs never double-assign', async (t) => {
  const app = await engine(t)
  await setUp(app)
  const second = await admin(app, 'POST', '/api/v1/clusters', { name: 'core', flavor: 'small' })
  t.equal(second.statusCode, 201)
  for (let n = 1; n <= 7; n++) await discover(app, n)
  const runs = await Promise.all([run(app), run(app), run(app)])
  for (const response of runs) t.equal(response.statusCode, 200, response.body)
  const assigned = runs.flatMap((response) => response.json().assignments as { machine_uuid: string; cluster: string; role: string }[])
  t.equal(assigned.length, 7, 'every machine assigned exactly once over all runs')
  t.equal(new Set(assigned.map((assignment) => assignment.machine_uuid)).size, 7)
  const edge = (await admin(app, 'GET', '/api/v1/clusters/edge')).json().members
  const core = (await admin(app, 'GET', '/api/v1/clusters/core')).json().members
  t.equal(edge.length, 7, 'the older cluster takes the 3 control-plane machines and up to 5 nodes: all 7')
  t.equal(core.length, 0, 'the other cluster finds no machine left')
})

t.test('mexosagent /v1/provision and /v1/destroy', async (t) => {
  const app = await engine(t)
  await setUp(app)
  t.equal((await app.inject({ method: 'POST', url: '/v1/provision', payload: { provisions: [{ name: 'x', flavor: 'small' }] } })).statusCode, 401, 'behind the admin token')
  const provisioned = await admin(app, 'POST', '/v1/provision', {
    provisions: [
      { name: 'paris', flavor: 'small', labels: { city: 'paris' }, latitude: 48.85, longitude: 2.35 },
      { name: 'rome', flavor: 'nope' },
      { name: 'edge', flavor: 'small' },
    ],
  })
  t.equal(provisioned.statusCode, 200, provisioned.body)
  t.match(provisioned.json().results, [
    { name: 'paris', ok: true },
    { name: 'rome', ok: false, code: 'FLAVOR_NOT_FOUND' },
    { name: 'edge', ok: false, code: 'CLUSTER_EXISTS' },
  ])
  t.match((await admin(app, 'GET', '/api/v1/clusters/paris')).json(), { labels: { city: 'paris' }, location: { latitude: 48.85 } })

  for (let n = 1; n <= 3; n++) await discover(app, n)
  t.equal((await run(app)).json().assignments.length, 3)
  const destroyed = await admin(app, 'POST', '/v1/destroy', { provisions: [{ name: 'edge' }, { name: 'paris', flavor: 'small' }, { name: 'gone' }] })
  t.equal(destroyed.statusCode, 200, destroyed.body)
  t.match(destroyed.json().results, [{ name: 'edge', ok: true }, { name: 'paris', ok: true }, { name: 'gone', ok: false, code: 'CLUSTER_NOT_FOUND' }])
  t.equal((await machine(app, 1)).state, 'discovered')
})

t.test('bad requests change nothing', async (t) => {
  const app = await engine(t)
  await setUp(app)
  const cases: [string, () => ReturnType<typeof admin>, number, string][] = [
    ['2 control-plane members', () => admin(app, 'POST', '/api/v1/flavors', { name: 'even', control_plane_count: 2, nodes_max: 1 }), 400, 'VALIDATION_FAILED'],
    ['nodes_max < nodes_min', () => admin(app, 'POST', '/api/v1/flavors', { name: 'odd', control_plane_count: 1, nodes_min: 2, nodes_max: 1 }), 400, 'INVALID_FLAVOR'],
    ['duplicate flavor', () => admin(app, 'POST', '/api/v1/flavors', { name: 'small', control_plane_count: 1, nodes_max: 1 }), 409, 'FLAVOR_EXISTS'],
    ['unknown flavor', () => admin(app, 'POST', '/api/v1/clusters', { name: 'x', flavor: 'nope' }), 404, 'FLAVOR_NOT_FOUND'],
    ['duplicate cluster', () => admin(app, 'POST', '/api/v1/clusters', { name: 'edge', flavor: 'small' }), 409, 'CLUSTER_EXISTS'],
    ['uppercase name', () => admin(app, 'POST', '/api/v1/clusters', { name: 'Edge', flavor: 'small' }), 400, 'INVALID_CLUSTER'],
    ['unknown cluster', () => admin(app, 'DELETE', '/api/v1/clusters/nope'), 404, 'CLUSTER_NOT_FOUND'],
  ]
  for (const [name, send, status, code] of cases) {
    const response = await send()
    t.equal(response.statusCode, status, `${name}: ${response.body.slice(0, 200)}`)
    t.equal(response.json().code, code, name)
  }
  t.equal((await admin(app, 'GET', '/api/v1/flavors')).json().length, 1)
  t.equal((await admin(app, 'GET', '/api/v1/clusters')).json().length, 1)
})

t.test('waiting for a role: 503 with Retry-After; once installed, netboot hands over to the disk', async (t) => {
  const app = await engine(t)
  await setUp(app)
  await discover(app, 1)
  const installedUrl = `/ignition?uuid=${uuidOf(1)}&mac=${macOf(1)}&os=installed`
  const waiting = await app.inject({ method: 'GET', url: installedUrl })
  t.equal(waiting.statusCode, 503, 'a discovered machine asking for its installed config is told to wait (Ignition retries 5xx)')
  t.equal(waiting.headers['retry-after'], '5')
  t.match(waiting.json(), { code: 'AWAITING_SCHEDULE', message: /has no role yet/ })
  const unknown = await app.inject({ method: 'GET', url: `/ignition?uuid=${uuidOf(50)}&mac=${macOf(50)}&os=installed` })
  t.equal(unknown.statusCode, 200, 'a machine the engine never saw gets what its groups select, as in matchbox')
  t.equal((await app.inject({ method: 'GET', url: `/ignition?uuid=${uuidOf(1)}&mac=${macOf(1)}` })).statusCode, 200, 'its discovery config is still served')

  // A static group naming the machine with os=installed is an operator's decision: no wait.
  const group = await admin(app, 'PUT', '/api/v1/groups/pinned', { id: 'pinned', profile: 'kubernetes-node', selector: { mac: macOf(2), os: 'installed' }, metadata: { hostname: 'pinned', kubernetes_version: 'v1.31.8', ssh_authorized_keys: [] } })
  t.equal(group.statusCode, 200, group.body)
  await discover(app, 2)
  const pinnedUrl = `/ignition?uuid=${uuidOf(2)}&mac=${macOf(2)}&os=installed`
  // Its template carries the machine's credential: served in a re-provision window, from its address.
  t.equal((await asMachine(app, machineOf(2), 'GET', pinnedUrl)).json().code, 'SECRET_CONFIG_NOT_AUTHORIZED', 'no wait, but no credential outside a window either')
  await admin(app, 'POST', `/api/v1/machines/${uuidOf(2)}/reprovision`, {})
  t.equal((await asMachine(app, machineOf(2), 'GET', pinnedUrl)).statusCode, 200)

  // Scheduled, installed: the installed machine PXE-boots with the same query as before its install.
  for (const n of [3, 4]) await discover(app, n)
  t.equal((await run(app)).json().assignments.length, 4, '3 control plane + 1 node')
  t.equal((await asMachine(app, machineOf(1), 'GET', installedUrl)).json().code, 'SECRET_CONFIG_NOT_AUTHORIZED', 'scheduled: the role config waits for the install slot')
  const ipxeQuery = `/ipxe?uuid=${uuidOf(1)}&mac=${macOf(1).replaceAll(':', '-')}`
  t.match((await app.inject({ method: 'GET', url: ipxeQuery })).body, /flatcar_production_pxe/, 'not installed yet: it netboots its discovery/installer image')
  t.equal((await takeSlotAndFetchConfig(app, machineOf(1))).statusCode, 200, 'in its slot: the role config')
  await reportInstalled(app, machineOf(1))
  const local = await app.inject({ method: 'GET', url: ipxeQuery })
  t.equal(local.statusCode, 200, local.body)
  t.match(local.body, /^#!ipxe\n[\s\S]*\nexit\n$/, 'installed, and its role profile has nothing to netboot: iPXE exits to the disk')
})
