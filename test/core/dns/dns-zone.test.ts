import t from 'tap'
import { DnsZone, type AppName, type DnsSnapshot } from '../../../src/core/dns/dns-zone.ts'
import { addressBytes, greatCircleKm, parseSubnet } from '../../../src/core/dns/geo.ts'

const settings = { zone: 'apps.example', ttlSeconds: 30, negativeTtlSeconds: 15, nameservers: [{ name: 'ns1.apps.example', addresses: ['192.0.2.53'] }], hostmaster: 'hostmaster.apps.example' }
const paris = { cluster: 'paris', latitude: 48.85, longitude: 2.35, addresses: ['198.51.100.1', '2001:db8::1'], weight: 1 }
const nyc = { cluster: 'nyc', latitude: 40.71, longitude: -74.0, addresses: ['198.51.100.2'], weight: 3 }
const app = (policy: AppName['policy'], endpoints = [paris, nyc], failover: string[] = []): AppName => ({ policy, ttlSeconds: null, failover, endpoints })
const snapshot = (apps: Record<string, AppName>): DnsSnapshot => ({
  apps: new Map(Object.entries(apps)),
  hosts: new Map([['edge-cp-1.apps.example', ['10.0.0.11']]]),
  locations: [
    { subnet: parseSubnet('10.1.0.0/16')!, site: 'par', latitude: 48.8, longitude: 2.3 },
    { subnet: parseSubnet('10.2.0.0/16')!, site: 'nyc', latitude: 40.7, longitude: -74 },
    { subnet: parseSubnet('10.2.5.0/24')!, site: 'paris-in-nyc', latitude: 48.9, longitude: 2.4 },
  ],
  serial: 7,
})
const A = 1
const AAAA = 28

t.test('geo helpers', async (t) => {
  t.ok(Math.abs(greatCircleKm({ latitude: 48.85, longitude: 2.35 }, { latitude: 40.71, longitude: -74.0 }) - 5837) < 10, 'Paris-New York ~5,837 km')
  t.same([...addressBytes('2001:db8::1')!], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
  t.same([...addressBytes('::ffff:10.0.0.1')!].slice(-4), [10, 0, 0, 1])
  for (const bad of ['1.2.3', '256.1.1.1', '1::2::3', 'g::1', '1:2:3:4:5:6:7:8:9']) t.equal(addressBytes(bad), undefined, bad)
})

t.test('nearest by the client subnet (ECS) or the resolver address, with the ECS scope', async (t) => {
  const zone = new DnsZone(settings, snapshot({ 'web.shop.apps.example': app('nearest') }))
  const q = { name: 'web.shop.apps.example.', type: A }
  t.match(zone.answer(q, { source: '127.0.0.1', subnet: { address: '10.2.0.0', sourcePrefixLength: 24 } }), { rcode: 'NOERROR', authoritative: true, answers: [{ data: '198.51.100.2', ttl: 30 }], scopePrefixLength: 16 })
  t.match(zone.answer(q, { source: '127.0.0.1', subnet: { address: '10.2.5.0', sourcePrefixLength: 24 } }), { answers: [{ data: '198.51.100.1' }], scopePrefixLength: 24 }, 'the longest prefix wins')
  t.match(zone.answer(q, { source: '10.1.2.3' }), { answers: [{ data: '198.51.100.1' }], scopePrefixLength: 0 }, 'without ECS, the resolver address')
  t.same(zone.answer(q, { source: '192.0.2.1' }).answers.map((record) => record.data), ['198.51.100.1', '198.51.100.2'], 'unknown place: every healthy cluster')
  t.same(zone.answer({ name: 'web.shop.apps.example', type: AAAA }, { source: '10.1.2.3' }).answers.map((record) => record.data), ['2001:db8::1'])
})

t.test('round robin, weighted, failover', async (t) => {
  const rr = new DnsZone(settings, snapshot({ 'rr.apps.example': app('round_robin') }))
  const first = (zone: DnsZone, name: string) => zone.answer({ name, type: A }, { source: '1.1.1.1' }).answers[0]!.data
  t.same([first(rr, 'rr.apps.example'), first(rr, 'rr.apps.example'), first(rr, 'rr.apps.example')], ['198.51.100.1', '198.51.100.2', '198.51.100.1'])
  const rolls = [0.1, 0.3, 0.9]
  const weighted = new DnsZone(settings, snapshot({ 'w.apps.example': app('weighted') }), () => rolls.shift()!)
  t.same([first(weighted, 'w.apps.example'), first(weighted, 'w.apps.example'), first(weighted, 'w.apps.example')], ['198.51.100.1', '198.51.100.2', '198.51.100.2'], 'weights 1:3')
  const failover = new DnsZone(settings, snapshot({ 'f.apps.example': app('failover', [paris, nyc], ['nyc', 'paris']) }))
  t.equal(first(failover, 'f.apps.example'), '198.51.100.2', 'the primary')
  failover.update(snapshot({ 'f.apps.example': app('failover', [paris], ['nyc', 'paris']) }))
  t.equal(first(failover, 'f.apps.example'), '198.51.100.1', 'the primary gone: the next')
})

t.test('SOA, NS, NXDOMAIN, NODATA, empty non-terminals, refusal, machine hostnames', async (t) => {
  const zone = new DnsZone(settings, snapshot({ 'web.shop.apps.example': app('nearest', []) }))
  const ask = (name: string, type: number) => zone.answer({ name, type }, { source: '1.1.1.1' })
  t.match(ask('apps.example', 6), { rcode: 'NOERROR', answers: [{ type: 6, data: { primary: 'ns1.apps.example', admin: 'hostmaster.apps.example', serial: 7, minimum: 15 } }] })
  t.match(ask('apps.example', 2), { answers: [{ type: 2, data: 'ns1.apps.example' }], additional: [{ name: 'ns1.apps.example', data: '192.0.2.53' }] })
  t.match(ask('nope.apps.example', A), { rcode: 'NXDOMAIN', answers: [], authority: [{ type: 6 }] })
  t.match(ask('web.shop.apps.example', A), { rcode: 'NOERROR', answers: [], authority: [{ type: 6 }] }, 'an app with no healthy cluster: NODATA')
  t.match(ask('shop.apps.example', A), { rcode: 'NOERROR', answers: [] }, 'an empty non-terminal is not NXDOMAIN')
  t.match(ask('edge-cp-1.apps.example', AAAA), { rcode: 'NOERROR', answers: [] }, 'NODATA for a type the name lacks')
  t.match(ask('EDGE-CP-1.Apps.Example.', A), { answers: [{ data: '10.0.0.11' }] }, 'names are case-insensitive')
  t.match(ask('example.org', A), { rcode: 'REFUSED', authoritative: false, authority: [] })
})
