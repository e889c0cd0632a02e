import t from 'tap'
import { dhcpPoolOf, validateDhcpSettings, type DhcpSettings } from '../../../src/core/dhcp/dhcp-settings.ts'
import { allocateAddress, confirmAddress, declineAddress, forgetOffer, releaseAddress } from '../../../src/core/dhcp/lease-policy.ts'
import { memoryLeaseStore } from '../../fakes/dhcp-lease-store.ts'


const settings: DhcpSettings = { mode: 'full', serverAddress: '10.0.0.1', port: 67, subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.102', router: '', dnsServers: [], domain: '', leaseSeconds: 600 }
const pool = dhcpPoolOf(settings)
const now = new Date('2026-11-21T10:00:00Z')

t.test('addresses come from the pool in order, and the same MAC keeps its address', async (t) => {
  const store = memoryLeaseStore()
  const first = await allocateAddress(store, pool, { mac: 'aa' }, 'offered', 60, now)
  t.match(first, { ok: true, ip: '10.0.0.100', source: 'pool' })
  const second = await allocateAddress(store, pool, { mac: 'bb' }, 'offered', 60, now)
  t.match(second, { ok: true, ip: '10.0.0.101' })
  t.match(await allocateAddress(store, pool, { mac: 'aa' }, 'offered', 60, now), { ok: true, ip: '10.0.0.100', source: 'existing-lease' })
})

t.test('a free requested address is honoured; a taken one is not', async (t) => {
  const store = memoryLeaseStore()
  t.match(await allocateAddress(store, pool, { mac: 'aa', requestedIp: '10.0.0.102' }, 'offered', 60, now), { ip: '10.0.0.102', source: 'requested' })
  t.match(await allocateAddress(store, pool, { mac: 'bb', requestedIp: '10.0.0.102' }, 'offered', 60, now), { ip: '10.0.0.100', source: 'pool' })
  t.match(await allocateAddress(store, pool, { mac: 'cc', requestedIp: '10.0.0.250' }, 'offered', 60, now), { ip: '10.0.0.101', source: 'pool' }, 'outside the pool: ignored')
})

t.test('reservations win and are kept from other clients', async (t) => {
  const store = memoryLeaseStore([{ mac: 'rr', ip: '10.0.0.100', hostname: 'node-1' }])
  t.match(await allocateAddress(store, pool, { mac: 'aa' }, 'offered', 60, now), { ip: '10.0.0.101' })
  t.match(await allocateAddress(store, pool, { mac: 'rr' }, 'offered', 60, now), { ip: '10.0.0.100', source: 'reservation', hostname: 'node-1' })
  t.match(await confirmAddress(store, pool, { mac: 'aa', requestedIp: '10.0.0.100' }, 600, now), { ok: false, code: 'RESERVED_FOR_OTHER' })
  t.match(await confirmAddress(store, pool, { mac: 'rr', requestedIp: '10.0.0.102' }, 600, now), { ok: false, code: 'NOT_RESERVED_ADDRESS' })
})

t.test('an exhausted pool answers no offer at once, and expired leases come back', async (t) => {
  const store = memoryLeaseStore()
  for (const mac of ['a', 'b', 'c']) t.match(await allocateAddress(store, pool, { mac }, 'offered', 60, now), { ok: true })
  t.match(await allocateAddress(store, pool, { mac: 'd' }, 'offered', 60, now), { ok: false, code: 'POOL_EXHAUSTED' })
  const later = new Date(now.getTime() + 61_000)
  t.match(await allocateAddress(store, pool, { mac: 'd' }, 'offered', 60, later), { ok: true, ip: '10.0.0.100' }, 'an unanswered offer expires')
})

t.test('REQUEST confirmation: right network, pool, holder', async (t) => {
  const store = memoryLeaseStore()
  await allocateAddress(store, pool, { mac: 'aa' }, 'offered', 60, now)
  t.match(await confirmAddress(store, pool, { mac: 'aa', requestedIp: '10.0.0.100' }, 600, now), { ok: true })
  t.equal(store.leases.get('10.0.0.100')?.state, 'bound')
  t.match(await confirmAddress(store, pool, { mac: 'bb', requestedIp: '10.0.0.100' }, 600, now), { ok: false, code: 'ADDRESS_TAKEN' })
  t.match(await confirmAddress(store, pool, { mac: 'bb', requestedIp: '192.168.1.5' }, 600, now), { ok: false, code: 'WRONG_NETWORK' })
  t.match(await confirmAddress(store, pool, { mac: 'bb', requestedIp: '10.0.0.20' }, 600, now), { ok: false, code: 'OUTSIDE_POOL' })
})

t.test('release, decline and a forgotten offer', async (t) => {
  const store = memoryLeaseStore()
  await allocateAddress(store, pool, { mac: 'aa' }, 'bound', 600, now)
  t.ok(await releaseAddress(store, 'aa', '10.0.0.100', now))
  t.notOk(await releaseAddress(store, 'bb', '10.0.0.100', now), 'only the holder releases')
  t.match(await allocateAddress(store, pool, { mac: 'bb' }, 'offered', 60, now), { ip: '10.0.0.100' }, 'a released address is free')
  t.ok(await declineAddress(store, 'bb', '10.0.0.100', now))
  t.match(await allocateAddress(store, pool, { mac: 'cc' }, 'offered', 60, now), { ip: '10.0.0.101' }, 'a declined address is skipped')
  t.ok(await forgetOffer(store, 'cc', now))
  t.equal(store.leases.get('10.0.0.101')?.state, 'released')
})

t.test('settings validation reports every problem with its key', async (t) => {
  t.same(validateDhcpSettings({ ...settings, mode: 'off', serverAddress: '' }), [])
  t.same(validateDhcpSettings(settings), [])
  const codes = (overrides: Partial<DhcpSettings>) => validateDhcpSettings({ ...settings, ...overrides }).map((problem) => problem.code)
  t.same(codes({ serverAddress: '' }), ['DHCP_SERVER_ADDRESS_REQUIRED'])
  t.same(codes({ subnet: '10.0.0.0/33' }), ['DHCP_SUBNET_INVALID'])
  t.same(codes({ rangeStart: '10.0.1.5' }), ['DHCP_RANGE_OUTSIDE_SUBNET'])
  t.same(codes({ rangeStart: '10.0.0.200' }), ['DHCP_RANGE_REVERSED'])
  t.same(codes({ router: 'gateway', dnsServers: ['1.1.1.1', 'x'] }), ['DHCP_ROUTER_INVALID', 'DHCP_DNS_SERVER_INVALID'])
  t.same(codes({ serverAddress: '10.0.0.101' }), ['DHCP_SERVER_IN_RANGE'])
  t.same(codes({ mode: 'proxy', subnet: '', rangeStart: '', rangeEnd: '' }), [], 'proxy mode needs no pool')
})

t.test('next fit: with thousands of leases, each new address costs a look-up or two, not a read of every lease', async (t) => {
  const wide: DhcpSettings = { ...settings, subnet: '10.1.0.0/16', serverAddress: '10.1.0.1', rangeStart: '10.1.1.0', rangeEnd: '10.1.255.254' }
  const widePool = dhcpPoolOf(wide)
  const store = memoryLeaseStore()
  const lookups = { count: 0 }
  const leaseByIp = store.leaseByIp
  store.leaseByIp = async (ip) => (lookups.count++, leaseByIp(ip))
  const cursor = { next: widePool.start }
  let failed = 0
  for (let index = 0; index < 3000; index++) {
    const result = await allocateAddress(store, widePool, { mac: `02:00:00:00:${(index >> 8).toString(16).padStart(2, '0')}:${(index & 255).toString(16).padStart(2, '0')}` }, 'bound', 600, now, cursor)
    if (!result.ok) failed++
  }
  t.equal(failed, 0, 'every allocation succeeded')
  t.equal(store.leases.size, 3000)
  t.ok(lookups.count <= 3000 * 2, `3,000 allocations took ${lookups.count} address look-ups`)
  t.equal(new Set([...store.leases.values()].map((lease) => lease.ip)).size, 3000, 'every address handed out once')
  // Past the end of the pool the search wraps to its start.
  const small = dhcpPoolOf(settings)
  const smallStore = memoryLeaseStore()
  await allocateAddress(smallStore, small, { mac: '02:00:00:00:01:01' }, 'bound', 600, now)
  const wrapped = await allocateAddress(smallStore, small, { mac: '02:00:00:00:01:02' }, 'offered', 60, now, { next: small.end + 1 })
  t.match(wrapped, { ok: true, ip: '10.0.0.101' }, 'wraps around the pool and skips the taken start')
})
