/**
 * DHCP lease allocation by two engine replicas on one database (two connection pools on PostgreSQL;
 * on SQLite, one store as one engine owns the file), through the lease policy the DHCP server runs:
 * an address is never handed to two MACs, whether the replicas serve different clients at once or
 * both answer every client's broadcast.
 */
import t from 'tap'
import { dhcpPoolOf, type DhcpSettings } from '../../src/core/dhcp/dhcp-settings.ts'
import { allocateAddress, confirmAddress, OFFER_HOLD_SECONDS, type PoolCursor } from '../../src/core/dhcp/lease-policy.ts'
import { migrateToLatest } from '../../src/storage/db.ts'
import type { Db } from '../../src/storage/database.ts'
import { dhcpLeaseStore } from '../../src/storage/repositories/dhcp-leases.ts'
import { forEachBackend, testDatabase } from '../helpers/backends.ts'

const settings: DhcpSettings = { mode: 'full', serverAddress: '10.9.0.1', port: 67, subnet: '10.9.0.0/23', rangeStart: '10.9.0.10', rangeEnd: '10.9.1.9', router: '', dnsServers: [], domain: '', leaseSeconds: 600 }
const pool = dhcpPoolOf(settings)
const macOf = (n: number) => `52:54:00:77:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`

/** Two replicas' DHCP lease stores, each with its own next-fit cursor (as each server keeps one). */
async function replicas(t: Parameters<Parameters<typeof forEachBackend>[2]>[0], backend: 'sqlite' | 'postgres') {
  const database = await testDatabase(t, backend)
  const first = database.open()
  await migrateToLatest(first)
  const stores: Db[] = backend === 'postgres' ? [first, database.open()] : [first, first]
  return { stores, servers: stores.map((store) => ({ leases: dhcpLeaseStore(store), cursor: { next: pool.start } as PoolCursor })) }
}

const activeLeases = async (store: Db) =>
  store.selectFrom('dhcp_leases').select(['ip', 'mac', 'state']).where('state', 'in', ['offered', 'bound']).execute()

forEachBackend(t, 'two replicas offering to 120 clients at once never give one address to two MACs', async (t, backend) => {
  const { stores, servers } = await replicas(t, backend)
  const now = new Date()
  // Both cursors start at the pool's first address: every offer races the other replica's for it.
  const offers = await Promise.all(
    Array.from({ length: 120 }, async (_, n) => {
      const server = servers[n % 2]!
      return { mac: macOf(n), result: await allocateAddress(server.leases, pool, { mac: macOf(n) }, 'offered', OFFER_HOLD_SECONDS, now, server.cursor) }
    }),
  )
  t.ok(offers.every((offer) => offer.result.ok), 'every client got an offer (the pool has 256 addresses)')
  const ips = offers.map((offer) => (offer.result.ok ? offer.result.ip : ''))
  t.equal(new Set(ips).size, 120, 'no address was offered to two clients')
  const stored = new Map((await activeLeases(stores[0]!)).map((lease) => [lease.ip, lease.mac]))
  t.ok(offers.every((offer) => offer.result.ok && stored.get(offer.result.ip) === offer.mac), 'each offer is the stored lease of the client it went to')

  // Each client's REQUEST reaches the other replica (both see the broadcast): all are acknowledged.
  const acks = await Promise.all(
    offers.map((offer, n) => confirmAddress(servers[(n + 1) % 2]!.leases, pool, { mac: offer.mac, requestedIp: ips[n]! }, settings.leaseSeconds, now)),
  )
  t.ok(acks.every((ack, n) => ack.ok && ack.ip === ips[n]), 'every client was acknowledged the address it was offered')
  const bound = await activeLeases(stores[1]!)
  t.equal(bound.filter((lease) => lease.state === 'bound').length, 120, '120 bound leases')
})

forEachBackend(t, "both replicas answering every client's broadcast: at most one lease per MAC, never one address for two", async (t, backend) => {
  const { stores, servers } = await replicas(t, backend)
  const now = new Date()
  const clients = Array.from({ length: 60 }, (_, n) => macOf(1000 + n))
  // A DISCOVER is broadcast: both replicas allocate for the same MAC at the same moment.
  const offers = await Promise.all(
    clients.flatMap((mac) => servers.map(async (server, replica) => ({ mac, replica, result: await allocateAddress(server.leases, pool, { mac }, 'offered', OFFER_HOLD_SECONDS, now, server.cursor) }))),
  )
  t.ok(offers.every((offer) => offer.result.ok), 'every DISCOVER was answered without an error')
  const active = await activeLeases(stores[0]!)
  t.equal(new Set(active.map((lease) => lease.mac)).size, active.length, 'no MAC holds two active leases')
  t.equal(active.length, clients.length, 'every client holds one')

  // Each client takes the first offer it hears (replica 0's) and requests it; a NAK means it starts over.
  const acks = await Promise.all(
    clients.map(async (mac) => {
      const offer = offers.find((candidate) => candidate.mac === mac && candidate.replica === 0)!
      const ip = offer.result.ok ? offer.result.ip : ''
      return { mac, ip, ack: await confirmAddress(servers[0]!.leases, pool, { mac, requestedIp: ip }, settings.leaseSeconds, now) }
    }),
  )
  const acknowledged = acks.filter((entry) => entry.ack.ok)
  t.ok(acks.every((entry) => entry.ack.ok || entry.ack.code === 'ADDRESS_TAKEN'), 'a refused REQUEST is a NAK (the client starts over), never an error')
  t.ok(acknowledged.length >= clients.length / 2, `${acknowledged.length} of ${clients.length} acknowledged at once`)
  t.equal(new Set(acknowledged.map((entry) => entry.ip)).size, acknowledged.length, 'no address acknowledged to two clients')
  const stored = new Map((await activeLeases(stores[1]!)).map((lease) => [lease.ip, lease]))
  t.ok(acknowledged.every((entry) => stored.get(entry.ip)?.mac === entry.mac && stored.get(entry.ip)?.state === 'bound'), 'each acknowledged address is bound to its client in the store')
})

forEachBackend(t, 'the claim keeps its rules in one statement: a bound lease survives a new offer, a declined address stays out', async (t, backend) => {
  const { stores, servers } = await replicas(t, backend)
  const leases = servers[0]!.leases
  const now = new Date()
  const later = new Date(now.getTime() + 1000)
  const lease = (mac: string, ip: string, state: 'offered' | 'bound', seconds: number) => ({ ip, mac, clientId: null, hostname: null, state, expiresAt: new Date(now.getTime() + seconds * 1000) })
  t.equal(await leases.claim(lease('aa:aa:aa:aa:aa:01', '10.9.0.10', 'bound', 600), now), true)
  t.equal(await leases.claim(lease('aa:aa:aa:aa:aa:01', '10.9.0.10', 'offered', 60), later), true, 'the same client is offered its address again')
  const row = await stores[0]!.selectFrom('dhcp_leases').selectAll().where('ip', '=', '10.9.0.10').executeTakeFirstOrThrow()
  t.same({ state: row.state, expires_at: row.expires_at }, { state: 'bound', expires_at: new Date(now.getTime() + 600_000).toISOString() }, 'and its bound lease is neither downgraded nor shortened')
  t.equal(await leases.claim(lease('aa:aa:aa:aa:aa:02', '10.9.0.10', 'offered', 60), later), false, "another client cannot take it")
  t.equal(await leases.transition('10.9.0.10', 'aa:aa:aa:aa:aa:01', 'declined', new Date(now.getTime() + 600_000), now, ['offered', 'bound']), true)
  t.equal(await leases.claim(lease('aa:aa:aa:aa:aa:01', '10.9.0.10', 'offered', 60), later), false, 'a declined address stays out, even for the client that declined it')
  t.equal(await leases.claim(lease('aa:aa:aa:aa:aa:02', '10.9.0.11', 'offered', 60), later), true)
  t.equal(await leases.claim(lease('aa:aa:aa:aa:aa:02', '10.9.0.12', 'offered', 60), later), true, 'a client moving to another address')
  const active = await activeLeases(stores[0]!)
  t.same(active.filter((row) => row.mac === 'aa:aa:aa:aa:aa:02').map((row) => row.ip), ['10.9.0.12'], 'keeps one active lease: its previous one is released')
})
