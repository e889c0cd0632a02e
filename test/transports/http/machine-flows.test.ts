/**
 * Re-provision and deprovision through the API of a real engine (real SQLite file) driving real IPMI
 * BMCs (OpenIPMI's ipmi_sim on loopback, its chassis a stand-in machine) with the real ipmitool, and
 * the machine-facing routes the discovery agent calls. The machines' own side (a VM booting the live
 * image, wiping its disk) is in test/e2e/lab-power.test.ts; here the agent's requests are sent as it
 * sends them. A bring-up by label is here too.
 */
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { startIpmiSim, type IpmiSim } from '../../helpers/ipmi-sim.ts'
import { until } from '../../helpers/wait.ts'

const uuidOf = (n: number) => `d0c00000-0000-4000-8000-00000000000${n}`
const macOf = (n: number) => `52:54:00:d0:c0:0${n}`
const ipOf = (n: number) => `10.31.0.${10 + n}`
const identity = (n: number) => `uuid=${uuidOf(n)}&mac=${macOf(n).replaceAll(':', '-')}`

const { engine, dataDir } = await startTestEngine({
  env: { SLIPWAY_POWER_ATTEMPTS: '2', SLIPWAY_POWER_BACKOFF_MS: '100', SLIPWAY_POWER_ATTEMPT_TIMEOUT_SECONDS: '3', SLIPWAY_POWER_POLL_INTERVAL_SECONDS: '0', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' },
})
const bmcs: IpmiSim[] = []
t.teardown(async () => {
  await engine.close()
  for (const bmc of bmcs) await bmc.stop()
  removeTree(path.dirname(dataDir))
})
await engine.start()
const app: FastifyInstance = engine.app
const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) })
const discoveryReport = (n: number) => ({
  'boot-info': { uuid: uuidOf(n), mac: macOf(n) },
  interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n), netmask: '255.255.255.0' }],
  disks: [{ path: '/dev/vda', 'size-bytes': 20e9 }],
  cpu: { cores: 2 },
  memory: { 'total-bytes': 4e9 },
})
const discover = async (n: number) => {
  // From the machine's own address: the address is part of its identity.
  const answer = await app.inject({ method: 'POST', url: '/discovery', payload: discoveryReport(n), remoteAddress: ipOf(n) })
  if (answer.statusCode !== 200) throw new Error(answer.body)
  return answer.json<{ state: string; wipe?: true }>()
}
const machine = async (n: number) => (await api('GET', `/api/v1/machines/${uuidOf(n)}`)).json<{ state: string; events: { from_state: string | null; to_state: string; reason: string }[]; credential?: { generation: number } }>()
const moveTo = async (n: number, to: string) => {
  const moved = await api('POST', `/api/v1/machines/${uuidOf(n)}/transitions`, { to, reason: 'test: by hand' })
  if (moved.statusCode !== 200) throw new Error(moved.body)
}
const withBmc = async (n: number, options: { poweredOn?: boolean } = {}) => {
  const bmc = await startIpmiSim({ password: `flow-${n}-pw`, ...options })
  bmcs.push(bmc)
  const set = await api('PUT', `/api/v1/machines/${uuidOf(n)}/bmc`, { protocol: 'ipmi', host: bmc.host, port: bmc.port, username: bmc.username, password: bmc.password })
  if (set.statusCode !== 200) throw new Error(set.body)
  return bmc
}
const installed = async (n: number) => {
  await discover(n)
  await moveTo(n, 'scheduled')
  t.equal((await app.inject({ method: 'POST', url: `/install-authorization?${identity(n)}`, payload: {} })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: `/lifecycle/install/success?${identity(n)}`, payload: {} })).statusCode, 200)
}

t.test('a re-provision that cannot start changes nothing and calls no BMC where none is needed', async (t) => {
  t.match((await api('POST', `/api/v1/machines/${uuidOf(9)}/reinstall`)).json(), { statusCode: 404, code: 'MACHINE_NOT_FOUND' })
  t.match((await api('POST', '/api/v1/machines/not-a-uuid/reinstall')).json(), { statusCode: 400 })
  await discover(1)
  t.match((await api('POST', `/api/v1/machines/${uuidOf(1)}/reinstall`)).json(), { statusCode: 404, code: 'BMC_NOT_CONFIGURED' })
  const bmc = await withBmc(1)
  const refused = await api('POST', `/api/v1/machines/${uuidOf(1)}/reinstall`)
  t.equal(refused.statusCode, 409)
  t.match(refused.json(), { code: 'MACHINE_NOT_PROVISIONED', message: /is discovered: only a machine with a role/ })
  t.same(bmc.calls(), [], 'its BMC was not asked anything')
  t.equal((await machine(1)).state, 'discovered')
})

t.test('re-provision of an installed machine that is on: next boot from the network, back to scheduled, power cycle; it installs again', async (t) => {
  await installed(2)
  const bmc = await withBmc(2, { poweredOn: true })
  const before = bmc.calls().length
  const answer = await api('POST', `/api/v1/machines/${uuidOf(2)}/reinstall`)
  t.equal(answer.statusCode, 200, answer.body)
  t.match(answer.json(), { machine_uuid: uuidOf(2), state: 'scheduled', power_action: 'cycle' })
  // ipmi_sim cycles as real BMCs do: off now, on again a moment later.
  await until('the machine is on again after the cycle', () => (bmc.machineOn() && bmc.calls().length - before === 3 ? true : undefined), 10_000, 100)
  t.same(bmc.calls().slice(before), ['boot pxe', 'power 0', 'power 1'], 'the next boot was set to the network before the power moved')
  const history = (await machine(2)).events
  t.match(history.at(-1), { from_state: 'installed', to_state: 'scheduled', reason: /^re-provision requested by api:.*: next boot from the network/ })

  // The machine boots the live image, which asks for its slot and installs its role again.
  t.equal((await discover(2)).state, 'scheduled', 'its report keeps it scheduled')
  t.equal((await app.inject({ method: 'POST', url: `/install-authorization?${identity(2)}`, payload: {} })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: `/lifecycle/install/success?${identity(2)}`, payload: {} })).statusCode, 200)
  t.equal((await machine(2)).state, 'installed')

  const audit = (await api('GET', '/api/v1/audit?limit=20')).json<{ entries: { route: string; principal: string }[] }>().entries
  t.ok(['bmc power status', 'bmc boot device network (next boot)', 'bmc power cycle'].every((route) => audit.some((entry) => entry.route === route)), 'every BMC call is in the audit log')
})

t.test('re-provision of a machine that is off powers it on; a BMC that does not answer changes nothing', async (t) => {
  await installed(3)
  const bmc = await withBmc(3)
  const answer = await api('POST', `/api/v1/machines/${uuidOf(3)}/reinstall`)
  t.equal(answer.statusCode, 200, answer.body)
  t.match(answer.json(), { state: 'scheduled', power_action: 'on', power: 'on' })
  t.same(bmc.calls(), ['boot pxe', 'power 1'])

  await installed(4)
  const gone = await withBmc(4)
  await gone.stop()
  const failed = await api('POST', `/api/v1/machines/${uuidOf(4)}/reinstall`)
  t.ok([502, 504].includes(failed.statusCode), failed.body)
  t.equal((await machine(4)).state, 'installed', 'still installed: nothing was changed')
})

t.test('deprovision: refused for a cluster member; then wipe on its next discovery boot, power off, out of the pool until returned', async (t) => {
  await discover(5)
  const bmc = await withBmc(5, { poweredOn: true })
  const before = bmc.calls().length
  // Only machine 5 is in this flavor's pool (machine 1 is discovered too).
  t.equal((await api('PUT', `/api/v1/machines/${uuidOf(5)}/labels`, { pool: 'flows' })).statusCode, 200)
  t.equal((await api('POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_min: 0, nodes_max: 0, min_cpu_cores: 1, selector: { pool: 'flows' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/clusters', { name: 'alpha', flavor: 'one' })).statusCode, 201)
  await api('POST', '/api/v1/scheduler/run')
  t.equal((await machine(5)).state, 'scheduled', 'the scheduler placed it')
  const member = await api('POST', `/api/v1/machines/${uuidOf(5)}/deprovision`)
  t.equal(member.statusCode, 409)
  t.match(member.json(), { code: 'MACHINE_IN_CLUSTER', message: /alpha-cp-1, a control-plane member of cluster alpha/ })
  t.same(bmc.calls().slice(before), [], 'nothing was asked of its BMC')

  t.equal((await api('DELETE', '/api/v1/clusters/alpha')).statusCode, 204)
  t.equal((await machine(5)).state, 'discovered')
  const generation = (await machine(5)).credential!.generation
  const started = await api('POST', `/api/v1/machines/${uuidOf(5)}/deprovision`)
  t.equal(started.statusCode, 200, started.body)
  t.match(started.json(), { machine_uuid: uuidOf(5), state: 'discovered', power_action: 'cycle', deprovision: { state: 'wipe_pending', requested_by: /^api:/ } })
  await until('on again after the cycle', () => (bmc.calls().length - before === 3 ? true : undefined), 10_000, 100)
  t.same(bmc.calls().slice(before), ['boot pxe', 'power 0', 'power 1'])
  t.equal((await machine(5)).credential!.generation, generation + 1, 'its credential was revoked')

  // Out of the pool: a new cluster does not get it.
  t.equal((await api('POST', '/api/v1/clusters', { name: 'beta', flavor: 'one' })).statusCode, 201)
  await api('POST', '/api/v1/scheduler/run')
  t.equal((await machine(5)).state, 'discovered', 'the scheduler left it alone')

  // The agent's side: told to wipe in the answer to its report; only its own identity may report.
  t.same(await discover(5), { 'new-discovery': false, uuid: uuidOf(5), state: 'discovered', wipe: true })
  t.notOk('wipe' in (await discover(1)), 'another machine is not told to wipe')
  t.match((await app.inject({ method: 'POST', url: `/lifecycle/wipe/success?uuid=${uuidOf(5)}&mac=52-54-00-00-00-01`, payload: {} })).json(), { statusCode: 404, code: 'MACHINE_NOT_FOUND' })
  t.match((await app.inject({ method: 'POST', url: `/lifecycle/wipe/success?uuid=${uuidOf(5)}`, payload: {} })).json(), { statusCode: 400, code: 'MACHINE_IDENTITY_MISSING' })
  t.match((await app.inject({ method: 'POST', url: `/lifecycle/wipe/success?${identity(1)}`, payload: {} })).json(), { statusCode: 409, code: 'WIPE_NOT_REQUESTED' })
  t.equal((await app.inject({ method: 'POST', url: `/lifecycle/wipe/success?${identity(5)}`, payload: { message: 'x'.repeat(9000) } })).statusCode, 400, 'an oversized report is refused')
  const reported = await app.inject({ method: 'POST', url: `/lifecycle/wipe/success?${identity(5)}`, payload: { message: '1 disk(s) wiped' } })
  t.equal(reported.statusCode, 200, reported.body)
  t.same(reported.json(), { uuid: uuidOf(5), deprovision: 'wiped' })
  t.notOk('wipe' in (await discover(5)), 'once wiped, it is not told again')
  t.match((await app.inject({ method: 'POST', url: `/lifecycle/wipe/success?${identity(5)}`, payload: {} })).json(), { statusCode: 409, code: 'WIPE_NOT_REQUESTED' })

  // The engine powers it off a moment later.
  await until('the wiped machine is powered off', async () => ((await api('GET', `/api/v1/machines/${uuidOf(5)}/deprovision`)).json<{ state: string }>().state === 'done' ? true : undefined), 15_000, 200)
  t.notOk(bmc.machineOn(), 'its BMC cut the power')
  t.match((await api('GET', `/api/v1/machines/${uuidOf(5)}/deprovision`)).json(), { state: 'done', message: '1 disk(s) wiped', wiped_at: String, powered_off_at: String })
  const audit = (await api('GET', '/api/v1/audit?limit=50')).json<{ entries: { route: string; principal: string }[] }>().entries
  t.ok(audit.some((entry) => entry.route === 'bmc power off' && entry.principal === 'engine:deprovision'), 'the power-off is audited as the engine\'s')
  t.match((await api('GET', '/api/v1/deprovisions')).json(), [{ machine_uuid: uuidOf(5), state: 'done' }])

  // Returned to the pool: the scheduler places it.
  t.equal((await api('DELETE', `/api/v1/machines/${uuidOf(5)}/deprovision`)).statusCode, 204)
  t.match((await api('DELETE', `/api/v1/machines/${uuidOf(5)}/deprovision`)).json(), { statusCode: 404, code: 'DEPROVISION_NOT_FOUND' })
  await api('POST', '/api/v1/scheduler/run')
  t.equal((await machine(5)).state, 'scheduled', 'back in the pool, the new cluster gets it')
})

t.test('a failed wipe leaves the machine on for a person to look at', async (t) => {
  await discover(6)
  const bmc = await withBmc(6)
  t.equal((await api('POST', `/api/v1/machines/${uuidOf(6)}/deprovision`)).statusCode, 200)
  t.ok(bmc.machineOn())
  const reported = await app.inject({ method: 'POST', url: `/lifecycle/wipe/fail?${identity(6)}`, payload: { message: '/dev/vda: writing its start failed' } })
  t.same(reported.json(), { uuid: uuidOf(6), deprovision: 'wipe_failed' })
  await new Promise((resolve) => setTimeout(resolve, 4000))
  t.ok(bmc.machineOn(), 'still on')
  t.match((await api('GET', `/api/v1/machines/${uuidOf(6)}/deprovision`)).json(), { state: 'wipe_failed', message: '/dev/vda: writing its start failed', powered_off_at: null })
  t.match((await api('POST', `/api/v1/machines/${uuidOf(6)}/reinstall`)).json(), { statusCode: 409 }, 'a machine being deprovisioned is not re-provisioned')
})

t.test('a bring-up by label powers on every known machine carrying the labels; one without a BMC, or an empty or doubly named set, is refused', async (t) => {
  const bmcsOf: Record<number, IpmiSim> = {}
  for (const n of [7, 8]) {
    await discover(n)
    bmcsOf[n] = await withBmc(n)
    t.equal((await api('PUT', `/api/v1/machines/${uuidOf(n)}/labels`, { rack: 'r7' })).statusCode, 200)
  }
  const started = await api('POST', '/api/v1/power/bring-ups', { labels: { rack: 'r7' }, batch_size: 1, pause_seconds: 0 })
  t.equal(started.statusCode, 202, started.body)
  t.same(started.json<{ machines: { uuid: string }[] }>().machines.map((machine) => machine.uuid).sort(), [uuidOf(7), uuidOf(8)])
  const id = started.json<{ id: string }>().id
  await until('the bring-up is done', async () => ((await api('GET', `/api/v1/power/bring-ups/${id}`)).json<{ state: string }>().state === 'done' ? true : undefined), 20_000, 100)
  t.ok(bmcsOf[7]!.machineOn() && bmcsOf[8]!.machineOn(), 'both run')

  await discover(9)
  t.equal((await api('PUT', `/api/v1/machines/${uuidOf(9)}/labels`, { rack: 'r9' })).statusCode, 200)
  t.match((await api('POST', '/api/v1/power/bring-ups', { labels: { rack: 'r9' } })).json(), { statusCode: 400, code: 'BMC_NOT_CONFIGURED' })
  t.match((await api('POST', '/api/v1/power/bring-ups', { labels: { rack: 'nowhere' } })).json(), { statusCode: 400, code: 'BRING_UP_EMPTY', message: /no known machine carries rack=nowhere/ })
  t.match((await api('POST', '/api/v1/power/bring-ups', { labels: { rack: 'r7' }, machines: [uuidOf(7)] })).json(), { statusCode: 400, code: 'BRING_UP_INVALID' })
  t.match((await api('POST', '/api/v1/power/bring-ups', {})).json(), { statusCode: 400, code: 'BRING_UP_INVALID' })
})

t.test('a cluster destroyed with wipe=true: its machines are deprovisioned through their BMCs; an operator may destroy, not wipe', async (t) => {
  const bmc = await withBmc(7, { poweredOn: true })
  await discover(7)
  t.equal((await api('PUT', `/api/v1/machines/${uuidOf(7)}/labels`, { pool: 'wiped' })).statusCode, 200)
  t.equal((await api('POST', '/api/v1/flavors', { name: 'wiped', control_plane_count: 1, nodes_min: 0, nodes_max: 0, min_cpu_cores: 1, selector: { pool: 'wiped' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/clusters', { name: 'gamma', flavor: 'wiped' })).statusCode, 201)
  await api('POST', '/api/v1/scheduler/run')
  t.equal((await machine(7)).state, 'scheduled')
  const operator = (await api('POST', '/api/v1/tokens', { name: 'wipe-operator', role: 'operator' })).json<{ token: string }>()
  const before = bmc.calls().length
  const refused = await app.inject({ method: 'DELETE', url: '/api/v1/clusters/gamma?wipe=true', headers: { authorization: `Bearer ${operator.token}` } })
  t.equal(refused.statusCode, 403, refused.body)
  t.match(refused.json(), { code: 'WIPE_NEEDS_ADMIN' })
  t.equal((await api('GET', '/api/v1/clusters/gamma')).statusCode, 200, 'the cluster is still there')
  t.same(bmc.calls().slice(before), [], 'and no BMC was asked anything')

  t.equal((await api('DELETE', '/api/v1/clusters/gamma?wipe=true')).statusCode, 204)
  t.equal((await machine(7)).state, 'discovered')
  t.match((await api('GET', `/api/v1/machines/${uuidOf(7)}/deprovision`)).json(), { state: 'wipe_pending', requested_by: 'api:configured-admin' })
  await until('its BMC took it to a network boot', () => (bmc.calls().length - before === 3 ? true : undefined), 10_000, 100)
  t.same(bmc.calls().slice(before), ['boot pxe', 'power 0', 'power 1'])
  t.same(await discover(7), { 'new-discovery': false, uuid: uuidOf(7), state: 'discovered', wipe: true }, 'its agent is told to wipe')
})
