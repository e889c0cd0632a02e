/**
 * The real `slipway` binary showing machines' power: `machines show` with a BMC the engine polls (a
 * Redfish BMC double), with one whose last poll failed (nothing listens at its address) and without
 * one, in text and --json; `machines list` with its POWER column from one GET /api/v1/bmcs, and
 * without the column for a token that may not list BMCs.
 */
import path from 'node:path'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { RedfishBmc } from '../../fakes/redfish-bmc.ts'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { until } from '../../helpers/wait.ts'
import { closedPort, slipway as runSlipway, tableRows, type RunOptions } from './run-slipway.ts'

const uuidOf = (n: number) => `c1d00000-0000-4000-8000-00000000000${n}`
const macOf = (n: number) => `52:54:00:c1:d0:0${n}`

const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_POWER_POLL_INTERVAL_SECONDS: '1', SLIPWAY_POWER_ATTEMPT_TIMEOUT_SECONDS: '5', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' } })
const pki = await x509ClusterPkiIssuer.issue('cli-bmc', new Date())
const redfish = await RedfishBmc.start({ ...(await servingCertificate(pki)), password: 'Cli-redfish-pw-6120' })
t.teardown(async () => {
  await engine.close()
  await redfish.close()
  removeTree(path.dirname(dataDir))
})
const url = await engine.start()
const app = engine.app
const slipway = (args: string[], options: RunOptions = {}) => runSlipway(args, { url, token: ADMIN_TOKEN, ...options })
const api = async (method: 'GET' | 'POST' | 'PUT', route: string, payload?: object) => {
  const answer = await app.inject({ method, url: route, headers: auth, ...(payload ? { payload } : {}) })
  if (answer.statusCode >= 300) throw new Error(`${method} ${route}: ${answer.statusCode} ${answer.body}`)
  return answer
}

// Machine 1: a Redfish BMC that answers; 2: no BMC; 3: a BMC where nothing listens.
for (const n of [1, 2, 3]) await api('POST', '/discovery', { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: `10.8.0.${n}` }] })
await api('PUT', `/api/v1/machines/${uuidOf(1)}/bmc`, { protocol: 'redfish', host: '127.0.0.1', port: redfish.port, username: redfish.username, password: redfish.password, redfish: { ca_bundle: pki.kubernetesCa.certificatePem } })
const deadPort = await closedPort()
await api('PUT', `/api/v1/machines/${uuidOf(3)}/bmc`, { protocol: 'redfish', host: '127.0.0.1', port: deadPort, username: 'root', password: 'Cli-dead-pw-3391' })
await until('both BMCs polled', async () => {
  const bmcs = (await api('GET', '/api/v1/bmcs')).json() as { machine_uuid: string; power: string; last_error: unknown }[]
  const [answering, dead] = [bmcs.find((bmc) => bmc.machine_uuid === uuidOf(1)), bmcs.find((bmc) => bmc.machine_uuid === uuidOf(3))]
  return (answering?.power === 'off' && dead?.last_error) || undefined
}, 20_000, 100)

t.test('machines show: the power state and the BMC, or "no BMC"', async (t) => {
  const withBmc = await slipway(['machines', 'show', uuidOf(1)])
  t.equal(withBmc.code, 0, withBmc.stderr)
  t.match(withBmc.stdout, new RegExp(`^UUID: +${uuidOf(1)}\\nBoot MAC: +${macOf(1)}\\nState: +discovered [^\\n]*\\nPower: +off\\n`), 'the power state beside the state')
  t.match(withBmc.stdout, new RegExp(`\\nBMC:\\nProtocol: +redfish\\nAddress: +127\\.0\\.0\\.1:${redfish.port}\\nUser: +root\\nLast checked: +\\d{4}-\\d\\d-\\d\\dT[^\\n]+\\nLast error: +-\\n`), 'the BMC: protocol, address, user, last checked, last error')
  t.notOk(withBmc.stdout.includes(redfish.password), 'never the password')
  t.ok(withBmc.stdout.indexOf('\nBMC:\n') < withBmc.stdout.indexOf('\nInterfaces:\n'), 'before the interfaces')

  const without = await slipway(['machines', 'show', macOf(2)])
  t.equal(without.code, 0, without.stderr)
  t.match(without.stdout, /\nPower: +no BMC\n/)
  t.notMatch(without.stdout, /\nBMC:\n/, 'no BMC section')

  const failing = await slipway(['machines', 'show', uuidOf(3)])
  t.equal(failing.code, 0, failing.stderr)
  t.match(failing.stdout, /\nPower: +unknown \(last check failed: BMC_UNREACHABLE\)\n/, 'a failed poll is said beside the state')
  t.match(failing.stdout, new RegExp(`\\nAddress: +127\\.0\\.0\\.1:${deadPort}\\n[\\s\\S]*\\nLast error: +BMC_UNREACHABLE at \\d{4}-[^:]+:[^\\n]*no HTTPS answer from the BMC \\(ECONNREFUSED\\)\\n`))
})

t.test('machines show --json: the API document with its BMC, or bmc null', async (t) => {
  const withBmc = await slipway(['machines', 'show', uuidOf(1), '--json'])
  t.equal(withBmc.code, 0, withBmc.stderr)
  const shown = JSON.parse(withBmc.stdout) as Record<string, unknown>
  const machine = (await api('GET', `/api/v1/machines/${uuidOf(1)}`)).json() as Record<string, unknown>
  t.same({ ...shown, bmc: undefined }, { ...machine, bmc: undefined }, "the machine as the API answers it (fields the engine adds pass through)")
  t.match(shown.bmc, { machine_uuid: uuidOf(1), protocol: 'redfish', host: '127.0.0.1', port: redfish.port, username: 'root', password_set: true, power: 'off', power_checked_at: String, last_error: null })
  t.notOk(withBmc.stdout.includes(redfish.password), 'never the password')
  const without = JSON.parse((await slipway(['machines', 'show', uuidOf(2), '--json'])).stdout) as { uuid: string; bmc: unknown }
  t.match(without, { uuid: uuidOf(2), bmc: null })
})

t.test("machines list: a POWER column from one request; a tenant's token sees its machines' power", async (t) => {
  const listed = await slipway(['machines', 'list'])
  t.equal(listed.code, 0, listed.stderr)
  const rows = tableRows(listed.stdout)
  t.same(rows[0], ['UUID', 'BOOT MAC', 'IP', 'STATE', 'POWER', 'CLUSTER', 'HOSTNAME', 'LABELS', 'SEEN'])
  t.same(rows.slice(1).map((row) => [row[0], row[4]]), [
    [uuidOf(1), 'off'],
    [uuidOf(2), '-'],
    [uuidOf(3), 'unknown (BMC_UNREACHABLE)'],
  ])
  const json = await slipway(['machines', 'list', '--json'])
  t.equal(json.stdout, `${(await api('GET', '/api/v1/machines')).body}\n`, '--json stays the API\'s list as it came')

  // A tenant's token sees the machines of its clusters, and their BMCs only.
  const tokenOf = async (name: string, role: string) => (await api('POST', '/api/v1/tokens', { name, role, tenant: 'acme' })).json().token as string
  await api('POST', '/api/v1/flavors', { name: 'single', control_plane_count: 1, nodes_min: 0, nodes_max: 0 })
  const created = await app.inject({ method: 'POST', url: '/api/v1/clusters', headers: { authorization: `Bearer ${await tokenOf('cli-acme-admin', 'admin')}` }, payload: { name: 'acme-1', flavor: 'single' } })
  t.equal(created.statusCode, 201, created.body)
  await api('POST', '/api/v1/scheduler/run')
  const asTenant = await slipway(['machines', 'list'], { token: await tokenOf('cli-acme-viewer', 'viewer') })
  t.equal(asTenant.code, 0, asTenant.stderr)
  const tenantRows = tableRows(asTenant.stdout)
  t.same(tenantRows[0], ['UUID', 'BOOT MAC', 'IP', 'STATE', 'POWER', 'CLUSTER', 'HOSTNAME', 'LABELS', 'SEEN'])
  t.equal(tenantRows.length, 2, "the tenant's one machine")
  const member = tenantRows[1]!
  t.equal(member[4], member[0] === uuidOf(1) ? 'off' : member[0] === uuidOf(3) ? 'unknown (BMC_UNREACHABLE)' : '-', "its machine's power, as the fleet's list shows it")
  t.equal(asTenant.stderr, '', 'nothing left out')
  const tenantBmcs = (await app.inject({ method: 'GET', url: '/api/v1/bmcs', headers: { authorization: `Bearer ${await tokenOf('cli-acme-viewer-2', 'viewer')}` } })).json() as { machine_uuid: string }[]
  t.ok(tenantBmcs.every((bmc) => bmc.machine_uuid === member[0]), `the BMC list of a tenant holds its machine's BMC at most (${tenantBmcs.length})`)
})

t.test('usage errors are refused before any request', async (t) => {
  const wrong = await slipway(['machines', 'show', 'not-a-machine'])
  t.equal(wrong.code, 2)
  t.equal(redfish.calls.filter((call) => call.startsWith('reset')).length, 0, 'showing never powers anything')
})
