import path from 'node:path'
import { sleep } from '../../helpers/wait.ts'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

const UUID_A = '4c4c4544-0042-3510-8050-b4c04f4e3432'
const UUID_B = '4c4c4544-0042-3510-8050-b4c04f4e3433'
const report = (uuid: string, bootMac: string, extra: Record<string, unknown> = {}) => ({
  'boot-info': { uuid, mac: bootMac, 'random-id': 'r1' },
  interfaces: [
    { name: 'eth0', mac: '52:54:00:00:0a:01', ipv4: '10.0.0.11', cidrv4: '10.0.0.11/24', gateway: '10.0.0.1', fqdn: ['a.lab'] },
    { name: 'eth1', mac: bootMac, ipv4: '172.20.0.11', cidrv4: '172.20.0.11/21' },
  ],
  disks: [{ path: '/dev/vda', 'size-bytes': 10737418240 }],
  memory: { 'total-bytes': 2147483648 },
  ...extra,
})

t.test('discovery: machine-facing report, admin inventory, state history, restart persistence', async (t) => {
  const first = await startTestEngine()
  const scratch = path.dirname(first.dataDir)
  t.teardown(() => removeTree(scratch))
  let app = first.engine.app
  let closed = false
  t.teardown(async () => {
    if (!closed) await first.engine.close()
  })
  const admin = (method: 'GET' | 'PUT' | 'POST', url: string, payload?: unknown, headers: Record<string, string> = auth) =>
    app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) })
  // From the boot NIC's address, as the agent sends: once a machine has a role, reports from elsewhere are refused.
  const discover = (payload: unknown, headers: Record<string, string> = {}) => app.inject({ method: 'POST', url: '/discovery', headers, payload: payload as string, remoteAddress: '172.20.0.11' })
  const machineCount = async () => (await admin('GET', '/api/v1/machines')).json().length as number

  let firstSeen = ''
  t.test('a new machine, then the same machine again', async (t) => {
    const created = await discover(report(UUID_A.toUpperCase(), '52-54-00-00-0B-01'))
    t.equal(created.statusCode, 200, created.body)
    t.same(created.json(), { 'new-discovery': true, uuid: UUID_A, state: 'discovered' }, 'no token needed; uuid normalised')

    const machine = (await admin('GET', `/api/v1/machines/${UUID_A}`)).json()
    t.equal(machine.boot_mac, '52:54:00:00:0b:01')
    t.same(machine.interfaces.map((nic: { name: string; is_boot: boolean }) => [nic.name, nic.is_boot]), [['eth0', false], ['eth1', true]], 'boot NIC by MAC, not position')
    t.same(machine.disks, [{ path: '/dev/vda', size_bytes: 10737418240, model: null, serial: null }])
    t.same(machine.facts, { memory: { totalBytes: 2147483648 } })
    t.equal(machine.first_seen_at, machine.last_seen_at)
    t.equal(machine.events.length, 1)
    t.match(machine.events[0], { from_state: null, to_state: 'discovered', reason: 'first discovery report', at: machine.first_seen_at })
    firstSeen = machine.first_seen_at

    await sleep(5)
    const again = await discover(report(UUID_A, '52:54:00:00:0b:01', { memory: { 'total-bytes': 4294967296 }, disks: [] }))
    t.same(again.json(), { 'new-discovery': false, uuid: UUID_A, state: 'discovered' })
    const updated = (await admin('GET', `/api/v1/machines/${UUID_A}`)).json()
    t.same(updated.facts, { memory: { totalBytes: 4294967296 } }, 'facts replaced')
    t.same(updated.disks, [], 'disks replaced')
    t.equal(updated.first_seen_at, firstSeen)
    t.ok(updated.last_seen_at > firstSeen, 'last_seen moved')
    t.equal(updated.events.length, 1, 're-discovery is not a state change')
    t.equal(await machineCount(), 1)
  })

  t.test('bad reports: a stable 4xx code, and nothing written', async (t) => {
    const before = (await admin('GET', '/api/v1/machines')).body
    const missingUuid = report(UUID_B, '52:54:00:00:0b:02') as Record<string, unknown>
    delete (missingUuid['boot-info'] as Record<string, unknown>).uuid
    const cases: [string, unknown, Record<string, string>, number, string][] = [
      ['missing uuid', missingUuid, {}, 400, 'VALIDATION_FAILED'],
      ['malformed uuid', report('4c4c4544-nope', '52:54:00:00:0b:02'), {}, 400, 'VALIDATION_FAILED'],
      ['malformed MAC', report(UUID_B, '52:54:00:00:0b:0g'), {}, 400, 'INVALID_MAC'],
      ['boot interface missing', { ...report(UUID_B, '52:54:00:00:0b:02'), interfaces: [{ name: 'eth0', mac: '52:54:00:00:0a:09' }] }, {}, 400, 'BOOT_INTERFACE_MISSING'],
      ['too many interfaces', { ...report(UUID_B, '52:54:00:00:0b:02'), interfaces: Array.from({ length: 65 }, (_, i) => ({ name: `e${i}`, mac: '52:54:00:00:0b:02' })) }, {}, 400, 'VALIDATION_FAILED'],
      ['wrong type', { ...report(UUID_B, '52:54:00:00:0b:02'), disks: [{ path: '/dev/vda', 'size-bytes': '10G' }] }, {}, 400, 'VALIDATION_FAILED'],
      ['70 KiB body', { ...report(UUID_B, '52:54:00:00:0b:02'), 'ignition-journal': Array.from({ length: 70 }, () => 'x'.repeat(1024)) }, {}, 413, 'BODY_TOO_LARGE'],
      ['malformed JSON', '{"boot-info": {', { 'content-type': 'application/json' }, 400, 'MALFORMED_JSON'],
    ]
    for (const [name, payload, headers, status, code] of cases) {
      const response = await discover(typeof payload === 'string' ? payload : JSON.stringify(payload), { 'content-type': 'application/json', ...headers })
      t.equal(response.statusCode, status, `${name}: ${response.body.slice(0, 200)}`)
      t.equal(response.json().code, code, name)
    }
    t.equal((await admin('GET', '/api/v1/machines')).body, before, 'nothing changed')
  })

  t.test('admin routes need the token; the listing is not machine-facing', async (t) => {
    for (const [method, url] of [['GET', '/api/v1/machines'], ['GET', `/api/v1/machines/${UUID_A}`], ['PUT', `/api/v1/machines/${UUID_A}/labels`], ['GET', '/api/v1/discovery'], ['POST', `/api/v1/machines/${UUID_A}/transitions`]] as const) {
      const response = await admin(method, url, method === 'GET' ? undefined : {}, {})
      t.equal(response.statusCode, 401, `${method} ${url}`)
    }
    t.equal((await app.inject({ method: 'GET', url: '/discovery' })).statusCode, 404, 'no unauthenticated inventory')
    const listing = await admin('GET', '/api/v1/discovery')
    t.equal(listing.statusCode, 200)
    t.same(listing.json(), [
      {
        'boot-info': { uuid: UUID_A, mac: '52:54:00:00:0b:01', 'random-id': 'r1' },
        interfaces: [
          { name: 'eth0', mac: '52:54:00:00:0a:01', ipv4: '10.0.0.11', cidrv4: '10.0.0.11/24', gateway: '10.0.0.1', fqdn: ['a.lab'], 'as-boot': false },
          { name: 'eth1', mac: '52:54:00:00:0b:01', ipv4: '172.20.0.11', cidrv4: '172.20.0.11/21', gateway: '', fqdn: [], 'as-boot': true },
        ],
        disks: [],
      },
    ])
  })

  t.test('labels and filters', async (t) => {
    t.equal((await discover(report(UUID_B, '52:54:00:00:0b:02'))).json()['new-discovery'], true)
    const put = await admin('PUT', `/api/v1/machines/${UUID_A}/labels`, { rack: 'r1', role: 'control-plane' })
    t.equal(put.statusCode, 200, put.body)
    await admin('PUT', `/api/v1/machines/${UUID_B}/labels`, { rack: 'r1' })
    const uuids = async (query: string) => {
      const response = await admin('GET', `/api/v1/machines${query}`)
      t.equal(response.statusCode, 200, `GET /api/v1/machines${query}`)
      return response.json().map((machine: { uuid: string }) => machine.uuid)
    }
    t.same(await uuids(''), [UUID_A, UUID_B])
    t.same(await uuids('?label=rack=r1'), [UUID_A, UUID_B])
    t.same(await uuids('?label=rack=r1&label=role=control-plane'), [UUID_A])
    t.same(await uuids('?label=rack=r2'), [])
    t.same(await uuids('?mac=52-54-00-00-0B-02'), [UUID_B], 'boot MAC, any form')
    t.same(await uuids('?mac=52:54:00:00:0a:01'), [UUID_A, UUID_B], 'any interface MAC')
    t.same(await uuids('?state=discovered'), [UUID_A, UUID_B])
    t.same(await uuids('?state=discovered&cluster=edge'), [], '?cluster= keeps only the members of that cluster')
    t.same(await uuids('?state=installed'), [])
    t.equal((await admin('GET', '/api/v1/machines?state=bogus')).json().code, 'VALIDATION_FAILED')
    t.equal((await admin('GET', '/api/v1/machines?mac=nope')).json().code, 'INVALID_MAC')
    t.equal((await admin('GET', '/api/v1/machines?label=norack')).json().code, 'INVALID_LABEL_FILTER')
    t.equal((await admin('PUT', `/api/v1/machines/${UUID_B}/labels`, { 'bad key!': 'x' })).json().code, 'VALIDATION_FAILED', 'a key outside the label pattern is refused by the schema')
    t.equal((await admin('PUT', '/api/v1/machines/4c4c4544-0042-3510-8050-b4c04f4e3499/labels', {})).json().code, 'MACHINE_NOT_FOUND')
    t.equal((await admin('GET', '/api/v1/machines/4c4c4544-0042-3510-8050-b4c04f4e349z')).json().code, 'INVALID_UUID')

    // Replace, not merge.
    await admin('PUT', `/api/v1/machines/${UUID_A}/labels`, { role: 'node' })
    t.same((await admin('GET', `/api/v1/machines/${UUID_A}`)).json().labels, { role: 'node' })
    t.same((await discover(report(UUID_A, '52:54:00:00:0b:01'))).statusCode, 200)
    t.same((await admin('GET', `/api/v1/machines/${UUID_A}`)).json().labels, { role: 'node' }, 'labels survive re-discovery')
  })

  t.test('transitions are recorded with timestamps; illegal ones are 409 and change nothing', async (t) => {
    const moves: [string, string][] = [['scheduled', 'scheduler: control-plane'], ['scheduled', 'install denied: 2 installs running'], ['installing', 'install granted'], ['installed', 'install report: success']]
    for (const [to, reason] of moves) {
      const response = await admin('POST', `/api/v1/machines/${UUID_A}/transitions`, { to, reason })
      t.equal(response.statusCode, 200, response.body)
      t.equal(response.json().to_state, to)
      t.match(response.json().at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    }
    const refused = await admin('POST', `/api/v1/machines/${UUID_A}/transitions`, { to: 'installing', reason: 'again' })
    t.equal(refused.statusCode, 409)
    t.equal(refused.json().code, 'INVALID_TRANSITION')
    t.equal((await admin('POST', `/api/v1/machines/${UUID_A}/transitions`, { to: 'sideways', reason: 'x' })).json().code, 'VALIDATION_FAILED')

    const rediscovered = await discover(report(UUID_A, '52:54:00:00:0b:01'))
    t.same(rediscovered.json(), { 'new-discovery': false, uuid: UUID_A, state: 'installed' }, 'an installed machine that reports again stays installed')

    const machine = (await admin('GET', `/api/v1/machines/${UUID_A}`)).json()
    t.equal(machine.state, 'installed')
    t.same(
      machine.events.map((event: { from_state: string | null; to_state: string; reason: string }) => [event.from_state, event.to_state, event.reason]),
      [[null, 'discovered', 'first discovery report'], ['discovered', 'scheduled', 'scheduler: control-plane'], ['scheduled', 'scheduled', 'install denied: 2 installs running'], ['scheduled', 'installing', 'install granted'], ['installing', 'installed', 'install report: success']],
    )
    const times = machine.events.map((event: { at: string }) => event.at)
    t.same([...times].sort(), times, 'timestamps in order')
    t.equal(machine.state_changed_at, times.at(-1))
  })

  t.test('everything survives a restart', async (t) => {
    const before = (await admin('GET', `/api/v1/machines/${UUID_A}`)).json()
    await first.engine.close()
    closed = true
    const second = await startTestEngine({ dataDir: first.dataDir, contentDir: first.contentDir })
    t.teardown(() => second.engine.close())
    app = second.engine.app
    t.same((await admin('GET', `/api/v1/machines/${UUID_A}`)).json(), before)
    t.equal(await machineCount(), 2)
    t.equal((await discover(report(UUID_B, '52:54:00:00:0b:02'))).json()['new-discovery'], false)
  })
})

t.test('the BMC a machine reports: kept in its facts; a hostile bmc object is refused with 400 and changes nothing', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const discover = (payload: unknown) => app.inject({ method: 'POST', url: '/discovery', headers: { 'content-type': 'application/json' }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload), remoteAddress: '172.20.0.11' })
  const machine = async () => (await app.inject({ method: 'GET', url: `/api/v1/machines/${UUID_A}`, headers: auth })).json()
  const bmc = { mac: '00-17-A4-49-AB-70', ipv4: '192.168.1.41', 'ipv4-assignment': 'dhcp', channel: 2, source: 'ipmitool lan print' }

  const reported = await discover(report(UUID_A, '52:54:00:00:0b:01', { bmc }))
  t.equal(reported.statusCode, 200, reported.body)
  t.same((await machine()).facts.bmc, { mac: '00:17:a4:49:ab:70', ipv4: '192.168.1.41', ipv4Assignment: 'dhcp', channel: 2, source: 'ipmitool lan print' }, 'shown with the other facts')

  const before = await app.inject({ method: 'GET', url: '/api/v1/machines', headers: auth })
  const nested = (depth: number): unknown => (depth === 0 ? '10.0.0.1' : { a: nested(depth - 1) })
  const hostile: [string, unknown, string][] = [
    ['an IPv4 address past 255', { ...bmc, ipv4: '999.1.1.1' }, 'INVALID_IP'],
    ['the unset address', { ...bmc, ipv4: '0.0.0.0' }, 'INVALID_IP'],
    ['a link-local IPv6 address', { ...bmc, ipv6: 'fe80::217:a4ff:fe49:ab70' }, 'INVALID_IP'],
    ['an all-zero MAC', { ...bmc, mac: '00:00:00:00:00:00' }, 'INVALID_MAC'],
    ['a 30 KiB string', { ...bmc, ipv4: 'x'.repeat(30 * 1024) }, 'VALIDATION_FAILED'],
    ['a source that forges log lines', { ...bmc, source: 'ipmitool\nslipway-agent: installed' }, 'VALIDATION_FAILED'],
    ['nested junk', { ...bmc, ipv4: nested(3), extra: [[{}]] }, 'VALIDATION_FAILED'],
    ['junk nested 200 deep', { ...bmc, ipv4: nested(200) }, 'TOO_DEEP'],
    ['an unknown field', { ...bmc, password: 'calvin' }, 'VALIDATION_FAILED'],
    ['a list', [bmc, bmc], 'VALIDATION_FAILED'],
  ]
  for (const [name, value, code] of hostile) {
    // UUID_B is new: a refused report must not create it; UUID_A is known: it must not change.
    for (const uuid of [UUID_A, UUID_B]) {
      const refused = await discover(report(uuid, uuid === UUID_A ? '52:54:00:00:0b:01' : '52:54:00:00:0b:02', { bmc: value }))
      t.equal(refused.statusCode, 400, `${name}: ${refused.body.slice(0, 200)}`)
      t.equal(refused.json().code, code, name)
      t.ok(refused.body.length < 1024, `${name}: the answer does not echo the input (${refused.body.length} bytes)`)
    }
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/machines', headers: auth })).body, before.body, 'nothing changed')

  // A report without it (ipmitool missing or failing this boot) replaces the facts, as every report does.
  t.equal((await discover(report(UUID_A, '52:54:00:00:0b:01'))).statusCode, 200)
  t.notOk('bmc' in (await machine()).facts, 'no BMC reported, none kept')
})
