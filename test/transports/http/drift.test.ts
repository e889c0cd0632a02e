/**
 * Ignition drift on a real SQLite file: an installed cluster member reports the config it runs (with
 * the credential its own config carries); the engine compares it canonically with what it would serve
 * now; a template or metadata change makes it outdated at once, before any new report.
 */
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { canonicalJson } from '../../../src/core/lifecycle/drift.ts'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { asMachine, reportInstalled, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'
import { until } from '../../helpers/wait.ts'

const UUID = '3d2c0000-0000-4000-8000-000000000001'
const MAC = '52:54:00:00:0c:01'
const MACHINE = { uuid: UUID, mac: MAC, ip: '10.7.0.5' }

const admin = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

/** Reverses key order at every level: the same config, written differently. */
function reordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reordered)
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).reverse().map(([key, child]) => [key, reordered(child)]))
  return value
}

t.test('an installed machine reports; a template or metadata change makes it outdated at once', async (t) => {
  const started = await startTestEngine()
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  const app = started.engine.app
  await admin(app, 'POST', '/api/v1/flavors', { name: 'solo', control_plane_count: 1, nodes_min: 0, nodes_max: 0 })
  await admin(app, 'POST', '/api/v1/clusters', { name: 'drift', flavor: 'solo' })
  await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: UUID, mac: MAC }, interfaces: [{ name: 'eth0', mac: MAC, ipv4: '10.7.0.5' }] } })
  t.equal((await admin(app, 'POST', '/api/v1/scheduler/run')).json().assignments.length, 1)
  // The installer takes its slot, fetches the role config and reports, as the discovery agent does.
  const config = (await takeSlotAndFetchConfig(app, MACHINE)).json()
  await reportInstalled(app, MACHINE)
  const installedUrl = `/ignition?uuid=${UUID}&mac=${MAC}&os=installed`
  const envFile = config.storage.files.find((file: { path: string }) => file.path === '/etc/slipway/lifecycle.env')
  t.ok(envFile, "the role config carries the machine's lifecycle settings")
  const env = decodeURIComponent(envFile.contents.source.replace(/^data:,/, ''))
  const credential = /^SLIPWAY_MACHINE_CREDENTIAL=(\S+)$/m.exec(env)?.[1]
  t.match(env, /^SLIPWAY_LOCK_GROUP=drift$/m, "its lock group is its cluster's")
  t.ok(credential, 'and its credential')
  const report = (body: unknown, token = credential) =>
    app.inject({ method: 'POST', url: '/lifecycle/ignition', headers: { authorization: `Bearer ${token}` }, payload: body as object })

  const first = await report(reordered(config))
  t.equal(first.statusCode, 200, first.body)
  t.match(first.json(), { uuid: UUID, state: 'up_to_date', expected_sha256: first.json().reported_sha256 }, 'the same config with keys in another order is up to date')
  t.not(JSON.stringify(reordered(config)), canonicalJson(config), 'the report really was written in another order')

  // A template change: outdated without a new report.
  const template = (await admin(app, 'GET', '/api/v1/templates/ignition/kubernetes-control-plane.json')).json().body as string
  const changed = template.replace('"/etc/slipway/role"', '"/etc/slipway/role-v2"')
  t.not(changed, template)
  t.equal((await admin(app, 'PUT', '/api/v1/templates/ignition/kubernetes-control-plane.json', { body: changed })).statusCode, 200)
  const outdated = await until('the machine to be outdated', async () => {
    const fleet = (await admin(app, 'GET', '/lifecycle/ignition')).json() as { uuid: string; state: string }[]
    return fleet.find((record) => record.uuid === UUID && record.state === 'outdated')
  }, 5000)
  t.match(outdated, { state: 'outdated' }, 'GET /lifecycle/ignition lists it outdated after the template change')

  // The machine applies its new config and reports: up to date again.
  const newConfig = (await asMachine(app, MACHINE, 'GET', installedUrl, undefined, { authorization: `Bearer ${credential}` })).json()
  t.equal((await report(newConfig)).json().state, 'up_to_date')

  // A metadata change of its group does the same.
  const group = (await admin(app, 'GET', '/api/v1/groups/drift-drift-cp-1')).json()
  const { source: _source, ...editable } = group
  t.equal((await admin(app, 'PUT', '/api/v1/groups/drift-drift-cp-1', { ...editable, metadata: { ...group.metadata, kubernetes_version: 'v1.32.4' } })).statusCode, 200)
  await until('outdated after a metadata change', async () => {
    const fleet = (await admin(app, 'GET', '/lifecycle/ignition')).json() as { uuid: string; state: string }[]
    return fleet.find((record) => record.state === 'outdated')
  }, 5000)
  t.pass('a metadata change makes it outdated too')

  // A certificate renewal changes the member's config: outdated, and what it is served now carries the new keys.
  const current = (await asMachine(app, MACHINE, 'GET', installedUrl, undefined, { authorization: `Bearer ${credential}` })).json()
  t.equal((await report(current)).json().state, 'up_to_date')
  const renewal = await admin(app, 'POST', '/api/v1/clusters/drift/certificates/renew')
  t.equal(renewal.statusCode, 200, renewal.body)
  t.same(renewal.json(), { renewed: [{ uuid: UUID, hostname: 'drift-cp-1' }], admin_renewed: true })
  await until('outdated after a certificate renewal', async () => {
    const fleet = (await admin(app, 'GET', '/lifecycle/ignition')).json() as { uuid: string; state: string }[]
    return fleet.find((record) => record.uuid === UUID && record.state === 'outdated')
  }, 5000)
  const renewedConfig = (await asMachine(app, MACHINE, 'GET', installedUrl, undefined, { authorization: `Bearer ${credential}` })).json()
  const fileText = (config: typeof current, at: string) => decodeURIComponent(config.storage.files.find((file: { path: string }) => file.path === at).contents.source.replace(/^data:,/, ''))
  t.not(fileText(renewedConfig, '/etc/kubernetes/pki/apiserver.key'), fileText(current, '/etc/kubernetes/pki/apiserver.key'), 'a new API server key')
  t.equal(fileText(renewedConfig, '/etc/kubernetes/pki/ca.crt'), fileText(current, '/etc/kubernetes/pki/ca.crt'), 'under the same CA')
  t.equal((await report(renewedConfig)).json().state, 'up_to_date', 'once applied (by a rolling update), up to date again')
  t.equal((await admin(app, 'POST', '/api/v1/clusters/nope/certificates/renew')).json().code, 'CLUSTER_NOT_FOUND')

  // Bad reports change nothing.
  const before = (await admin(app, 'GET', '/lifecycle/ignition')).body
  const bad: [string, () => ReturnType<typeof report>, number, string][] = [
    ['no credential', () => app.inject({ method: 'POST', url: '/lifecycle/ignition', payload: newConfig }), 401, 'MACHINE_CREDENTIAL_REQUIRED'],
    ['forged credential', () => report(newConfig, `${UUID}.${'B'.repeat(43)}`), 401, 'MACHINE_CREDENTIAL_REQUIRED'],
    ['not an Ignition config', () => report({ hello: 'world' }), 400, 'INVALID_IGNITION_REPORT'],
    ['an array', () => report([1, 2]), 400, 'INVALID_IGNITION_REPORT'],
    ['too big', () => report({ ignition: { version: '3.4.0' }, pad: 'x'.repeat(1100 * 1024) }), 413, 'BODY_TOO_LARGE'],
  ]
  for (const [name, send, status, code] of bad) {
    const response = await send()
    t.equal(response.statusCode, status, `${name}: ${response.statusCode}`)
    t.equal(response.json().code, code, name)
  }
  t.equal((await admin(app, 'GET', '/lifecycle/ignition')).body, before, 'no bad report changed the fleet view')
  t.equal((await app.inject({ method: 'GET', url: '/lifecycle/ignition' })).statusCode, 401, 'the fleet view needs the admin token')
})
