import path from 'node:path'
import { sleep } from '../../helpers/wait.ts'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

const uuidOf = (n: number) => `4c4c4544-0042-3510-8050-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:0d:${n.toString(16).padStart(2, '0')}`

async function engineWith(t: { teardown(fn: () => unknown): void }, env: Record<string, string>) {
  const started = await startTestEngine({ env })
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  return started.engine.app
}

/** Discovers machine n and moves it to scheduled through the admin API (there is no scheduler yet). */
async function scheduledMachine(app: FastifyInstance, n: number) {
  const discovered = await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n) }] } })
  if (discovered.statusCode !== 200) throw new Error(discovered.body)
  const moved = await app.inject({ method: 'POST', url: `/api/v1/machines/${uuidOf(n)}/transitions`, headers: auth, payload: { to: 'scheduled', reason: 'test: scheduled by hand' } })
  if (moved.statusCode !== 200) throw new Error(moved.body)
}

/** Both halves of machine n's identity, as the installer sends them. */
const id = (n: number) => `uuid=${uuidOf(n)}&mac=${macOf(n)}`
const ask = (app: FastifyInstance, query: string) => app.inject({ method: 'POST', url: `/install-authorization?${query}`, payload: {} })
const askWithGet = (app: FastifyInstance, query: string) => app.inject({ method: 'GET', url: `/install-authorization?${query}` })
const report = (app: FastifyInstance, outcome: string, query: string, payload?: unknown) =>
  app.inject({ method: 'POST', url: `/lifecycle/install/${outcome}?${query}`, ...(payload === undefined ? {} : { payload: payload as string }) })
const machine = async (app: FastifyInstance, n: number) => (await app.inject({ method: 'GET', url: `/api/v1/machines/${uuidOf(n)}`, headers: auth })).json()
const history = async (app: FastifyInstance, n: number) =>
  (await machine(app, n)).events.map((event: { from_state: string; to_state: string; reason: string }) => `${event.from_state} -> ${event.to_state}: ${event.reason}`)

t.test('install flow over HTTP with K=2', async (t) => {
  const app = await engineWith(t, { SLIPWAY_INSTALL_MAX_CONCURRENT: '2' })
  for (const n of [1, 2, 3, 4]) await scheduledMachine(app, n)

  t.test('two granted, the third denied (403, with an event), then granted once a slot is freed', async (t) => {
    const first = await askWithGet(app, id(1))
    t.equal(first.statusCode, 200, first.body)
    t.same(first.json(), { authorized: true }, "no token needed; Enjoliver's GET form")
    t.same((await ask(app, `uuid=${uuidOf(2)}&mac=${macOf(2).replaceAll(':', '-').toUpperCase()}`)).json(), { authorized: true }, 'the boot MAC in any form')
    const third = await ask(app, id(3))
    t.equal(third.statusCode, 403)
    t.same(third.json(), { authorized: false, code: 'INSTALL_SLOTS_FULL', message: 'install authorization denied: 2/2 installing; ask again later' })
    t.equal((await machine(app, 3)).state, 'scheduled')
    t.same((await history(app, 3)).slice(-1), ['scheduled -> scheduled: install authorization denied: 2/2 installing'])

    t.same((await ask(app, id(1))).json(), { authorized: true }, 'asking again while installing is granted')
    t.equal((await history(app, 1)).length, 3, '...without a new event')

    const done = await report(app, 'success', id(1))
    t.equal(done.statusCode, 200, done.body)
    t.same(done.json(), { uuid: uuidOf(1), state: 'installed' }, 'no body is fine')
    t.equal((await ask(app, id(3))).statusCode, 200)
    t.same(await history(app, 1), [
      'null -> discovered: first discovery report',
      'discovered -> scheduled: test: scheduled by hand',
      'scheduled -> installing: install authorization granted',
      'installing -> installed: install report: success',
    ])
  })

  t.test('reports: fail frees a slot; machines not installing are refused', async (t) => {
    const failed = await report(app, 'fail', id(2), { message: 'flatcar-install: no disk /dev/vda' })
    t.equal(failed.statusCode, 200, failed.body)
    t.same(failed.json(), { uuid: uuidOf(2), state: 'install_failed' })
    t.same((await history(app, 2)).slice(-1), ['installing -> install_failed: install report: fail: flatcar-install: no disk /dev/vda'])
    t.equal((await ask(app, id(4))).statusCode, 200, 'the failed install freed its slot')

    const before = (await machine(app, 1)).events.length
    for (const [outcome, n] of [['success', 1], ['fail', 2]] as const) {
      const refused = await report(app, outcome, id(n))
      t.equal(refused.statusCode, 409, refused.body)
      t.equal(refused.json().code, 'INVALID_TRANSITION')
    }
    const notScheduled = await ask(app, id(1))
    t.equal(notScheduled.statusCode, 409, 'an installed machine cannot ask')
    t.match(notScheduled.json().message, /is installed; only a scheduled machine/)
    t.equal((await machine(app, 1)).events.length, before, 'refusals write nothing')
  })

  t.test('bad requests', async (t) => {
    const cases: [string, () => ReturnType<typeof ask>, number, string][] = [
      ['unknown uuid', () => ask(app, id(99)), 404, 'MACHINE_NOT_FOUND'],
      ["a known uuid with another machine's MAC", () => ask(app, `uuid=${uuidOf(4)}&mac=${macOf(3)}`), 404, 'MACHINE_NOT_FOUND'],
      ['the MAC alone', () => ask(app, `mac=${macOf(4)}`), 400, 'MACHINE_IDENTITY_MISSING'],
      ['the uuid alone', () => askWithGet(app, `uuid=${uuidOf(4)}`), 400, 'MACHINE_IDENTITY_MISSING'],
      ['bad mac', () => ask(app, `uuid=${uuidOf(4)}&mac=52:54:zz:00:00:01`), 400, 'INVALID_MAC'],
      ['bad uuid', () => report(app, 'success', `uuid=nope&mac=${macOf(3)}`), 400, 'INVALID_UUID'],
      ['no identity', () => ask(app, ''), 400, 'MACHINE_IDENTITY_MISSING'],
      ['report by MAC alone', () => report(app, 'fail', `mac=${macOf(3)}`), 400, 'MACHINE_IDENTITY_MISSING'],
      ['report unknown machine', () => report(app, 'fail', id(99)), 404, 'MACHINE_NOT_FOUND'],
      ['unknown body field', () => report(app, 'success', id(3), { messages: 'x' }), 400, 'VALIDATION_FAILED'],
      ['17 KiB body', () => report(app, 'fail', id(3), { message: 'x'.repeat(17 * 1024) }), 413, 'BODY_TOO_LARGE'],
    ]
    for (const [name, send, status, code] of cases) {
      const response = await send()
      t.equal(response.statusCode, status, `${name}: ${response.body.slice(0, 200)}`)
      t.equal(response.json().code, code, name)
    }
    t.equal((await machine(app, 3)).state, 'installing', 'nothing changed')
    t.equal((await machine(app, 4)).state, 'installing')
  })
})

t.test('20 concurrent asks for 20 scheduled machines never grant more than K', async (t) => {
  const app = await engineWith(t, { SLIPWAY_INSTALL_MAX_CONCURRENT: '2' })
  const machines = Array.from({ length: 20 }, (_, index) => index + 1)
  for (const n of machines) await scheduledMachine(app, n)
  const answers = await Promise.all(machines.map((n) => ask(app, id(n))))
  t.equal(answers.filter((answer) => answer.statusCode === 200).length, 2)
  t.equal(answers.filter((answer) => answer.statusCode === 403).length, 18)
  const installing = (await app.inject({ method: 'GET', url: '/api/v1/machines?state=installing', headers: auth })).json()
  t.equal(installing.length, 2)
})

t.test('a slot held past install.timeoutSeconds is released', async (t) => {
  const app = await engineWith(t, { SLIPWAY_INSTALL_MAX_CONCURRENT: '1', SLIPWAY_INSTALL_TIMEOUT_SECONDS: '1' })
  await scheduledMachine(app, 1)
  await scheduledMachine(app, 2)
  t.equal((await ask(app, id(1))).statusCode, 200)
  t.equal((await ask(app, id(2))).statusCode, 403)
  await sleep(1100)
  t.equal((await ask(app, id(2))).statusCode, 200)
  t.equal((await machine(app, 1)).state, 'install_failed')
  t.same((await history(app, 1)).slice(-1), ['installing -> install_failed: install timed out'])
  t.equal((await report(app, 'success', id(1))).statusCode, 409, 'the late report is refused')
})
