/**
 * The reboot lock semaphore over HTTP on a real SQLite file: Zincati's FleetLock request sequence
 * against the per-machine base URL a machine finds in its Ignition, FleetLock's errors, the
 * per-machine rolling endpoints, the operator's view and controls, concurrency and restarts.
 */
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { machineCredentials } from '../../helpers/machine-credentials.ts'
import { auth, removeTree, startTestEngine, type TestEngine } from '../../helpers/engine.ts'
import { sleep } from '../../helpers/wait.ts'

const FCOS_MAC = '52:54:00:00:00:02' // the sample group lab-node-2 (installed Fedora CoreOS)
const uuidOf = (n: number) => `9f1e0000-0000-4000-8000-${String(n).padStart(12, '0')}`
const body = (id: string, group = 'default') => ({ client_params: { id, group } })
const FLEETLOCK = { 'fleet-lock-protocol': 'true' }

async function started(t: { teardown(fn: () => unknown): void }) {
  const engine = await startTestEngine()
  t.teardown(async () => {
    await engine.engine.close()
    removeTree(path.dirname(engine.dataDir))
  })
  return engine
}

/** The credentials the engine issues, computed from its own key file (as its templates do). */
const credentialsOf = (engine: TestEngine) => machineCredentials(engine.config.secrets.keyFile)

const post = (app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = FLEETLOCK) =>
  app.inject({ method: 'POST', url, headers, payload: payload as object })
const admin = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

/** Machines n: a credential counts only for a machine the inventory knows. */
async function discoverMachines(app: FastifyInstance, numbers: number[]) {
  for (const n of numbers) {
    const mac = `52:54:00:00:f1:${n.toString(16).padStart(2, '0')}`
    const answer = await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac }, interfaces: [{ name: 'eth0', mac }] } })
    if (answer.statusCode !== 200) throw new Error(answer.body)
  }
}

t.test("Zincati's sequence against the base URL from the machine's Ignition, and FleetLock's errors", async (t) => {
  const engine = await started(t)
  const app = engine.engine.app
  const discovered = await app.inject({
    method: 'POST',
    url: '/discovery',
    payload: { 'boot-info': { uuid: uuidOf(1), mac: FCOS_MAC }, interfaces: [{ name: 'eth0', mac: FCOS_MAC, ipv4: '10.6.0.2' }] },
  })
  t.equal(discovered.statusCode, 200)
  // The config carries the machine's credential: served in an operator's re-provision window, to its address.
  t.equal((await admin(app, 'POST', `/api/v1/machines/${uuidOf(1)}/reprovision`, {})).statusCode, 200)
  const ignition = await app.inject({ method: 'GET', url: `/ignition?uuid=${uuidOf(1)}&mac=${FCOS_MAC}&os=installed`, remoteAddress: '10.6.0.2' })
  t.equal(ignition.statusCode, 200, ignition.body)
  const zincati = ignition.json().storage.files.find((file: { path: string }) => file.path === '/etc/zincati/config.d/55-update-strategy.toml')
  t.ok(zincati, "the installed Fedora CoreOS config sets up Zincati's fleet_lock strategy")
  const toml = decodeURIComponent(zincati.contents.source.replace(/^data:,/, ''))
  const baseUrl = /^base_url = "(http:\/\/[^"]+\/)"$/m.exec(toml)?.[1]
  t.match(toml, /^\[updates\]\nstrategy = "fleet_lock"\n\n\[updates\.fleet_lock\]\nbase_url = "/, toml)
  t.ok(baseUrl, `base_url with a trailing slash: ${baseUrl}`)
  const base = new URL(baseUrl!).pathname // Zincati joins v1/... onto it
  t.notOk((await app.inject({ method: 'GET', url: `/ignition?mac=${FCOS_MAC}&os=installed` })).body.includes('fleetlock/'), 'no credential without the uuid')

  // Zincati: initialization (unlock if held), then steady state; an update: pre-reboot; after the reboot, steady-state.
  t.equal((await post(app, `${base}v1/steady-state`, body('machine-id-1'))).statusCode, 200, 'init: unlock of a slot not held succeeds')
  const locked = await post(app, `${base}v1/pre-reboot`, body('machine-id-1'))
  t.equal(locked.statusCode, 200, locked.body)
  t.same(locked.json(), {})
  t.equal((await post(app, `${base}v1/pre-reboot`, body('machine-id-1'))).statusCode, 200, 'recursive: locking again succeeds')
  let group = (await admin(app, 'GET', '/api/v1/locks/default')).json()
  t.match(group, { name: 'default', slots: 1, free: 0, holders: [{ id: uuidOf(1) }] }, 'one slot, held in the machine\'s name')

  // A second machine, its own credential: the semaphore is full.
  await discoverMachines(app, [2])
  const credentials = credentialsOf(engine)
  const other = `/fleetlock/${credentials.issue(uuidOf(2))}/`
  const full = await post(app, `${other}v1/pre-reboot`, body('machine-id-2'))
  t.equal(full.statusCode, 409)
  t.equal(full.json().kind, 'failed_lock_semaphore_full')
  t.match(full.json().value, /1 of 1 slot/)
  t.equal((await post(app, `${other}v1/steady-state`, body('machine-id-1'))).statusCode, 200, "another machine sending the holder's client id...")
  t.match((await admin(app, 'GET', '/api/v1/locks/default')).json().holders, [{ id: uuidOf(1) }], '...cannot release its slot')

  t.equal((await post(app, `${base}v1/steady-state`, body('machine-id-1'))).statusCode, 200, 'after the reboot: steady state releases')
  t.equal((await post(app, `${other}v1/pre-reboot`, body('machine-id-2'))).statusCode, 200, 'the slot is free for the next machine')

  // Errors, each with its kind, none changing anything.
  const before = (await admin(app, 'GET', '/api/v1/locks')).body
  const cases: [string, string, unknown, Record<string, string>, number, string][] = [
    ['missing header', `${base}v1/pre-reboot`, body('x'), {}, 400, 'missing_fleet_lock_header'],
    ['header not "true"', `${base}v1/pre-reboot`, body('x'), { 'fleet-lock-protocol': 'yes' }, 400, 'missing_fleet_lock_header'],
    ['bad group', `${base}v1/pre-reboot`, body('x', 'bad group!'), FLEETLOCK, 400, 'invalid_client_params'],
    ['empty group', `${base}v1/pre-reboot`, body('x', ''), FLEETLOCK, 400, 'invalid_client_params'],
    ['empty id', `${base}v1/pre-reboot`, body(''), FLEETLOCK, 400, 'invalid_client_params'],
    ['no client_params', `${base}v1/pre-reboot`, { id: 'x' }, FLEETLOCK, 400, 'invalid_client_params'],
    ['forged credential', `/fleetlock/${uuidOf(1)}.${'A'.repeat(43)}/v1/pre-reboot`, body('x'), FLEETLOCK, 403, 'invalid_machine_credential'],
    ['no credential in the base URL', '/fleetlock/v1/pre-reboot', body('x'), FLEETLOCK, 403, 'invalid_machine_credential'],
  ]
  for (const [name, url, payload, headers, status, kind] of cases) {
    const response = await post(app, url, payload, headers)
    t.equal(response.statusCode, status, `${name}: ${response.statusCode}`)
    t.equal(response.json().kind, kind, `${name}: kind ${kind}`)
    t.ok(typeof response.json().value === 'string' && response.json().value.length > 0, `${name}: a value a person can read`)
  }
  const malformed = await app.inject({ method: 'POST', url: `${base}v1/pre-reboot`, headers: { ...FLEETLOCK, 'content-type': 'application/json' }, payload: '{"client_params":' })
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.json().kind, 'invalid_client_params', 'malformed JSON answers in FleetLock shape too')
  t.equal((await admin(app, 'GET', '/api/v1/locks')).body, before, 'no error changed the semaphore')
  group = (await admin(app, 'GET', '/api/v1/locks/default')).json()
  t.equal(group.holders.length, 1)
})

t.test('operators: holders, slot changes that take effect, TTL, force-release, delete', async (t) => {
  const engine = await started(t)
  const app = engine.engine.app
  const credentials = credentialsOf(engine)
  // Machines in no cluster share the `default` group; a machine locks in its own group only.
  const lockAs = (n: number) => post(app, `/fleetlock/${credentials.issue(uuidOf(n))}/v1/pre-reboot`, body(`m${n}`))
  await discoverMachines(app, [1, 2, 3, 4, 5, 6, 7])

  t.equal((await admin(app, 'PUT', '/api/v1/locks/default', { slots: 2 })).statusCode, 200)
  t.equal((await lockAs(1)).statusCode, 200)
  t.equal((await lockAs(2)).statusCode, 200)
  t.equal((await lockAs(3)).statusCode, 409, '2 slots, 2 holders: full')
  t.equal((await admin(app, 'PUT', '/api/v1/locks/default', { slots: 3 })).json().free, 1, 'raising the slots takes effect at once')
  t.equal((await lockAs(3)).statusCode, 200)
  const lowered = await admin(app, 'PUT', '/api/v1/locks/default', { slots: 1 })
  t.match(lowered.json(), { slots: 1, free: 0, holders: [{ id: uuidOf(1) }, { id: uuidOf(2) }, { id: uuidOf(3) }] }, 'lowering evicts nobody')
  await post(app, `/fleetlock/${credentials.issue(uuidOf(1))}/v1/steady-state`, body('m1'))
  t.equal((await lockAs(4)).statusCode, 409, 'with 2 holders left and 1 slot, new locks wait')

  const forced = await admin(app, 'DELETE', `/api/v1/locks/default/holders/${uuidOf(2)}`)
  t.equal(forced.statusCode, 200, forced.body)
  t.same(forced.json().holders.map((holder: { id: string }) => holder.id), [uuidOf(3)])
  t.equal((await admin(app, 'DELETE', `/api/v1/locks/default/holders/${uuidOf(2)}`)).json().code, 'LOCK_HOLDER_NOT_FOUND')
  t.equal((await admin(app, 'DELETE', '/api/v1/locks/default')).json().code, 'LOCK_GROUP_HELD')
  t.equal((await admin(app, 'DELETE', `/api/v1/locks/default/holders/${uuidOf(3)}`)).statusCode, 200)

  // TTL: a holder that never comes back is taken back.
  t.equal((await admin(app, 'PUT', '/api/v1/locks/default', { slots: 1, ttl_seconds: 1 })).statusCode, 200)
  const first = await lockAs(5)
  t.equal(first.statusCode, 200)
  const held = (await admin(app, 'GET', '/api/v1/locks/default')).json().holders[0]
  t.ok(Date.parse(held.expires_at) - Date.parse(held.acquired_at) === 1000, 'the slot carries its expiry')
  t.equal((await lockAs(6)).statusCode, 409)
  await sleep(1100)
  t.same((await admin(app, 'GET', '/api/v1/locks/default')).json().holders, [], 'expired: listed as free')
  t.equal((await lockAs(6)).statusCode, 200, 'and the next machine gets it')

  // A machine credential neither locks in another group nor creates one by naming it.
  const elsewhere = await post(app, `/fleetlock/${credentials.issue(uuidOf(7))}/v1/pre-reboot`, body('m7', 'workers'))
  t.match({ status: elsewhere.statusCode, ...elsewhere.json() }, { status: 400, kind: 'invalid_client_params', value: /not this machine's lock group "default"/ })
  t.equal((await admin(app, 'GET', '/api/v1/locks/workers')).json().code, 'LOCK_GROUP_NOT_FOUND', 'no group was created')

  // Bad admin input changes nothing.
  for (const [url, payload, code] of [
    ['/api/v1/locks/bad%20name', { slots: 1 }, 'INVALID_LOCK_GROUP'],
    ['/api/v1/locks/workers', { slots: -1 }, 'VALIDATION_FAILED'],
    ['/api/v1/locks/workers', { slots: 1, extra: true }, 'VALIDATION_FAILED'],
    ['/api/v1/locks/workers', { slots: 1, ttl_seconds: 0 }, 'VALIDATION_FAILED'],
  ] as const) {
    const response = await admin(app, 'PUT', url, payload)
    t.equal(response.json().code, code, `${url} ${JSON.stringify(payload)}`)
  }
  t.equal((await admin(app, 'GET', '/api/v1/locks/nope')).json().code, 'LOCK_GROUP_NOT_FOUND')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/locks' })).statusCode, 401, 'the operator view needs the token')
})

t.test('40 machines racing for 3 slots: exactly 3 win; holders survive a restart', async (t) => {
  const engine = await started(t)
  const app = engine.engine.app
  const credentials = credentialsOf(engine)
  await admin(app, 'PUT', '/api/v1/locks/default', { slots: 3 })
  await discoverMachines(app, Array.from({ length: 40 }, (_, index) => 100 + index))
  const answers = await Promise.all(
    Array.from({ length: 40 }, (_, index) => post(app, `/fleetlock/${credentials.issue(uuidOf(100 + index))}/v1/pre-reboot`, body(`m${index}`))),
  )
  t.equal(answers.filter((answer) => answer.statusCode === 200).length, 3, '3 granted')
  t.equal(answers.filter((answer) => answer.statusCode === 409).length, 37, '37 told the semaphore is full')
  const holders = (await admin(app, 'GET', '/api/v1/locks/default')).json().holders
  t.equal(holders.length, 3)
  await engine.engine.close()
  const again = await startTestEngine({ dataDir: engine.dataDir, contentDir: engine.contentDir })
  t.teardown(() => again.engine.close())
  t.same((await admin(again.engine.app, 'GET', '/api/v1/locks/default')).json().holders, holders, 'the same holders after a restart')
})

t.test('the per-machine rolling endpoints: a machine takes and gives back its own slot', async (t) => {
  const engine = await started(t)
  const app = engine.engine.app
  const credentials = credentialsOf(engine)
  const as = (n: number) => ({ authorization: `Bearer ${credentials.issue(uuidOf(n))}` })
  const rolling = (method: 'GET' | 'POST', url: string, n?: number) => app.inject({ method, url, headers: n === undefined ? {} : as(n) })
  await discoverMachines(app, [1, 2])

  t.match((await rolling('GET', '/lifecycle/rolling', 1)).json(), { uuid: uuidOf(1), group: 'default', holding: false })
  t.match((await rolling('POST', '/lifecycle/rolling/lock', 1)).json(), { holding: true, slots: 1, holders: 1 })
  t.equal((await rolling('POST', '/lifecycle/rolling/lock', 1)).statusCode, 200, 'again: still held')
  const full = await rolling('POST', '/lifecycle/rolling/lock', 2)
  t.equal(full.statusCode, 409)
  t.equal(full.json().code, 'SEMAPHORE_FULL')
  const notHolder = await rolling('POST', '/lifecycle/rolling/unlock', 2)
  t.equal(notHolder.statusCode, 409)
  t.equal(notHolder.json().code, 'NOT_LOCK_HOLDER', 'a machine cannot release a slot it does not hold')
  t.match((await rolling('POST', '/lifecycle/rolling/unlock', 1)).json(), { holding: false, holders: 0 })
  const anonymous = await rolling('POST', '/lifecycle/rolling/lock')
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.json().code, 'MACHINE_CREDENTIAL_REQUIRED')
  const forged = await app.inject({ method: 'POST', url: '/lifecycle/rolling/lock', headers: { authorization: `Bearer ${uuidOf(3)}.${'x'.repeat(43)}` } })
  t.equal(forged.statusCode, 401)
})
