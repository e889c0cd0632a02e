/**
 * Attacks from the boot network on a real engine (real SQLite file, real DNS answered to the real
 * `dig`): a forged discovery report that claims a known machine's MAC, uuid or address; install
 * calls that name a machine by half its identity; fetching a cluster member's secret-bearing config
 * from another address or outside an install slot; a forged machine's credential reaching for a
 * cluster's reboot slot; credentials after rotation and revocation.
 */
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { machineCredentials } from '../../helpers/machine-credentials.ts'
import { sleep } from '../../helpers/wait.ts'

const run = promisify(execFile)
const uuidOf = (n: number) => `1d3e0000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:1d:${n.toString(16).padStart(2, '0')}`
const ipOf = (n: number) => `10.9.0.${n}`
const VICTIM = 11
const ATTACKER = 66

const report = (uuid: string, mac: string, ip: string) => ({
  'boot-info': { uuid, mac, 'random-id': 'r' },
  interfaces: [{ name: 'eth0', mac, ipv4: ip, cidrv4: `${ip}/24` }],
  disks: [{ path: '/dev/vda', 'size-bytes': 20e9 }],
  cpu: { cores: 2 },
  memory: { 'total-bytes': 4e9 },
})
/** A request from a machine on the boot network: `from` is its source address. */
const fromMachine = (app: FastifyInstance, from: string, method: 'GET' | 'POST', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method, url, remoteAddress: from, headers, ...(payload === undefined ? {} : { payload: payload as object }) })
const admin = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

async function digA(port: number, name: string): Promise<string[]> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), name, 'A', '+short', '+time=2', '+tries=1'])
  return stdout.split('\n').filter(Boolean)
}

t.test('a report claiming a known machine never re-points it: kept as a conflict for an operator', async (t) => {
  const { engine, dataDir, config } = await startTestEngine({ env: { SLIPWAY_DNS_REFRESH_SECONDS: '0.2', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  await engine.start()
  const app = engine.app
  const victim = uuidOf(VICTIM)
  t.equal((await fromMachine(app, ipOf(VICTIM), 'POST', '/discovery', report(victim, macOf(VICTIM), ipOf(VICTIM)))).statusCode, 200)
  // While it waits for its role: its uuid and MAC (read off the boot network) from another address, moving it there.
  const early = await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', report(victim, macOf(VICTIM), ipOf(ATTACKER)))
  t.match({ status: early.statusCode, ...early.json() }, { status: 409, code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'address-changed' } }, 'a discovered machine is not moved to the claimant either')
  t.equal((await admin(app, 'POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_max: 0 })).statusCode, 201)
  t.equal((await admin(app, 'POST', '/api/v1/clusters', { name: 'c1', flavor: 'one' })).statusCode, 201)
  t.equal((await admin(app, 'POST', '/api/v1/scheduler/run')).statusCode, 200)
  const member = (await admin(app, 'GET', `/api/v1/machines/${victim}`)).json()
  t.match(member, { state: 'scheduled', cluster: { name: 'c1', role: 'control-plane' } })
  const hostname = `${member.cluster.hostname}.${config.dns.zone}`
  const port = engine.dnsPort()!
  await sleep(500)
  t.same(await digA(port, hostname), [ipOf(VICTIM)], `${hostname} answers the member's address`)

  // 1. A new uuid claiming the member's boot MAC.
  const forged = await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', report(uuidOf(ATTACKER), macOf(VICTIM), ipOf(ATTACKER)))
  t.match({ status: forged.statusCode, ...forged.json() }, { status: 409, code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'mac-claimed' } })
  t.notMatch(forged.body, victim, "the answer does not name the machine whose MAC was claimed")
  t.equal((await admin(app, 'GET', `/api/v1/machines/${uuidOf(ATTACKER)}`)).statusCode, 404, 'the claimant was not added')
  t.same((await admin(app, 'GET', `/api/v1/machines?mac=${macOf(VICTIM)}`)).json().map((machine: { uuid: string }) => machine.uuid), [victim], 'MAC look-ups still find the member only')

  // 2. The member's uuid re-reported with another MAC and address.
  const moved = await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', report(victim, macOf(ATTACKER), ipOf(ATTACKER)))
  t.match({ status: moved.statusCode, ...moved.json() }, { status: 409, code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'mac-changed' } })
  // 3. The member's uuid and MAC, from another address.
  const readdressed = await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', report(victim, macOf(VICTIM), ipOf(ATTACKER)))
  t.match({ status: readdressed.statusCode, ...readdressed.json() }, { status: 409, details: { kind: 'address-changed' } })
  // 4. The member's exact report, from another address: its facts are the member's own to report.
  const facts = await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', { ...report(victim, macOf(VICTIM), ipOf(VICTIM)), disks: [{ path: '/dev/sdz', 'size-bytes': 1 }], interfaces: [{ name: 'eth0', mac: macOf(VICTIM), ipv4: ipOf(VICTIM) }, { name: 'eth1', mac: '02:de:ad:be:ef:01' }] })
  t.match({ status: facts.statusCode, ...facts.json() }, { status: 409, details: { kind: 'foreign-source' } })
  t.same((await admin(app, 'GET', '/api/v1/machines?mac=02:de:ad:be:ef:01')).json(), [], 'no interface was added to it')
  await sleep(3000)
  t.same(await digA(port, hostname), [ipOf(VICTIM)], 'after 3 s the DNS name still answers the member, not the claimant')
  t.match((await admin(app, 'GET', `/api/v1/machines/${victim}`)).json(), { boot_mac: macOf(VICTIM), state: 'scheduled', interfaces: [{ ipv4: ipOf(VICTIM) }] }, 'the member is unchanged')

  const conflicts = (await admin(app, 'GET', '/api/v1/machines/conflicts?state=open')).json()
  t.match(conflicts, [
    { kind: 'foreign-source', machine_uuid: victim, source_ip: ipOf(ATTACKER), reports: 1 },
    { kind: 'mac-changed', machine_uuid: victim, claimed_mac: macOf(ATTACKER) },
    { kind: 'mac-claimed', machine_uuid: victim, claimed_uuid: uuidOf(ATTACKER), claimed_mac: macOf(VICTIM) },
    { kind: 'address-changed', machine_uuid: victim, claimed_ipv4: ipOf(ATTACKER), source_ip: ipOf(ATTACKER), reports: 2 },
  ])
  const events = (await admin(app, 'GET', `/api/v1/machines/${victim}`)).json().events.map((event: { reason: string }) => event.reason)
  t.equal(events.filter((reason: string) => reason.startsWith('identity conflict')).length, 4, "each conflict is an event in the member's history")
  t.match((await app.inject({ method: 'GET', url: '/metrics' })).body, /slipway_machine_identity_conflicts_total\{kind="mac-claimed"\} 1/)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/machines/conflicts' })).statusCode, 401, 'conflicts are behind the token')

  // The operator decides.
  const viewer = (await admin(app, 'POST', '/api/v1/tokens', { name: 'v', role: 'viewer' })).json().token
  t.equal((await app.inject({ method: 'POST', url: `/api/v1/machines/conflicts/${conflicts[2].id}/accept`, headers: { authorization: `Bearer ${viewer}` } })).statusCode, 403)
  t.match((await admin(app, 'POST', `/api/v1/machines/conflicts/${conflicts[2].id}/dismiss`)).json(), { state: 'dismissed', resolved_by: 'configured-admin' })
  t.equal((await admin(app, 'POST', `/api/v1/machines/conflicts/${conflicts[2].id}/accept`)).json().code, 'CONFLICT_RESOLVED')
})

t.test('install calls need both halves of the identity; secret-bearing configs only in a slot, a window or with the own credential, from the own address', async (t) => {
  const { engine, dataDir, config } = await startTestEngine({ env: { SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const victim = uuidOf(VICTIM)
  const mac = macOf(VICTIM)
  const query = `uuid=${victim}&mac=${mac.replaceAll(':', '-')}`
  await fromMachine(app, ipOf(VICTIM), 'POST', '/discovery', report(victim, mac, ipOf(VICTIM)))
  await admin(app, 'POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_max: 0 })
  await admin(app, 'POST', '/api/v1/clusters', { name: 'c1', flavor: 'one' })
  await admin(app, 'POST', '/api/v1/scheduler/run')
  const state = async () => (await admin(app, 'GET', `/api/v1/machines/${victim}`)).json().state as string

  // Half an identity moves nothing; neither does a GET that names only the MAC.
  for (const [method, url, code] of [
    ['GET', `/install-authorization?mac=${mac}`, 'MACHINE_IDENTITY_MISSING'],
    ['POST', `/install-authorization?mac=${mac}`, 'MACHINE_IDENTITY_MISSING'],
    ['GET', `/install-authorization?uuid=${uuidOf(ATTACKER)}&mac=${mac}`, 'MACHINE_NOT_FOUND'],
    ['POST', `/install-authorization?uuid=${victim}&mac=${macOf(ATTACKER)}`, 'MACHINE_NOT_FOUND'],
    ['POST', `/lifecycle/install/fail?mac=${mac}`, 'MACHINE_IDENTITY_MISSING'],
    ['POST', `/lifecycle/install/fail?uuid=${victim}`, 'MACHINE_IDENTITY_MISSING'],
  ] as const) {
    const answer = await fromMachine(app, ipOf(ATTACKER), method, url, method === 'POST' ? {} : undefined)
    t.equal(answer.json().code, code, `${method} ${url}: ${code}`)
  }
  t.equal(await state(), 'scheduled', 'the member is still scheduled')

  // Before its slot, the member's own request for its role config is refused: it carries the cluster's keys.
  const early = await fromMachine(app, ipOf(VICTIM), 'GET', `/ignition?${query}&os=installed`)
  t.match({ status: early.statusCode, ...early.json() }, { status: 403, code: 'SECRET_CONFIG_NOT_AUTHORIZED' })
  t.equal((await fromMachine(app, ipOf(VICTIM), 'POST', `/install-authorization?${query}`, {})).statusCode, 200, 'the member gets its slot')
  t.equal(await state(), 'installing')

  const stolen = await fromMachine(app, ipOf(ATTACKER), 'GET', `/ignition?${query}&os=installed`)
  t.match({ status: stolen.statusCode, ...stolen.json() }, { status: 403, code: 'MACHINE_ADDRESS_MISMATCH' }, 'in the slot, but from another address: refused')
  t.notMatch(stolen.body, /PRIVATE KEY/)
  const served = await fromMachine(app, ipOf(VICTIM), 'GET', `/ignition?${query}&os=installed`)
  t.equal(served.statusCode, 200, 'in the slot, from its own address: served')
  t.ok(served.json().storage.files.some((file: { path: string }) => file.path === '/etc/kubernetes/pki/apiserver.key'), "with its API server's key")
  const credential = /SLIPWAY_MACHINE_CREDENTIAL%3D([^%"]+)/.exec(served.body)?.[1] ?? /SLIPWAY_MACHINE_CREDENTIAL=([^\s"\\]+)/.exec(decodeURIComponent(served.body))?.[1]
  t.ok(credential, 'and the machine credential')
  t.equal(credential, machineCredentials(config.secrets.keyFile).issue(victim, 1), 'of a new generation: the grant started one')
  const audit = (await admin(app, 'GET', '/api/v1/audit')).json().entries as { principal: string; summary: string; source_ip: string; target: string }[]
  t.match(audit.find((entry) => entry.principal === `machine:${victim}`), { summary: 'secret-bearing ignition delivered (install slot)', source_ip: ipOf(VICTIM), target: victim }, 'the delivery is audited')

  t.equal((await fromMachine(app, ipOf(VICTIM), 'POST', `/lifecycle/install/success?${query}`, {})).statusCode, 200)
  const after = await fromMachine(app, ipOf(VICTIM), 'GET', `/ignition?${query}&os=installed`)
  t.match({ status: after.statusCode, ...after.json() }, { status: 403, code: 'SECRET_CONFIG_NOT_AUTHORIZED' }, 'installed, no slot: refused')
  const bearer = { authorization: `Bearer ${credential}` }
  t.equal((await fromMachine(app, ipOf(VICTIM), 'GET', `/ignition?${query}&os=installed`, undefined, bearer)).statusCode, 200, 'with its own credential (the rolling agent): served')
  t.equal((await fromMachine(app, ipOf(ATTACKER), 'GET', `/ignition?${query}&os=installed`, undefined, bearer)).json().code, 'MACHINE_ADDRESS_MISMATCH', 'the credential does not travel to another address')

  // A re-provision window, opened and closed by an operator.
  t.match((await admin(app, 'POST', `/api/v1/machines/${victim}/reprovision`, { window_seconds: 600 })).json(), { reprovision_until: /Z$/ })
  t.equal((await fromMachine(app, ipOf(VICTIM), 'GET', `/ignition?${query}&os=installed`)).statusCode, 200, 'inside the window: served')
  await admin(app, 'DELETE', `/api/v1/machines/${victim}/reprovision`)
  t.equal((await fromMachine(app, ipOf(VICTIM), 'GET', `/ignition?${query}&os=installed`)).json().code, 'SECRET_CONFIG_NOT_AUTHORIZED', 'closed: refused')

  // Rotation: the old credential counts through its grace; revocation: nothing counts.
  const rolling = (headers: Record<string, string>) => fromMachine(app, ipOf(VICTIM), 'GET', '/lifecycle/rolling', undefined, headers)
  t.equal((await rolling(bearer)).statusCode, 200)
  t.match((await admin(app, 'POST', `/api/v1/machines/${victim}/credential/rotate`, { grace_seconds: 300 })).json(), { generation: 2, previous_valid_until: /Z$/ })
  t.equal((await rolling(bearer)).statusCode, 200, 'the previous credential counts during its grace')
  const next = await fromMachine(app, ipOf(VICTIM), 'GET', `/ignition?${query}&os=installed`, undefined, bearer)
  t.equal(next.statusCode, 200, 'and fetches the next config, which carries the new one')
  const rotated = machineCredentials(config.secrets.keyFile).issue(victim, 2)
  t.ok(decodeURIComponent(next.body).includes(rotated), 'generation 2')
  t.equal((await rolling({ authorization: `Bearer ${rotated}` })).statusCode, 200)
  t.match((await admin(app, 'POST', `/api/v1/machines/${victim}/credential/revoke`)).json(), { generation: 3, previous_valid_until: null })
  for (const old of [credential!, rotated]) {
    t.equal((await rolling({ authorization: `Bearer ${old}` })).statusCode, 401, 'revoked: refused')
    const fleetlock = await fromMachine(app, ipOf(VICTIM), 'POST', `/fleetlock/${old}/v1/pre-reboot`, { client_params: { id: 'm', group: 'c1' } }, { 'fleet-lock-protocol': 'true' })
    t.match({ status: fleetlock.statusCode, ...fleetlock.json() }, { status: 403, kind: 'invalid_machine_credential' })
  }
  t.match((await admin(app, 'GET', `/api/v1/machines/${victim}`)).json(), { credential: { generation: 3 } })
})

t.test("a forged machine's credential cannot take a cluster's reboot slot nor make a lock group", async (t) => {
  const { engine, dataDir, config } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  await admin(app, 'PUT', '/api/v1/locks/c1', { slots: 1 })
  const forged = uuidOf(ATTACKER)
  t.equal((await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', report(forged, macOf(ATTACKER), ipOf(ATTACKER)))).statusCode, 200)
  const credential = machineCredentials(config.secrets.keyFile).issue(forged)
  for (const group of ['c1', 'made-up']) {
    const answer = await fromMachine(app, ipOf(ATTACKER), 'POST', `/fleetlock/${credential}/v1/pre-reboot`, { client_params: { id: 'x', group } }, { 'fleet-lock-protocol': 'true' })
    t.match({ status: answer.statusCode, ...answer.json() }, { status: 400, kind: 'invalid_client_params' }, `group ${group}: refused`)
  }
  t.same((await admin(app, 'GET', '/api/v1/locks/c1')).json().holders, [], "the cluster's slot is free")
  t.equal((await admin(app, 'GET', '/api/v1/locks/made-up')).json().code, 'LOCK_GROUP_NOT_FOUND', 'no group was made')
  const unknown = machineCredentials(config.secrets.keyFile).issue(uuidOf(99))
  t.equal((await fromMachine(app, ipOf(ATTACKER), 'GET', '/lifecycle/rolling', undefined, { authorization: `Bearer ${unknown}` })).statusCode, 401, 'a credential of a machine the inventory does not know counts for nothing')
})

t.test('discovery reports are limited per client address: a flood of new machines is told to wait', async (t) => {
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_MACHINES_DISCOVERY_REPORTS_PER_MINUTE: '5' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const answers: number[] = []
  for (let n = 100; n < 106; n++) answers.push((await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', report(uuidOf(n), macOf(n), ipOf(ATTACKER)))).statusCode)
  t.same(answers, [200, 200, 200, 200, 200, 429], 'five reports a minute from one address, then 429')
  const limited = await fromMachine(app, ipOf(ATTACKER), 'POST', '/discovery', report(uuidOf(106), macOf(106), ipOf(ATTACKER)))
  t.match({ status: limited.statusCode, retry: limited.headers['retry-after'], ...limited.json() }, { status: 429, retry: /^\d+$/, code: 'DISCOVERY_RATE_LIMITED' })
  t.equal((await fromMachine(app, ipOf(VICTIM), 'POST', '/discovery', report(uuidOf(VICTIM), macOf(VICTIM), ipOf(VICTIM)))).statusCode, 200, 'another machine reports as usual')
  t.equal((await admin(app, 'GET', '/api/v1/machines')).json().length, 6, 'the refused reports stored nothing')
})
