/**
 * Machines' BMCs through the API of a real engine (real SQLite file) driving real IPMI BMCs
 * (OpenIPMI's ipmi_sim on loopback) with the real ipmitool: a BMC is set with its password sealed and
 * never answered or logged; bad settings are refused and change nothing; power and the boot device
 * reach the machine; a wrong password fails at once, an unreachable BMC after its retries, a restarted
 * BMC answers again; each call is audited and counted; the poll keeps the power state current; calls
 * to one BMC never overlap.
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { RedfishBmc } from '../../fakes/redfish-bmc.ts'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { startIpmiSim, type IpmiSim } from '../../helpers/ipmi-sim.ts'
import { until } from '../../helpers/wait.ts'

const uuidOf = (n: number) => `b3c00000-0000-4000-8000-00000000000${n}`
const macOf = (n: number) => `52:54:00:b3:c0:0${n}`

const lines: string[] = []
const { engine, dataDir, config } = await startTestEngine({
  env: { SLIPWAY_POWER_ATTEMPTS: '2', SLIPWAY_POWER_BACKOFF_MS: '100', SLIPWAY_POWER_ATTEMPT_TIMEOUT_SECONDS: '8', SLIPWAY_POWER_POLL_INTERVAL_SECONDS: '1', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' },
  logLines: lines,
})
const bmcs: IpmiSim[] = []
t.teardown(async () => {
  await engine.close()
  for (const bmc of bmcs) await bmc.stop()
  removeTree(path.dirname(dataDir))
})
await engine.start()
const app = engine.app
const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) })
for (let n = 1; n <= 4; n++) {
  const report = await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: `10.9.0.${n}`, cidrv4: `10.9.0.${n}/24` }] } })
  if (report.statusCode >= 300) throw new Error(report.body)
}
const bmc = await startIpmiSim({ password: 'Bmc-secret-7781' })
bmcs.push(bmc)
const settingsOf = (sim: IpmiSim, extra: object = {}) => ({ protocol: 'ipmi', host: sim.host, port: sim.port, username: sim.username, password: sim.password, ...extra })

t.test('bad settings are refused with a field to fix and change nothing', async (t) => {
  const cases: [object, RegExp][] = [
    [{ ...settingsOf(bmc), host: 'http://10.0.0.1' }, /host: /],
    [{ ...settingsOf(bmc), port: 70_000 }, /port: /],
    [{ ...settingsOf(bmc), username: 'a-user-name-longer-than-16' }, /username: is 1 to 16 bytes/],
    [{ ...settingsOf(bmc), password: 'p'.repeat(21) }, /password: is 1 to 20 bytes/],
    [{ ...settingsOf(bmc), ipmi: { cipher_suite: 0 } }, /ipmi.cipherSuite: .*0-2 do not protect the password/],
    [{ ...settingsOf(bmc), redfish: { verify_tls: false } }, /redfish: options are for protocol redfish/],
    [{ ...settingsOf(bmc), password: undefined }, /password: is required the first time/],
  ]
  for (const [body, message] of cases) {
    const refused = await api('PUT', `/api/v1/machines/${uuidOf(1)}/bmc`, body)
    t.equal(refused.statusCode, 400, refused.body)
    t.match(refused.json(), { code: 'BMC_INVALID', message })
  }
  t.match((await api('PUT', `/api/v1/machines/${uuidOf(1)}/bmc`, { ...settingsOf(bmc), secret_field: 1 })).json(), { statusCode: 400, code: 'VALIDATION_FAILED' })
  t.match((await api('GET', `/api/v1/machines/${uuidOf(1)}/bmc`)).json(), { statusCode: 404, code: 'BMC_NOT_CONFIGURED' }, 'nothing was stored')
  t.match((await api('PUT', '/api/v1/machines/not-a-uuid-0000-4000-8000-000000000000/bmc', settingsOf(bmc))).json(), { statusCode: 400 })
  t.match((await api('POST', `/api/v1/machines/${uuidOf(1)}/power`, { action: 'on' })).json(), { statusCode: 404, code: 'BMC_NOT_CONFIGURED' })
})

t.test('set: the password is sealed, never answered, never logged; power and boot device reach the machine', async (t) => {
  const set = await api('PUT', `/api/v1/machines/${uuidOf(1)}/bmc`, settingsOf(bmc))
  t.equal(set.statusCode, 200, set.body)
  t.match(set.json(), { machine_uuid: uuidOf(1), protocol: 'ipmi', host: '127.0.0.1', port: bmc.port, username: 'admin', password_set: true, ipmi: { cipher_suite: 3, privilege: 'ADMINISTRATOR' }, redfish: null, power: 'unknown' })
  t.notOk('password' in set.json(), 'no password field')

  t.match((await api('POST', `/api/v1/machines/${uuidOf(1)}/power/query`)).json(), { power: 'off', attempts: 1 })
  const on = await api('POST', `/api/v1/machines/${uuidOf(1)}/power`, { action: 'on' })
  t.equal(on.statusCode, 200, on.body)
  t.match(on.json(), { power: 'on', attempts: 1 })
  t.ok(bmc.machineOn(), 'the machine runs')
  const boot = await api('PUT', `/api/v1/machines/${uuidOf(1)}/boot-device`, { device: 'network' })
  t.equal(boot.statusCode, 200, boot.body)
  t.equal(bmc.bootDevice(), 'pxe', 'the BMC will boot it from the network next')
  t.match((await api('GET', '/api/v1/bmcs')).json(), [{ machine_uuid: uuidOf(1), power: 'on', last_error: null }])

  // Changing the address keeps the stored password when none is sent.
  t.equal((await api('PUT', `/api/v1/machines/${uuidOf(1)}/bmc`, { ...settingsOf(bmc), password: undefined, ipmi: { privilege: 'OPERATOR' } })).statusCode, 200)
  t.match((await api('POST', `/api/v1/machines/${uuidOf(1)}/power/query`)).json(), { power: 'on' }, 'the kept password still opens the BMC')

  if (config.database.driver === 'sqlite') {
    const files = [config.database.path, `${config.database.path}-wal`].filter((file) => existsSync(file)).map((file) => readFileSync(file))
    t.notOk(files.some((file) => file.includes(Buffer.from(bmc.password))), 'the password is not in the database files')
  }
  t.notOk(lines.some((line) => line.includes(bmc.password)), 'nor in any log line')
  t.notOk((await api('GET', '/api/v1/audit?limit=500')).body.includes(bmc.password), 'nor in the audit log')
})

t.test('reading the power state asks no BMC: it answers what the BMC last said; asking now is an action', async (t) => {
  const audited = async () => (await api('GET', '/api/v1/audit?limit=500')).json<{ entries: { route: string }[] }>().entries.filter((entry) => entry.route === 'bmc power status').length
  const before = await audited()
  for (let n = 0; n < 20; n++) {
    const read = await api('GET', `/api/v1/machines/${uuidOf(1)}/power`)
    t.equal(read.statusCode, 200, read.body)
    t.match(read.json(), { power: 'on', checked_at: String, last_error: null })
  }
  t.equal(await audited(), before, 'twenty reads, no BMC call')
  t.match((await api('POST', `/api/v1/machines/${uuidOf(1)}/power/query`)).json(), { power: 'on', attempts: 1 })
  t.equal(await audited(), before + 1, 'a query is one call')
  t.match((await api('GET', `/api/v1/machines/${uuidOf(4)}/power`)).json(), { statusCode: 404, code: 'BMC_NOT_CONFIGURED' })
})

t.test('failures: a wrong password at once, an unreachable BMC after its retries, a restarted BMC answers again', async (t) => {
  const wrong = await api('PUT', `/api/v1/machines/${uuidOf(2)}/bmc`, { ...settingsOf(bmc), password: 'not-it' })
  t.equal(wrong.statusCode, 200)
  const refused = await api('POST', `/api/v1/machines/${uuidOf(2)}/power`, { action: 'on' })
  t.equal(refused.statusCode, 502)
  t.match(refused.json(), { code: 'BMC_AUTH_FAILED', message: /refused the user name or password/, details: { attempts: 1 } }, 'not tried again: it would fail the same way')
  t.match((await api('GET', `/api/v1/machines/${uuidOf(2)}/bmc`)).json(), { last_error: { code: 'BMC_AUTH_FAILED' } })

  const other = await startIpmiSim()
  bmcs.push(other)
  t.equal((await api('PUT', `/api/v1/machines/${uuidOf(3)}/bmc`, settingsOf(other))).statusCode, 200)
  t.match((await api('POST', `/api/v1/machines/${uuidOf(3)}/power/query`)).json(), { power: 'off' })
  await other.crash()
  const unreachable = await api('POST', `/api/v1/machines/${uuidOf(3)}/power`, { action: 'on' })
  t.equal(unreachable.statusCode, 502, unreachable.body)
  t.match(unreachable.json(), { code: 'BMC_UNREACHABLE', details: { attempts: 2 } }, 'tried power.attempts times')
  t.match((await api('GET', `/api/v1/machines/${uuidOf(3)}/bmc`)).json(), { power: 'off', last_error: { code: 'BMC_UNREACHABLE' } }, 'the last state read is kept')

  // The same BMC started again on its port (a BMC that rebooted): the next call succeeds and clears the error.
  await other.restart()
  t.match((await api('POST', `/api/v1/machines/${uuidOf(3)}/power`, { action: 'on' })).json(), { power: 'on' })
  t.match((await api('GET', `/api/v1/machines/${uuidOf(3)}/bmc`)).json(), { power: 'on', last_error: null })
})

t.test('every BMC call is audited with who asked; metrics count them and the machines by power', async (t) => {
  const audit = (await api('GET', '/api/v1/audit?limit=500')).json() as { entries: { method: string; route: string; principal: string; status: number; error_code: string | null; summary: string; target: string }[] }
  const calls = audit.entries.filter((entry) => entry.method === 'BMC')
  t.ok(calls.some((entry) => entry.route === 'bmc power on' && entry.status === 200 && entry.target === uuidOf(1) && /^api:/.test(entry.principal)), 'a power on, by the API caller')
  t.ok(calls.some((entry) => entry.route === 'bmc power on' && entry.error_code === 'BMC_AUTH_FAILED' && entry.status === 502))
  t.ok(calls.some((entry) => entry.error_code === 'BMC_UNREACHABLE' && /2 attempts/.test(entry.summary)))
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /slipway_bmc_calls_total\{protocol="ipmi",operation="power on",outcome="ok"\} [1-9]/)
  t.match(metrics, /slipway_bmc_calls_total\{protocol="ipmi",operation="power on",outcome="BMC_AUTH_FAILED"\} 1/)
  t.match(metrics, /slipway_machine_power\{state="on"\} 2/)
})

t.test('the poll sees a machine powered off behind the engine\'s back', async (t) => {
  execFileSync('ipmitool', ['-I', 'lanplus', '-H', bmc.host, '-p', String(bmc.port), '-U', bmc.username, '-E', '-C', '3', 'chassis', 'power', 'off'], { env: { PATH: process.env.PATH, IPMI_PASSWORD: bmc.password } })
  const seen = await until('the poll reads off', async () => {
    const view = (await api('GET', `/api/v1/machines/${uuidOf(1)}/bmc`)).json() as { power: string; power_checked_at: string }
    return view.power === 'off' ? view : undefined
  }, 10_000, 200)
  t.match(seen, { power: 'off' })
  const audit = (await api('GET', '/api/v1/audit?limit=500')).json() as { entries: { principal: string; target: string; error_code: string | null }[] }
  const polls = audit.entries.filter((entry) => entry.principal === 'engine:poll')
  t.notOk(polls.some((entry) => entry.target === uuidOf(1)), 'a BMC that keeps answering is counted, not audited at every poll')
  // Machine 2's BMC refuses its password at every poll (about 8 so far): audited when it started, not since.
  t.ok(polls.filter((entry) => entry.target === uuidOf(2)).length <= 1, `a BMC that keeps failing is audited once: ${polls.filter((entry) => entry.target === uuidOf(2)).length}`)
})

t.test('calls to one BMC never overlap, however many arrive at once', async (t) => {
  const before = bmc.calls().length
  const actions = ['on', 'off', 'on', 'off', 'on', 'off']
  const answers = await Promise.all(actions.map((action) => api('POST', `/api/v1/machines/${uuidOf(1)}/power`, { action })))
  t.same(answers.map((answer) => answer.statusCode), actions.map(() => 200))
  t.same(answers.map((answer) => answer.json().power), actions, 'each reads back the state it set: nothing came between')
  t.same(bmc.calls().slice(before), actions.map((action) => `power ${action === 'on' ? 1 : 0}`), 'the BMC saw them one by one, in order')
})

t.test('a tenant token cannot set a BMC; an operator powers but does not set; no token is refused on any spelling', async (t) => {
  const token = async (role: string) => (await api('POST', '/api/v1/tokens', { name: `power-${role}`, role })).json().token as string
  const operator = await token('operator')
  const viewer = await token('viewer')
  const as = (bearer: string, method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => app.inject({ method, url, headers: { authorization: `Bearer ${bearer}` }, ...(payload ? { payload } : {}) })
  t.equal((await as(operator, 'PUT', `/api/v1/machines/${uuidOf(1)}/bmc`, settingsOf(bmc))).statusCode, 403, 'setting a BMC takes an administrator')
  t.equal((await as(operator, 'POST', `/api/v1/machines/${uuidOf(1)}/power`, { action: 'on' })).statusCode, 200, 'an operator powers')
  t.equal((await as(viewer, 'POST', `/api/v1/machines/${uuidOf(1)}/power`, { action: 'off' })).statusCode, 403, 'a viewer does not')
  t.equal((await as(viewer, 'GET', `/api/v1/machines/${uuidOf(1)}/bmc`)).statusCode, 200, 'a viewer reads')
  for (const url of [`/api/v1/machines/${uuidOf(1)}/bmc`, `/api/v1/machines/${uuidOf(1)}/%62mc`, `/%61pi/v1/machines/${uuidOf(1)}/bmc`, `/api/v1/machines/${uuidOf(1)}/bmc/`, `/api/v1//machines/${uuidOf(1)}/bmc`]) {
    const anonymous = await app.inject({ method: 'PUT', url, payload: settingsOf(bmc) })
    t.ok([401, 404].includes(anonymous.statusCode), `PUT ${url} without a token: ${anonymous.statusCode}`)
  }
  t.match((await api('GET', `/api/v1/machines/${uuidOf(1)}/bmc`)).json(), { port: bmc.port }, 'the BMC is what the administrator set')
})

t.test('a Redfish BMC through the same API: its CA given, its password sealed, power and boot device', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('bmc', new Date())
  const redfish = await RedfishBmc.start({ ...(await servingCertificate(pki)), requireEtag: true, password: 'Rf-secret-5512' })
  t.teardown(() => redfish.close())
  const set = await api('PUT', `/api/v1/machines/${uuidOf(4)}/bmc`, { protocol: 'redfish', host: '127.0.0.1', port: redfish.port, username: redfish.username, password: redfish.password, redfish: { ca_bundle: pki.kubernetesCa.certificatePem } })
  t.equal(set.statusCode, 200, set.body)
  t.match(set.json(), { protocol: 'redfish', ipmi: null, redfish: { system_path: null, verify_tls: true, ca_bundle: /BEGIN CERTIFICATE/ } })
  t.match((await api('POST', `/api/v1/machines/${uuidOf(4)}/power`, { action: 'on' })).json(), { power: 'on' })
  t.equal((await api('PUT', `/api/v1/machines/${uuidOf(4)}/boot-device`, { device: 'network', persistent: true })).statusCode, 200)
  t.match(redfish.machine, { power: 'On', bootTarget: 'Pxe', bootEnabled: 'Continuous' })
  t.equal((await api('PUT', `/api/v1/machines/${uuidOf(4)}/bmc`, { protocol: 'redfish', host: '127.0.0.1', port: redfish.port, username: redfish.username, password: redfish.password })).statusCode, 200)
  t.match((await api('POST', `/api/v1/machines/${uuidOf(4)}/power/query`)).json(), { statusCode: 502, code: 'BMC_TLS_UNTRUSTED' }, 'without its CA the BMC\'s certificate is not trusted')
  t.notOk(lines.some((line) => line.includes(redfish.password)), 'the password is in no log line')
})

t.test('bring-up: enrolled machines never seen before are powered on in batches, next boot from the network', async (t) => {
  const rack = await Promise.all([1, 2, 3].map(() => startIpmiSim()))
  bmcs.push(...rack)
  const enrolled = rack.map((_, index) => `e7e00000-0000-4000-8000-00000000000${index + 1}`)
  for (const [index, sim] of rack.entries()) t.equal((await api('PUT', `/api/v1/machines/${enrolled[index]}/bmc`, settingsOf(sim))).statusCode, 200, 'a BMC for a machine the engine has not seen')

  const refused = await api('POST', '/api/v1/power/bring-ups', { machines: [...enrolled, '00000000-0000-4000-8000-00000000dead'], batch_size: 2, pause_seconds: 1 })
  t.match(refused.json(), { statusCode: 400, code: 'BMC_NOT_CONFIGURED', details: { missing: ['00000000-0000-4000-8000-00000000dead'] } })
  t.notOk(rack.some((sim) => sim.machineOn()), 'a refused bring-up powers nothing on')

  const started = await api('POST', '/api/v1/power/bring-ups', { machines: enrolled, batch_size: 2, pause_seconds: 1 })
  t.equal(started.statusCode, 202, started.body)
  const id = started.json().id as string
  const done = await until('the bring-up is done', async () => {
    const run = (await api('GET', `/api/v1/power/bring-ups/${id}`)).json() as { state: string; machines: { uuid: string; batch: number; state: string; powered_on_at: string }[] }
    return run.state === 'done' ? run : undefined
  }, 30_000, 100)
  t.same(done.machines.map((machine) => [machine.batch, machine.state]), [[1, 'on'], [1, 'on'], [2, 'on']])
  const firstBatch = Math.max(...done.machines.filter((machine) => machine.batch === 1).map((machine) => Date.parse(machine.powered_on_at)))
  const second = Date.parse(done.machines[2]!.powered_on_at)
  t.ok(second - firstBatch >= 1_000, `the second batch came after the pause (${second - firstBatch} ms)`)
  t.ok(rack.every((sim) => sim.machineOn() && sim.bootDevice() === 'pxe'), 'every machine runs, set to boot from the network')
  t.same(rack.map((sim) => sim.calls()), rack.map(() => ['boot pxe', 'power 1']), 'boot device first, then power')
  t.match((await api('GET', '/api/v1/power/bring-ups')).json(), [{ id }])
})

t.test('a discovered machine\'s BMC is enrolled with its credentials only: the host is the address its agent reported', async (t) => {
  // Machine 5's agent read its BMC's LAN settings (ipmitool lan print): the BMC is the ipmi_sim on 127.0.0.1.
  const sim = await startIpmiSim({ password: 'Bmc-secret-4410' })
  bmcs.push(sim)
  const bmcReport = { mac: '52:54:00:b3:c0:f5', ipv4: sim.host, 'ipv4-assignment': 'dhcp', channel: 1, source: 'ipmitool lan print' }
  const reported = await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(5), mac: macOf(5) }, interfaces: [{ name: 'eth0', mac: macOf(5), ipv4: '10.9.0.5', cidrv4: '10.9.0.5/24' }], bmc: bmcReport } })
  t.equal(reported.statusCode, 200, reported.body)
  const { host: _host, ...credentials } = settingsOf(sim)
  const set = await api('PUT', `/api/v1/machines/${uuidOf(5)}/bmc`, credentials)
  t.equal(set.statusCode, 200, set.body)
  t.match(set.json(), { machine_uuid: uuidOf(5), host: sim.host, port: sim.port, password_set: true })
  t.match((await api('POST', `/api/v1/machines/${uuidOf(5)}/power`, { action: 'on' })).json(), { power: 'on' }, 'and the BMC answers there')
  t.ok(sim.machineOn())

  // Machine 4 reported no BMC (Enjoliver's agent, or no ipmitool), and machine 9 never booted: the host is needed.
  for (const uuid of [uuidOf(4), uuidOf(9)]) {
    const before = await api('GET', `/api/v1/machines/${uuid}/bmc`)
    const refused = await api('PUT', `/api/v1/machines/${uuid}/bmc`, credentials)
    t.equal(refused.statusCode, 400, refused.body)
    t.match(refused.json(), { code: 'BMC_HOST_NOT_DISCOVERED', message: /^host: is needed: no discovery report of this machine gave its BMC's address/, details: { field: 'host' } })
    t.equal((await api('GET', `/api/v1/machines/${uuid}/bmc`)).body, before.body, 'nothing changed')
  }
  t.match((await api('PUT', `/api/v1/machines/${uuidOf(5)}/bmc`, { ...credentials, host: '' })).json(), { statusCode: 400, code: 'BMC_INVALID' }, 'an empty host is not a host left out')
})
