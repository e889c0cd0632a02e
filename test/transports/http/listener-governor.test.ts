/**
 * The connection governor on its own (src/transports/connection-governor.ts), with stand-in
 * sockets: idle timeouts, which connection a newcomer over a cap evicts (the longest idle, of its
 * client for the per-client cap, of its listener, of any listener for the process cap), refusal when
 * every one there is busy, and the descriptor budget.
 */
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { clientKey, ConnectionGovernor, descriptorLimit, processConnectionCap, type ConnectionMetrics, type ShedReason } from '../../../src/transports/connection-governor.ts'
import { sleep } from '../../helpers/wait.ts'

class FakeSocket extends EventEmitter {
  destroyed = false
  constructor(readonly remoteAddress: string) {
    super()
  }
  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    setImmediate(() => this.emit('close'))
  }
}

class RecordingMetrics implements ConnectionMetrics {
  open = new Map<string, number>()
  shed: string[] = []
  limits = new Map<string, number>()
  connectionOpened(listener: string) {
    this.open.set(listener, (this.open.get(listener) ?? 0) + 1)
  }
  connectionClosed(listener: string) {
    this.open.set(listener, (this.open.get(listener) ?? 0) - 1)
  }
  connectionShed(listener: string, reason: ShedReason) {
    this.shed.push(`${listener}:${reason}`)
  }
  connectionLimit(listener: string, limit: number) {
    this.limits.set(listener, limit)
  }
}

const roomy = { maxConnections: 100, maxConnectionsPerClient: 100, idleTimeoutMs: 0 }

t.test('an idle connection is closed after the idle timeout; a busy one is not, and its timer restarts when it ends', async (t) => {
  const metrics = new RecordingMetrics()
  const listener = new ConnectionGovernor({ maxConnections: 100, metrics }).listener('http', { ...roomy, idleTimeoutMs: 60 })
  const idle = new FakeSocket('10.0.0.1')
  const busy = new FakeSocket('10.0.0.2')
  listener.admit(idle)
  const connection = listener.admit(busy)!
  connection.requestStarted()
  await sleep(120)
  t.ok(idle.destroyed, 'the idle connection is closed')
  t.notOk(busy.destroyed, 'the busy one is kept')
  connection.requestEnded(200)
  await sleep(100)
  t.notOk(busy.destroyed, 'after its request, it has the timeout it was given (200 ms)')
  await sleep(150)
  t.ok(busy.destroyed, 'and is closed once that passed')
  t.same(metrics.shed, ['http:idle_timeout', 'http:idle_timeout'])
  await sleep(5)
  t.equal(metrics.open.get('http'), 0, 'the open gauge is back to 0')
  t.equal(listener.openConnections, 0)
})

t.test('over the per-client cap, the client’s own longest-idle connection is evicted; refused when all are busy', async (t) => {
  const metrics = new RecordingMetrics()
  const listener = new ConnectionGovernor({ maxConnections: 100, metrics }).listener('dns', { ...roomy, maxConnectionsPerClient: 3 })
  const other = new FakeSocket('10.0.0.9')
  listener.admit(other)
  const mine = [1, 2, 3].map(() => new FakeSocket('10.0.0.1'))
  const connections = mine.map((socket) => listener.admit(socket)!)
  // The first becomes busy then idle again: the second is now the one idle the longest.
  connections[0]!.requestStarted()
  connections[0]!.requestEnded()
  const fourth = new FakeSocket('10.0.0.1')
  t.ok(listener.admit(fourth), 'the fourth connection of the client is admitted')
  t.same(
    mine.map((socket) => socket.destroyed),
    [false, true, false],
    'by evicting the longest-idle one of that client',
  )
  t.notOk(other.destroyed, 'another client is not touched')
  for (const connection of [connections[0]!, connections[2]!]) connection.requestStarted()
  listener.admit(new FakeSocket('10.0.0.1'))!.requestStarted()
  t.ok(fourth.destroyed, 'then the only idle one left is evicted')
  const refused = new FakeSocket('10.0.0.1')
  t.equal(listener.admit(refused), undefined, 'with all of its connections busy, a new one is refused')
  t.ok(refused.destroyed, 'and closed')
  t.same(metrics.shed, ['dns:evicted_client_cap', 'dns:evicted_client_cap', 'dns:refused_client_cap'])
})

t.test('over the listener cap, the longest-idle connection of anyone is evicted; over the process cap, of any listener', async (t) => {
  const metrics = new RecordingMetrics()
  const governor = new ConnectionGovernor({ maxConnections: 4, metrics })
  const http = governor.listener('http', { ...roomy, maxConnections: 3 })
  const dns = governor.listener('dns', roomy)
  t.equal(metrics.limits.get('http'), 3)
  t.equal(metrics.limits.get('dns'), 4, 'a listener cap above the process cap is lowered to it')
  t.equal(metrics.limits.get('all'), 4)

  const dnsOld = new FakeSocket('10.0.0.50')
  // Busy: otherwise, accepted first, it would be the longest idle of all.
  dns.admit(dnsOld)!.requestStarted()
  const httpSockets = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((address) => new FakeSocket(address))
  const httpConnections = httpSockets.map((socket) => http.admit(socket)!)
  t.equal(governor.openConnections, 4)

  httpConnections[0]!.requestStarted()
  http.admit(new FakeSocket('10.0.0.4'))
  t.same(
    httpSockets.map((socket) => socket.destroyed),
    [false, true, false],
    'the http cap (3): the longest-idle http connection (10.0.0.2; 10.0.0.1 is busy) made room',
  )
  t.notOk(dnsOld.destroyed, 'a dns connection does not count against the http cap')

  const dnsNew = new FakeSocket('10.0.0.51')
  t.ok(dns.admit(dnsNew), 'a new dns connection over the process cap (4) is admitted')
  t.ok(httpSockets[2]!.destroyed, 'by evicting the longest-idle connection of any listener (an http one)')
  t.notOk(dnsOld.destroyed)
  t.same(metrics.shed, ['http:evicted_listener_cap', 'http:evicted_process_cap'])
  t.equal(governor.openConnections, 4, 'the process cap holds')
})

t.test('a refused connection over the listener cap when every connection is busy', async (t) => {
  const metrics = new RecordingMetrics()
  const listener = new ConnectionGovernor({ maxConnections: 10, metrics }).listener('proxy', { ...roomy, maxConnections: 2 })
  for (const address of ['10.0.0.1', '10.0.0.2']) listener.admit(new FakeSocket(address))!.requestStarted()
  t.equal(listener.admit(new FakeSocket('10.0.0.3')), undefined)
  t.same(metrics.shed, ['proxy:refused_listener_cap'])
})

t.test('a client is an IPv4 address (also IPv4-mapped) or an IPv6 /64', async (t) => {
  t.equal(clientKey('192.0.2.7'), '192.0.2.7')
  t.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7')
  t.equal(clientKey('2001:db8:1:2:aaaa::1'), clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), 'one /64, one client')
  t.not(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'), 'another /64, another client')
  t.equal(clientKey('2001:0db8:0001:0002::1'), '2001:db8:1:2::/64')
  t.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  t.equal(clientKey(undefined), '?')
})

t.test('the process cap leaves a quarter of the descriptor limit (at least 128) to everything else', async (t) => {
  t.equal(processConnectionCap(1024, 30), 1024 - 30 - 256)
  t.equal(processConnectionCap(65_536, 40), 65_536 - 40 - 16_384)
  t.equal(processConnectionCap(256, 20), 256 - 20 - 128)
  t.equal(processConnectionCap(100, 90), 16, 'never below 16')
  t.equal(processConnectionCap(Number.POSITIVE_INFINITY, 30), undefined, 'no limit, no cap')
  const folder = mkdtempSync(path.join(os.tmpdir(), 'slipway-limits-'))
  t.teardown(() => rmSync(folder, { recursive: true, force: true }))
  const limits = path.join(folder, 'limits')
  writeFileSync(limits, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n')
  t.equal(descriptorLimit(limits), 1024, 'the soft limit, from /proc/self/limits')
  writeFileSync(limits, 'Max open files            unlimited            unlimited            files\n')
  t.equal(descriptorLimit(limits), Number.POSITIVE_INFINITY)
  t.equal(descriptorLimit(path.join(folder, 'absent')), undefined)
})
