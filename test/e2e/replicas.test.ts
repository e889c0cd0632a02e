/**
 * Two engine replicas on one PostgreSQL database, over real HTTP on loopback: they share the
 * secrets key file; 1,000 concurrent FleetLock attempts split across both never hold more slots than
 * the group has; DHCP allocation on both never gives one address to two MACs; exactly one replica
 * runs the scheduler, a discovery on the other reaches it, and what one replica changed (a pass's
 * memberships, a proxy route) reaches the other's memory; when the holder crashes (closes without
 * releasing its leases) the other takes the lease over after the TTL and schedules.
 */
import { mkdtempSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { dhcpPoolOf } from '../../src/core/dhcp/dhcp-settings.ts'
import { allocateAddress, confirmAddress, OFFER_HOLD_SECONDS, type PoolCursor } from '../../src/core/dhcp/lease-policy.ts'
import { openStore } from '../../src/storage/db.ts'
import { dhcpLeaseStore } from '../../src/storage/repositories/dhcp-leases.ts'
import { machineCredentials } from '../helpers/machine-credentials.ts'
import { auth, removeTree, startTestEngine, type TestEngine } from '../helpers/engine.ts'
import { freshPostgresDatabase, postgresAvailable } from '../helpers/postgres.ts'
import { sampleLockHolders } from '../helpers/lock-holder-sampler.ts'
import { sleep, until } from '../helpers/wait.ts'

// Long enough that a busy test machine's event-loop stalls never pass for a crash; short enough to wait for.
const LEASE_SECONDS = 5
const uuidOf = (n: number) => `7e1a0000-0000-4000-8000-${String(n).padStart(12, '0')}`
/** The FleetLock test's machines: known to the inventory, apart from the machines the other tests discover. */
const fleetUuidOf = (n: number) => `7e1b0000-0000-4000-8000-${String(n).padStart(12, '0')}`
const machineMacOf = (n: number) => `52:54:00:66:00:${n.toString(16).padStart(2, '0')}`
const dhcpMacOf = (n: number) => `52:54:00:67:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`


interface Replica {
  id: string
  engine: TestEngine
  url: string
  lines: string[]
  /** Parsed log lines of one component. */
  log(component: string): { msg: string; reason?: string; job?: string }[]
}

t.test('two engine replicas on one PostgreSQL database', { skip: postgresAvailable() ? false : 'PostgreSQL is not installed and SLIPWAY_TEST_POSTGRES_URL is not set' }, async (t) => {
  const database = await freshPostgresDatabase()
  const shared = mkdtempSync(path.join(os.tmpdir(), 'slipway-replicas-'))
  const keyFile = path.join(shared, 'secrets.key')
  const replicas: Replica[] = []
  t.teardown(async () => {
    for (const replica of replicas) {
      await replica.engine.engine.close().catch(() => undefined)
      removeTree(path.dirname(replica.engine.dataDir))
    }
    await database.drop()
    removeTree(shared)
  })

  const env = (id: string, extra: Record<string, string> = {}) => ({
    SLIPWAY_DATABASE_DRIVER: 'postgres',
    SLIPWAY_DATABASE_URL: database.url,
    SLIPWAY_DATABASE_POOL_SIZE: '12',
    SLIPWAY_SECRETS_KEY_FILE: keyFile,
    SLIPWAY_REPLICAS_ID: id,
    SLIPWAY_REPLICAS_LEASE_SECONDS: String(LEASE_SECONDS),
    SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '1',
    SLIPWAY_REPLICAS_REFRESH_SECONDS: '1',
    SLIPWAY_HTTP_HOST: '127.0.0.1',
    SLIPWAY_HTTP_PORT: '0',
    SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
    // The FleetLock test plays 1,000 machines from one address: more connections than one client may hold by default.
    SLIPWAY_HTTP_MAX_CONNECTIONS_PER_CLIENT: '2048',
    ...extra,
  })
  const startReplica = async (id: string): Promise<Replica> => {
    const lines: string[] = []
    const engine = await startTestEngine({ env: env(id), logLines: lines })
    const replica: Replica = {
      id,
      engine,
      url: await engine.engine.start(),
      lines,
      log: (component) => lines.map((line) => JSON.parse(line)).filter((line) => line.component === component),
    }
    replicas.push(replica)
    return replica
  }
  const request = async (replica: Replica, method: string, url: string, body?: unknown, headers: Record<string, string> = auth) => {
    const response = await fetch(`${replica.url}${url}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await response.text()
    return { status: response.status, text, json: () => JSON.parse(text) }
  }

  const memberOf = async (uuid: string) =>
    replicas[replicas.length - 1]!.engine.engine.store.selectFrom('cluster_members').select(['cluster', 'role']).where('machine_uuid', '=', uuid).executeTakeFirst()

  const a = await startReplica('replica-a')
  const b = await startReplica('replica-b')

  await t.test('one key file for both: a replica with another key refuses to start, naming the setting', async (t) => {
    const lines: string[] = []
    await t.rejects(
      startTestEngine({ env: env('replica-other-key', { SLIPWAY_SECRETS_KEY_FILE: path.join(shared, 'other.key') }), logLines: lines }),
      { message: /wrong secrets key \(secrets\.keyFile\)/ },
    )
  })

  await t.test('each singleton job runs on exactly one replica', async (t) => {
    for (const job of ['scheduler', 'rollout-runner', 'cluster-health', 'release-reconciler']) {
      const holders = replicas.filter((replica) => replica.engine.engine.jobLeases.all().find((lease) => lease.name === job)?.mayRun())
      t.same(holders.map((replica) => replica.id), ['replica-a'], `${job}: the replica that started first holds its lease`, { leases: await a.engine.engine.store.selectFrom('job_leases').selectAll().execute(), a: a.log('replicas'), b: b.log('replicas') })
    }
    // Three scheduler periods: passes on the holder only.
    const passesBefore = (replica: Replica) => replica.log('scheduler').filter((line) => line.msg === 'scheduler pass done').length
    const [aBefore, bBefore] = [passesBefore(a), passesBefore(b)]
    await sleep(3200)
    t.ok(passesBefore(a) - aBefore >= 2, `replica-a ran ${passesBefore(a) - aBefore} scheduler passes in 3.2 s`)
    t.equal(passesBefore(b) - bBefore, 0, 'replica-b ran none')
    const metrics = await request(b, 'GET', '/metrics')
    t.match(metrics.text, /slipway_job_lease_held\{job="scheduler"\} 0/, "replica-b's metrics say it does not run the scheduler")
    t.match((await request(a, 'GET', '/metrics')).text, /slipway_job_lease_held\{job="scheduler"\} 1/, "replica-a's say it does")
  })

  await t.test('1,000 concurrent FleetLock attempts across both replicas never hold more slots than there are', async (t) => {
    const slots = 3
    // Machines in no cluster lock in the `default` group; a credential counts only for a known machine.
    const put = await request(a, 'PUT', '/api/v1/locks/default', { slots })
    t.equal(put.status, 200, put.text)
    // Both replicas check machine credentials with the shared key.
    const credentials = machineCredentials(keyFile)
    const fleetlock = (replica: Replica, machine: number, step: 'pre-reboot' | 'steady-state') =>
      request(replica, 'POST', `/fleetlock/${credentials.issue(fleetUuidOf(machine))}/v1/${step}`, { client_params: { id: `node-${machine}`, group: 'default' } }, { 'fleet-lock-protocol': 'true' })

    const watcher = openStore({ driver: 'postgres', url: database.url, path: '', poolSize: 1 })
    const now = new Date().toISOString()
    const known = [...Array.from({ length: 1000 }, (_, machine) => machine), ...Array.from({ length: 60 }, (_, i) => 2000 + i)]
    await watcher
      .insertInto('machines')
      .values(known.map((machine) => ({ uuid: fleetUuidOf(machine), boot_mac: `52:54:00:7e:${(machine >> 8).toString(16).padStart(2, '0')}:${(machine & 0xff).toString(16).padStart(2, '0')}`, boot_random_id: null, state: 'installed' as const, state_changed_at: now, facts: '{}', first_seen_at: now, last_seen_at: now, created_at: now, updated_at: now })))
      .execute()
    const sampler = sampleLockHolders(watcher, 'default', 2)
    let sampled = { samples: 0, maxStored: 0 }

    const live = new Set<number>()
    let maxLive = 0
    const outcomes = { locked: 0, full: 0, other: [] as string[] }
    const attempt = async (machine: number) => {
      const replica = replicas[machine % 2]!
      await sleep(Math.random() * 2000)
      const locked = await fleetlock(replica, machine, 'pre-reboot')
      if (locked.status === 409 && locked.json().kind === 'failed_lock_semaphore_full') {
        outcomes.full++
        return
      }
      if (locked.status !== 200) {
        outcomes.other.push(`${locked.status} ${locked.text}`)
        return
      }
      live.add(machine)
      maxLive = Math.max(maxLive, live.size)
      outcomes.locked++
      await sleep(Math.random() * 4)
      // Zincati after its reboot: steady-state, here through the other replica.
      live.delete(machine)
      const released = await fleetlock(replicas[(machine + 1) % 2]!, machine, 'steady-state')
      if (released.status !== 200) outcomes.other.push(`${released.status} ${released.text}`)
    }
    let wave: Awaited<ReturnType<typeof fleetlock>>[] = []
    const started = performance.now()
    try {
      await Promise.all(Array.from({ length: 1000 }, (_, machine) => attempt(machine)))
      wave = await Promise.all(Array.from({ length: 60 }, (_, i) => fleetlock(replicas[i % 2]!, 2000 + i, 'pre-reboot')))
    } finally {
      sampled = await sampler.stop()
    }
    const { samples, maxStored } = sampled
    const stored = await watcher.selectFrom('lock_holders').select('holder').where('lock_group', '=', 'default').execute()
    await watcher.destroy()

    t.same(outcomes.other, [], 'every answer was a slot or FleetLock\'s "semaphore full"')
    t.ok(outcomes.locked >= slots, `${outcomes.locked} got a slot, ${outcomes.full} found the group full (${Math.round(performance.now() - started)} ms)`)
    t.ok(maxLive <= slots, `at most ${slots} machines held a slot at once by their answers (max ${maxLive})`)
    t.ok(maxStored <= slots && samples > 10, `at most ${slots} holders stored at any of ${samples} samples (max ${maxStored})`)
    const winners = wave.flatMap((response, i) => (response.status === 200 ? [fleetUuidOf(2000 + i)] : []))
    t.equal(winners.length, slots, 'a last wave that keeps its slots fills exactly the slots')
    t.same(stored.map((row) => row.holder).sort(), winners.sort(), 'and those are the stored holders')
    const group = (await request(b, 'GET', '/api/v1/locks/default')).json()
    t.equal(group.holders.length, slots, 'both replicas show the same group')
  })

  await t.test('DHCP allocation on both replicas never gives one address to two MACs', async (t) => {
    const settings = { ...a.engine.config.dhcp, mode: 'full' as const, serverAddress: '10.8.0.1', subnet: '10.8.0.0/23', rangeStart: '10.8.0.10', rangeEnd: '10.8.1.9' }
    const pool = dhcpPoolOf(settings)
    // Each replica's DHCP server: its store and its own next-fit cursor.
    const servers = replicas.map((replica) => ({ leases: dhcpLeaseStore(replica.engine.engine.store), cursor: { next: pool.start } as PoolCursor }))
    const now = new Date()
    const offers = await Promise.all(
      Array.from({ length: 200 }, async (_, n) => ({
        mac: dhcpMacOf(n),
        result: await allocateAddress(servers[n % 2]!.leases, pool, { mac: dhcpMacOf(n) }, 'offered', OFFER_HOLD_SECONDS, now, servers[n % 2]!.cursor),
      })),
    )
    const ips = offers.map((offer) => (offer.result.ok ? offer.result.ip : 'none'))
    t.ok(offers.every((offer) => offer.result.ok), '200 offers')
    t.equal(new Set(ips).size, 200, 'no address offered to two MACs')
    const acks = await Promise.all(offers.map((offer, n) => confirmAddress(servers[(n + 1) % 2]!.leases, pool, { mac: offer.mac, requestedIp: ips[n]! }, settings.leaseSeconds, now)))
    t.ok(acks.every((ack, n) => ack.ok && ack.ip === ips[n]), "every REQUEST, answered by the other replica, acknowledges the offered address")
    const rows = await b.engine.engine.store.selectFrom('dhcp_leases').select(['ip', 'mac']).where('state', '=', 'bound').execute()
    t.equal(rows.length, 200)
    t.ok(rows.every((row) => ips[offers.findIndex((offer) => offer.mac === row.mac)] === row.ip), 'the stored leases are the acknowledged ones')
  })

  await t.test('a discovery on the replica that does not schedule is scheduled by the one that does', async (t) => {
    t.equal((await request(b, 'POST', '/api/v1/flavors', { name: 'tiny', control_plane_count: 1, nodes_min: 0, nodes_max: 5 })).status, 201)
    t.equal((await request(b, 'POST', '/api/v1/clusters', { name: 'pair', flavor: 'tiny' })).status, 201)
    const bPasses = b.log('scheduler').length
    const discovered = await request(b, 'POST', '/discovery', { 'boot-info': { uuid: uuidOf(1), mac: machineMacOf(1) }, interfaces: [{ name: 'eth0', mac: machineMacOf(1), ipv4: '10.8.2.1', netmask: '255.255.255.0' }] }, {})
    t.equal(discovered.status, 200, discovered.text)
    // Read from the shared database: each replica's API answers memberships from its own memory.
    const machine = await until('the machine to be scheduled', () => memberOf(uuidOf(1))).catch((error: Error) => {
      // What replica-a's scheduler said meanwhile explains a timeout.
      throw new Error(`${error.message}; replica-a: ${a.lines.filter((line) => /waiting|"level":[456]0/.test(line)).slice(-5).join('\n')}`)
    })
    t.match(machine, { cluster: 'pair', role: 'control-plane' })
    const shown = await until("replica-b's API to show the membership", async () => (await request(b, 'GET', `/api/v1/machines/${uuidOf(1)}`)).json().cluster ?? undefined, 5000)
    t.match(shown, { name: 'pair', role: 'control-plane' }, "replica-b's memory catches up with replica-a's pass within a refresh period")
    t.ok(await until('replica-a to log the pass', () => a.log('scheduler').some((line) => /scheduled 1 machine\(s\) into cluster pair/.test(line.msg)), 5000), 'replica-a scheduled it')
    t.equal(b.log('scheduler').length, bPasses, 'replica-b ran no pass')
    await until('the forwarded request to reach replica-a', () => a.log('scheduler').some((line) => line.msg === 'scheduler pass done' && line.reason === 'asked by another replica'), 3000).catch((error: Error) => {
      throw new Error(`${error.message}; A: ${JSON.stringify(a.log('scheduler').map((l) => l.reason).slice(-8))} ${JSON.stringify(a.log('replicas'))} B: ${JSON.stringify(b.log('replicas'))} ${JSON.stringify(b.log('scheduler'))}`)
    })
    t.pass("replica-b's trigger reached replica-a through the lease (a pass 'asked by another replica')")
  })

  await t.test("a proxy route added through one replica is proxied by the other within a refresh", async (t) => {
    const origin = http.createServer((request, response) => response.end(`origin saw ${request.url}`))
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => origin.close(() => resolve())))
    const added = await request(a, 'POST', '/api/v1/proxy/routes', { match: '/shop/', origin: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`, strip_prefix: true })
    t.equal(added.status, 201, added.text)
    const proxied = await until("replica-b's proxy to serve the route", async () => {
      const response = await fetch(`${b.engine.engine.proxyUrl()}/shop/cart`)
      const text = await response.text()
      return response.status === 200 ? text : undefined
    }, 5000)
    t.equal(proxied, 'origin saw /cart')
  })

  await t.test('the holder crashes: the other replica takes the leases over after the TTL and schedules', async (t) => {
    const crashedAt = performance.now()
    await a.engine.engine.close({ releaseLeases: false })
    replicas.splice(replicas.indexOf(a), 1)
    removeTree(path.dirname(a.engine.dataDir))
    await until('replica-b to hold the scheduler lease', () => b.engine.engine.jobLeases.all().find((lease) => lease.name === 'scheduler')!.mayRun(), LEASE_SECONDS * 2000)
    const takeoverMs = performance.now() - crashedAt
    t.ok(takeoverMs <= LEASE_SECONDS * 1000 + (LEASE_SECONDS * 1000) / 3 + 2000, `replica-b took over ${Math.round(takeoverMs)} ms after the crash (TTL ${LEASE_SECONDS * 1000} ms)`)
    t.ok(
      b.log('replicas').some((line) => line.job === 'scheduler' && /now runs the scheduler \(gained its lease\)/.test(line.msg)),
      'and logged that it now runs the scheduler',
    )
    await until('replica-b to hold every singleton job lease', () => b.engine.engine.jobLeases.all().every((lease) => lease.mayRun()), 3000)
    t.pass('and every other singleton job (each lease renews on its own timer)')

    const discovered = await request(b, 'POST', '/discovery', { 'boot-info': { uuid: uuidOf(2), mac: machineMacOf(2) }, interfaces: [{ name: 'eth0', mac: machineMacOf(2), ipv4: '10.8.2.2', netmask: '255.255.255.0' }] }, {})
    t.equal(discovered.status, 200, discovered.text)
    const machine = await until('the second machine to be scheduled', () => memberOf(uuidOf(2)))
    t.match(machine, { cluster: 'pair', role: 'node' })
    // The pass commits, then refreshes the replica's memory: the API shows it a moment after the database.
    const own = await until("replica-b's API to show the membership", async () => (await request(b, 'GET', `/api/v1/machines/${uuidOf(2)}`)).json().cluster ?? undefined, 5000)
    t.match(own, { name: 'pair', role: 'node' }, "replica-b's API shows what it scheduled itself")
    // The pass logs once it has also issued the new member's certificates, a moment after its commit.
    t.ok(await until('replica-b to log the pass', () => b.log('scheduler').some((line) => /scheduled 1 machine\(s\) into cluster pair/.test(line.msg)), 5000), 'replica-b scheduled it')
  })
})
