/**
 * The engine's DNS under attack, on a running engine: a flood of idle TCP connections must not keep
 * a TCP query (ours, and the real `dig +tcp`) from being answered within 100 ms; an idle or stalled
 * connection is closed after dns.tcpIdleTimeoutSeconds; pipelined queries are answered in order;
 * 50,000 malformed UDP datagrams change nothing for the next query.
 */
import { execFile } from 'node:child_process'
import dgram from 'node:dgram'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { startServingEngine } from '../../helpers/engine.ts'
import { describeRamp, idleFlood, loopbackSources, metricValue, rampIdleFlood, slowSender, type Probe } from '../http/listener-kit.ts'
import { sleep } from '../../helpers/wait.ts'

const run = promisify(execFile)
const ZONE = 'apps.test'
const GIVE_UP_MS = Number(process.env.SLIPWAY_TEST_GIVE_UP_MS ?? 6_000)

async function startEngine(t: Test, env: Record<string, string> = {}) {
  const started = await startServingEngine(t, { SLIPWAY_DNS_ZONE: ZONE, SLIPWAY_PROXY_ENABLED: 'false', ...env })
  return { engine: started.engine, port: started.engine.dnsPort()! }
}

/** A query in wire format (RFC 1035 4.1): header, one question. */
function query(id: number, name: string, type: number): Buffer {
  const labels = name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'ascii')]))
  const header = Buffer.alloc(12)
  header.writeUInt16BE(id, 0)
  header.writeUInt16BE(1, 4)
  const question = Buffer.alloc(4)
  question.writeUInt16BE(type, 0)
  question.writeUInt16BE(1, 2)
  return Buffer.concat([header, ...labels, Buffer.from([0]), question])
}

const framed = (message: Buffer) => Buffer.concat([Buffer.from([message.length >> 8, message.length & 0xff]), message])

/** Sends `messages` on one fresh TCP connection (in one write: pipelined) and reads as many answers. */
function tcpExchange(port: number, messages: Buffer[], options: { localAddress?: string; timeoutMs?: number } = {}): Promise<{ answers: Buffer[]; ms: number; error?: string }> {
  const started = performance.now()
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) })
    const answers: Buffer[] = []
    let pending = Buffer.alloc(0)
    const finish = (error?: string) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ answers, ms: performance.now() - started, ...(error ? { error } : {}) })
    }
    const timer = setTimeout(() => finish('no answer in time'), options.timeoutMs ?? 2_000)
    socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message))
    socket.once('close', () => finish(answers.length < messages.length ? 'closed by the server' : undefined))
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        answers.push(pending.subarray(2, 2 + pending.readUInt16BE(0)))
        pending = pending.subarray(2 + pending.readUInt16BE(0))
      }
      if (answers.length >= messages.length) finish()
    })
    socket.once('connect', () => socket.write(Buffer.concat(messages.map(framed))))
  })
}

const rcodeOf = (answer: Buffer) => answer.readUInt16BE(2) & 0x0f
const answerCountOf = (answer: Buffer) => answer.readUInt16BE(6)

/** One SOA query over TCP on a fresh connection: answered with NOERROR and the SOA? */
async function tcpProbe(port: number, localAddress?: string): Promise<Probe> {
  const id = Math.floor(Math.random() * 65_535)
  const result = await tcpExchange(port, [query(id, ZONE, 6)], localAddress ? { localAddress } : {})
  const answer = result.answers[0]
  const ok = !result.error && answer !== undefined && answer.readUInt16BE(0) === id && rcodeOf(answer) === 0 && answerCountOf(answer) === 1
  return { ok, ms: result.ms, detail: result.error ?? (answer ? `rcode ${rcodeOf(answer)}` : 'no answer') }
}

async function dig(port: number, ...options: string[]) {
  // dig exits non-zero when no server answered: that is an outcome to report, not a crash of the test.
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), ZONE, 'SOA', '+norecurse', '+time=2', '+tries=1', ...options]).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }))
  return { status: /status: (\w+)/.exec(stdout)?.[1], queryMs: Number(/;; Query time: (\d+) msec/.exec(stdout)?.[1]), soa: /\tSOA\t/.test(stdout), stdout }
}

t.test('300 idle TCP connections from 6 clients: a TCP query is still answered within 100 ms', async (t) => {
  const { engine, port } = await startEngine(t)
  const flood = idleFlood(port, { sources: loopbackSources(6), batch: 50 })
  t.teardown(() => flood.close())
  const ramp = await rampIdleFlood(flood, { total: 300, step: 20, limitMs: 100, probe: () => tcpProbe(port) })
  t.comment(describeRamp('dns tcp idle flood', ramp, flood))
  t.equal(ramp.firstBadAt, undefined, `every TCP query answered within 100 ms (worst ${ramp.worst.ms.toFixed(1)} ms, ${ramp.worst.detail})`)
  const fromAnother = await tcpProbe(port, '127.0.0.99')
  // One query, not a ramp: bounded loosely (a loaded CI machine pauses), as availability, not latency.
  t.ok(fromAnother.ok && fromAnother.ms < 1000, `a client that was not in the flood is answered too (${fromAnother.ms.toFixed(1)} ms)`)
  const answer = await dig(port, '+tcp')
  t.comment(`dig +tcp after the flood: ${answer.status}, query time ${answer.queryMs} ms`)
  t.ok(answer.status === 'NOERROR' && answer.soa, 'dig +tcp gets the SOA')
  t.ok(answer.queryMs < 1000, `within a second (${answer.queryMs} ms)`)
  const page = (await engine.app.inject({ method: 'GET', url: '/metrics' })).body
  const shed = ['evicted_client_cap', 'evicted_listener_cap', 'evicted_process_cap'].reduce((sum, reason) => sum + metricValue(page, 'slipway_connections_shed_total', { listener: 'dns', reason }), 0)
  t.comment(`engine side: ${metricValue(page, 'slipway_connections_open', { listener: 'dns' })} dns connections open, ${shed} evicted`)
  t.ok(shed > 0, 'idle connections were evicted to make room')
})

t.test('idle and stalled TCP connections are closed after the idle timeout; pipelined queries are answered in order', async (t) => {
  const { port } = await startEngine(t, { SLIPWAY_DNS_TCP_IDLE_TIMEOUT_SECONDS: '1' })
  const partial = framed(query(7, ZONE, 6)).subarray(0, 9)
  const [silent, stalled, trickle] = await Promise.all([
    slowSender(port, { head: '', trickle: '', everyMs: 1_000_000, giveUpMs: GIVE_UP_MS }),
    slowSender(port, { head: partial.toString('latin1'), trickle: '', everyMs: 1_000_000, giveUpMs: GIVE_UP_MS }),
    // A message a byte every 100 ms, never complete in time: bytes alone do not keep a connection.
    slowSender(port, { head: '', trickle: framed(query(8, ZONE, 6)).toString('latin1'), everyMs: 100, giveUpMs: GIVE_UP_MS }),
  ])
  const seconds = (ms: number | undefined) => (ms === undefined ? `still open after ${GIVE_UP_MS / 1000} s` : `closed after ${(ms / 1000).toFixed(2)} s`)
  t.comment(`silent: ${seconds(silent.closedAfterMs)}; stalled mid-message: ${seconds(stalled.closedAfterMs)}; trickle: ${seconds(trickle.closedAfterMs)}`)
  for (const [name, outcome] of [['a silent connection', silent], ['a connection stalled mid-message', stalled], ['a byte trickle', trickle]] as const) {
    t.ok(outcome.closedAfterMs !== undefined && outcome.closedAfterMs >= 900 && outcome.closedAfterMs < 2_500, `${name} is closed after the idle timeout (1 s)`)
  }

  const names = [ZONE, `nothing.${ZONE}`, `ns1.${ZONE}`, ZONE]
  const pipelined = await tcpExchange(port, names.map((name, index) => query(100 + index, name, index === 3 ? 2 : 6)))
  t.same(
    pipelined.answers.map((answer) => answer.readUInt16BE(0)),
    [100, 101, 102, 103],
    'four pipelined queries are answered, in the order asked',
  )
  t.same(pipelined.answers.map(rcodeOf), [0, 3, 0, 0], 'SOA, NXDOMAIN, NODATA/answer, NS')

  // A connection that keeps asking stays open past the idle timeout.
  const socket = net.connect({ host: '127.0.0.1', port })
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  let answered = 0
  socket.on('data', (chunk: Buffer) => (answered += chunk.length > 0 ? 1 : 0))
  await new Promise((resolve) => socket.once('connect', resolve))
  for (let index = 0; index < 5; index++) {
    socket.write(framed(query(200 + index, ZONE, 6)))
    await sleep(500)
  }
  t.ok(!socket.destroyed && answered >= 5, 'a connection asking every 0.5 s is still open after 2.5 s')
})

t.test('50,000 malformed UDP datagrams, then dig still answers correctly', async (t) => {
  const { port } = await startEngine(t)
  const sender = dgram.createSocket('udp4')
  t.teardown(() => sender.close())
  sender.on('message', () => {})
  await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve))
  let seed = 20_240_601
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff
    return seed / 0x7fffffff
  }
  const bytes = (length: number) => Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)))
  const kinds: ((index: number) => Buffer)[] = [
    // Random bytes of any length up to a jumbo datagram.
    () => bytes(Math.floor(random() * 1_500)),
    // A header cut short (0 to 11 bytes).
    () => bytes(Math.floor(random() * 12)),
    // A query header claiming 65,535 of everything, followed by a little garbage.
    () => Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), bytes(Math.floor(random() * 64))]),
    // A name that is a compression pointer to itself.
    (index) => Buffer.concat([Buffer.from([index & 0xff, 0x01, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01])]),
    // A label longer than 63 bytes, never terminated.
    () => Buffer.concat([Buffer.from([0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x7f]), bytes(127)]),
    // A valid query with a truncated question, or an EDNS OPT record with a huge length.
    () => query(1, ZONE, 6).subarray(0, 12 + Math.floor(random() * 10)),
    () => Buffer.concat([query(2, ZONE, 1), Buffer.from([0x00, 0x00, 0x29, 0x10, 0x00, 0, 0, 0, 0, 0xff, 0xff, 0x00, 0x08])]),
  ]
  const started = performance.now()
  const total = 50_000
  for (let sent = 0; sent < total; sent += 500) {
    await Promise.all(
      Array.from({ length: 500 }, (_, offset) => new Promise<void>((resolve) => sender.send(kinds[(sent + offset) % kinds.length]!(sent + offset), port, '127.0.0.1', () => resolve()))),
    )
  }
  t.comment(`sent ${total} malformed datagrams in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  // As a stub resolver does: a datagram dropped while the server drains the flood is asked again.
  const udp = await dig(port, '+tries=3')
  t.ok(udp.status === 'NOERROR' && udp.soa, `dig over UDP gets the SOA (${udp.status}, ${udp.queryMs} ms)`)
  const tcp = await dig(port, '+tcp')
  t.ok(tcp.status === 'NOERROR' && tcp.soa, `dig +tcp gets the SOA (${tcp.status}, ${tcp.queryMs} ms)`)
})
