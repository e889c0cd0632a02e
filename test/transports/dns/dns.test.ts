/**
 * The engine's authoritative DNS, queried with the real `dig` (Debian dnsutils) over UDP and TCP, with
 * and without EDNS Client Subnet. The answers come from releases the engine really fanned out (real
 * helm, @kubernetes/client-node) to Kubernetes API server test doubles (test/fakes/kube-cluster.ts),
 * and from the registry's health: a double that stops answering drops out of the answers.
 */
import { execFile } from 'node:child_process'
import dgram from 'node:dgram'
import path from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { FakeKubeCluster } from '../../fakes/kube-cluster.ts'
import { multipartBody, packageChart, webChart } from '../../helpers/charts.ts'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { helmPath } from '../../helpers/tools.ts'
import { until } from '../../helpers/wait.ts'

const run = promisify(execFile)
const ZONE = 'apps.test'
const INTERVAL_S = 1
const TIMEOUT_S = 0.5
const call = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

/** dig's full answer, and the parts the tests look at. */
async function dig(port: number, name: string, type: string, ...options: string[]) {
  const { stdout } = await run('dig', [`@127.0.0.1`, '-p', String(port), name, type, '+norecurse', '+time=2', '+tries=1', ...options])
  const status = /status: (\w+)/.exec(stdout)?.[1]
  const flags = /;; flags: ([a-z ]+);/.exec(stdout)?.[1]?.split(' ') ?? []
  const section = (title: string) => {
    const match = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(\\n\\n|$)`).exec(stdout)
    return match ? match[1]!.split('\n').map((line) => line.split(/\s+/)) : []
  }
  const answers = section('ANSWER').map((fields) => ({ name: fields[0], ttl: Number(fields[1]), type: fields[3], data: fields.slice(4).join(' ') }))
  const authority = section('AUTHORITY').map((fields) => ({ name: fields[0], type: fields[3], data: fields.slice(4).join(' ') }))
  const subnet = /CLIENT-SUBNET: ([^\n]+)/.exec(stdout)?.[1]
  return { stdout, status, flags, answers, authority, subnet, addresses: answers.map((answer) => answer.data) }
}

async function setup(t: Test) {
  const started = await startTestEngine({
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_DNS_ZONE: ZONE,
      SLIPWAY_HELM_BINARY: await helmPath(),
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: String(INTERVAL_S),
      SLIPWAY_REGISTRY_REQUEST_TIMEOUT_SECONDS: String(TIMEOUT_S),
      SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: '0.5',
      SLIPWAY_RELEASES_REQUEST_TIMEOUT_SECONDS: '2',
    },
  })
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  await started.engine.start()
  return { app: started.engine.app, port: started.engine.dnsPort()! }
}

t.test('nearest cluster by client subnet, unhealthy and failing clusters drop out, SOA/NS/NXDOMAIN/NODATA/REFUSED, machine hostnames', async (t) => {
  const { app, port } = await setup(t)
  const pki = await x509ClusterPkiIssuer.issue('sites', new Date())
  const tls = { ...(await servingCertificate(pki)), caPem: pki.kubernetesCa.certificatePem }
  const sites: Record<string, FakeKubeCluster> = {}
  for (const [name, latitude, longitude, addresses] of [
    ['paris', 48.85, 2.35, ['192.0.2.10', '2001:db8::10']],
    ['nyc', 40.71, -74.0, ['192.0.2.20']],
    ['tokyo', 35.68, 139.69, ['192.0.2.30']],
  ] as const) {
    const token = `${name}-token-${'x'.repeat(20)}`
    const api = await FakeKubeCluster.start({ tls, tokens: [token], readyDelayMs: 10 })
    t.teardown(() => api.close())
    sites[name] = api
    const created = await call(app, 'POST', '/api/v1/clusters', { name, labels: { app: 'yes' }, location: { latitude, longitude }, ingress_addresses: [...addresses], server: api.url, ca_bundle: pki.kubernetesCa.certificatePem, credentials: { token } })
    t.equal(created.statusCode, 201, created.body)
  }
  const locations = await call(app, 'PUT', '/api/v1/dns/locations', [
    { subnet: '10.1.0.0/16', site: 'par', latitude: 48.8, longitude: 2.3 },
    { subnet: '10.2.0.0/16', site: 'nyc', latitude: 40.7, longitude: -74 },
    { subnet: '10.3.0.0/16', site: 'tyo', latitude: 35.6, longitude: 139.7 },
    { subnet: '127.0.0.0/8', site: 'here', latitude: 48.9, longitude: 2.4 },
    { subnet: '2001:db8:aaaa::/48', site: 'tyo6', latitude: 35.6, longitude: 139.7 },
  ])
  t.equal(locations.statusCode, 200, locations.body)
  const bad = await call(app, 'PUT', '/api/v1/dns/locations', [{ subnet: '10.0.0.0/33', site: 'x', latitude: 0, longitude: 0 }])
  t.match({ status: bad.statusCode, ...bad.json() }, { status: 400, code: 'INVALID_LOCATION', message: /not a CIDR/ })
  t.equal((await call(app, 'GET', '/api/v1/dns/locations')).json().length, 5, 'a refused table changes nothing')

  const chart = await multipartBody({}, { chart: { name: 'web.tgz', bytes: await packageChart(webChart('1.0.0')) } })
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/charts', headers: { ...auth, ...chart.headers }, payload: chart.payload })).statusCode, 201)
  const installed = await call(app, 'POST', '/api/v1/releases', { name: 'web', namespace: 'shop', chart: { name: 'web' }, selector: 'app=yes', dns: { hostnames: [`shop.${ZONE}`], ttl_seconds: 20 } })
  t.equal(installed.statusCode, 201, installed.body)
  await until('web ready on 3 clusters, all healthy', async () => {
    const names = (await call(app, 'GET', '/api/v1/dns/names')).json() as { apps: { name: string; clusters: unknown[] }[] }
    return names.apps.find((entry) => entry.name === `web.shop.${ZONE}`)?.clusters.length === 3 ? true : undefined
  }, 30_000)

  // Nearest by ECS, over UDP and TCP.
  for (const transport of ['+notcp', '+tcp']) {
    const nyc = await dig(port, `web.shop.${ZONE}`, 'A', '+subnet=10.2.3.0/24', transport)
    t.match(nyc, { status: 'NOERROR', addresses: ['192.0.2.20'], subnet: '10.2.3.0/24/16' }, `a New York client gets nyc, scope /16 (${transport})`)
    t.ok(nyc.flags.includes('aa'), 'authoritative')
    t.equal(nyc.answers[0]!.ttl, 20, "the release's TTL")
    t.match(await dig(port, `web.shop.${ZONE}`, 'A', '+subnet=10.3.77.0/24', transport), { addresses: ['192.0.2.30'], subnet: '10.3.77.0/24/16' }, 'a Tokyo client gets tokyo')
  }
  t.match(await dig(port, `web.shop.${ZONE}`, 'A'), { addresses: ['192.0.2.10'] }, "without ECS, the resolver's address (127.0.0.1, placed near Paris)")
  t.match(await dig(port, `shop.${ZONE}`, 'A', '+subnet=10.2.0.0/16'), { addresses: ['192.0.2.20'] }, 'a hostname declared on the release')
  t.match(await dig(port, `web.shop.${ZONE}`, 'AAAA'), { status: 'NOERROR', answers: [{ type: 'AAAA', data: '2001:db8::10' }] }, 'AAAA')
  t.match(await dig(port, `web.shop.${ZONE}`, 'A', '+subnet=2001:db8:aaaa:1::/56'), { addresses: ['192.0.2.30'], subnet: '2001:db8:aaaa::/56/48' }, 'an IPv6 client subnet (echoed masked to /56, scope /48)')
  t.match(await dig(port, `web.shop.${ZONE}`, 'AAAA', '+subnet=10.2.0.0/16'), { status: 'NOERROR', answers: [], authority: [{ type: 'SOA' }] }, 'NODATA: the nearest cluster has no IPv6 ingress')

  // The zone itself.
  const soa = await dig(port, ZONE, 'SOA')
  t.match(soa, { status: 'NOERROR', answers: [{ type: 'SOA', data: new RegExp(`^ns1\\.${ZONE}\\. hostmaster\\.${ZONE}\\. \\d+ 3600 600 604800 15$`) }] })
  t.match(await dig(port, ZONE, 'NS'), { answers: [{ type: 'NS', data: `ns1.${ZONE}.` }] })
  t.match(await dig(port, `nope.${ZONE}`, 'A'), { status: 'NXDOMAIN', answers: [], authority: [{ type: 'SOA' }] })
  t.match(await dig(port, `shop.${ZONE}`, 'MX'), { status: 'NOERROR', answers: [], authority: [{ type: 'SOA' }] }, 'NODATA for a type the name lacks')
  t.match(await dig(port, 'example.org', 'A'), { status: 'REFUSED', answers: [] }, 'names outside the zone are refused')
  t.notOk((await dig(port, 'example.org', 'A')).flags.includes('aa'))

  // Machines of a provisioned cluster answer by hostname.
  await call(app, 'POST', '/api/v1/flavors', { name: 'solo', control_plane_count: 1, nodes_max: 0 })
  await call(app, 'POST', '/api/v1/clusters', { name: 'lyon', flavor: 'solo' })
  await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: '5e110000-0000-4000-8000-0000000000d1', mac: '52:54:00:0d:00:01' }, interfaces: [{ name: 'eth0', mac: '52:54:00:0d:00:01', ipv4: '10.9.0.5' }] } })
  await call(app, 'POST', '/api/v1/scheduler/run')
  const machine = await until('lyon-cp-1 answered', async () => {
    const answer = await dig(port, `lyon-cp-1.${ZONE}`, 'A')
    return answer.addresses.length ? answer : undefined
  }, 30_000)
  t.same(machine.addresses, ['10.9.0.5'])

  // nyc stops answering its API: out of the answers within one health interval (plus the request timeout).
  const stoppedAt = Date.now()
  sites.nyc!.setUnresponsive(true)
  await until('nyc out of the answers', async () => ((await dig(port, `web.shop.${ZONE}`, 'A', '+subnet=10.2.3.0/24')).addresses[0] === '192.0.2.10' ? true : undefined), 30_000)
  const dropMs = Date.now() - stoppedAt
  t.ok(dropMs <= (INTERVAL_S + TIMEOUT_S) * 1000 + 3000, `a New York client moved to Paris ${dropMs} ms after nyc stopped answering (interval ${INTERVAL_S} s, request timeout ${TIMEOUT_S} s)`)
  sites.nyc!.setUnresponsive(false)
  await until('nyc back', async () => ((await dig(port, `web.shop.${ZONE}`, 'A', '+subnet=10.2.3.0/24')).addresses[0] === '192.0.2.20' ? true : undefined), 30_000)

  // The release fails on tokyo (an upgrade its API refuses): tokyo drops out.
  sites.tokyo!.failRequests({ method: 'PATCH', path: /deployments/ }, 500)
  t.equal((await call(app, 'PUT', '/api/v1/releases/shop/web', { values: { replicas: 3 }, reuse_values: true })).statusCode, 200)
  await until('tokyo failed', async () => {
    const release = (await call(app, 'GET', '/api/v1/releases/shop/web')).json() as { clusters: { cluster: string; phase: string }[] }
    return release.clusters.find((status) => status.cluster === 'tokyo')?.phase === 'failed' ? true : undefined
  }, 30_000)
  await until('tokyo out of the answers', async () => ((await dig(port, `web.shop.${ZONE}`, 'A', '+subnet=10.3.77.0/24')).addresses[0] === '192.0.2.10' ? true : undefined), 30_000)
  t.pass('a Tokyo client is sent to Paris (the nearest cluster where the release is ready) once the release failed on tokyo')
})

t.test('50,000 random and mutated packets do not stop it answering', async (t) => {
  const { app, port } = await setup(t)
  await call(app, 'PUT', '/api/v1/dns/locations', [{ subnet: '127.0.0.0/8', site: 'here', latitude: 0, longitude: 0 }])
  // A real query, as dig puts it on the wire, captured from a local socket.
  const capture = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => capture.bind(0, '127.0.0.1', resolve))
  const captured = new Promise<Buffer>((resolve) => capture.once('message', (message) => resolve(message)))
  void run('dig', ['@127.0.0.1', '-p', String(capture.address().port), `web.shop.${ZONE}`, 'A', '+subnet=10.2.0.0/24', '+time=1', '+tries=1']).catch(() => undefined)
  const query = await captured
  capture.close()
  t.ok(query.length > 30, `captured a ${query.length}-byte query`)

  let seed = 0x2f6b
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
  const packets: Buffer[] = []
  for (let index = 0; index < 20_000; index++) packets.push(Buffer.from(Array.from({ length: Math.floor(random() * 600) }, () => Math.floor(random() * 256))))
  for (let index = 0; index < 30_000; index++) {
    const mutated = Buffer.from(query)
    const kind = index % 5
    if (kind === 0) {
      for (let flips = 0; flips < 4; flips++) {
        const at = Math.floor(random() * mutated.length)
        mutated[at] = mutated[at]! ^ (1 << Math.floor(random() * 8))
      }
    }
    if (kind === 1) packets.push(mutated.subarray(0, Math.floor(random() * mutated.length)))
    if (kind === 2) for (const offset of [4, 6, 8, 10]) mutated.writeUInt16BE(0xffff, offset)
    if (kind === 3) mutated.writeUInt16BE(1, 4), mutated.writeUInt16BE(0, 6), mutated.writeUInt16BE(1, 8), mutated.writeUInt16BE(2, 10), (mutated[12] = 0xc0)
    if (kind === 4) mutated.fill(0xff, 12 + Math.floor(random() * (mutated.length - 12)))
    if (kind !== 1) packets.push(mutated)
  }
  t.equal(packets.length, 50_000)
  const sender = dgram.createSocket('udp4')
  let replies = 0
  sender.on('message', () => replies++)
  await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve))
  const started = Date.now()
  for (let index = 0; index < packets.length; index += 200) {
    await Promise.all(packets.slice(index, index + 200).map((packet) => new Promise<void>((resolve) => sender.send(packet, port, '127.0.0.1', () => resolve()))))
    await new Promise((resolve) => setImmediate(resolve))
  }
  const sentMs = Date.now() - started
  // TCP gets garbage too: a huge length prefix, a half frame, random bytes.
  const net = await import('node:net')
  for (const junk of [Buffer.from([0xff, 0xff, 1, 2, 3]), Buffer.from([0x00, 0x40, 1]), Buffer.from(Array.from({ length: 3000 }, () => Math.floor(random() * 256)))]) {
    await new Promise<void>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end(junk))
      socket.on('close', () => resolve())
      socket.on('error', () => resolve())
      socket.setTimeout(2000, () => socket.destroy())
    })
  }
  const askedAt = Date.now()
  const after = await dig(port, ZONE, 'SOA')
  const answerMs = Date.now() - askedAt
  sender.close()
  t.equal(after.status, 'NOERROR', `still answering after 50,000 packets sent in ${sentMs} ms (${replies} replies, e.g. FORMERR); dig answered in ${answerMs} ms`)
  t.match(await dig(port, ZONE, 'SOA', '+tcp'), { status: 'NOERROR' }, 'and over TCP')
})
