/**
 * The engine's HTTP listener under attack, through a running engine (real listener, real sockets on
 * loopback): a flood of idle connections must not keep /healthz from answering, and the slow
 * attacks (a slowloris header trickle, a silent connection, a slow body, an idle keep-alive
 * connection) are closed after their timeouts. Figures are printed as test comments.
 */
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import { startServingEngine } from '../../helpers/engine.ts'
import { describeRamp, idleFlood, loopbackSources, metricValue, rampIdleFlood, slowSender, timedGet } from './listener-kit.ts'

// How long a slow attack is watched before it counts as never closed (raise it to measure an old build).
const GIVE_UP_MS = Number(process.env.SLIPWAY_TEST_GIVE_UP_MS ?? 6_000)

const startEngine = (t: Test, env: Record<string, string> = {}) => startServingEngine(t, { SLIPWAY_PROXY_ENABLED: 'false', SLIPWAY_DNS_ENABLED: 'false', ...env })

t.test('2,000 idle connections from 11 clients: /healthz is still answered within 100 ms', async (t) => {
  const { engine, port } = await startEngine(t)
  const flood = idleFlood(port, { sources: loopbackSources(11) })
  t.teardown(() => flood.close())
  const ramp = await rampIdleFlood(flood, { total: 2_000, step: 100, limitMs: 100, probe: () => timedGet(port, '/healthz', { expect: 200 }) })
  t.comment(describeRamp('http idle flood', ramp, flood))
  t.equal(ramp.firstBadAt, undefined, `every /healthz answered 200 within 100 ms (worst ${ramp.worst.ms.toFixed(1)} ms, ${ramp.worst.detail})`)
  const page = (await engine.app.inject({ method: 'GET', url: '/metrics' })).body
  const open = metricValue(page, 'slipway_connections_open', { listener: 'http' })
  const evicted = metricValue(page, 'slipway_connections_shed_total', { listener: 'http', reason: 'evicted_client_cap' })
  t.comment(`engine side: ${open} http connections open, ${evicted} evicted by the per-client cap`)
  t.ok(open <= 11 * 128 + 1, `the per-client cap bounds what the flood holds (${open} open)`)
  t.ok(evicted > 0, 'the oldest idle connections of a client over its cap were evicted')
})

t.test('slow attacks are closed after their timeouts; a client within them is served', async (t) => {
  const { port } = await startEngine(t, {
    SLIPWAY_HTTP_HEADERS_TIMEOUT_SECONDS: '1',
    SLIPWAY_HTTP_REQUEST_TIMEOUT_SECONDS: '2',
    SLIPWAY_HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: '1',
    SLIPWAY_HTTP_IDLE_TIMEOUT_SECONDS: '5',
  })
  const [silent, slowloris, slowBody, keepAlive] = await Promise.all([
    slowSender(port, { head: '', trickle: '', everyMs: 1_000_000, giveUpMs: GIVE_UP_MS }),
    // A header line a byte at a time, every 100 ms: each byte resets any inactivity timer.
    slowSender(port, { head: 'GET /healthz HTTP/1.1\r\nHost: slipway\r\n', trickle: 'X-Padding: slow\r\n', everyMs: 100, giveUpMs: GIVE_UP_MS }),
    // A body that keeps moving, one byte every 100 ms of a declared 4,000.
    slowSender(port, { head: 'POST /discovery HTTP/1.1\r\nHost: slipway\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n', trickle: ' ', everyMs: 100, giveUpMs: GIVE_UP_MS }),
    keepAliveIdle(port, GIVE_UP_MS),
  ])
  const seconds = (ms: number | undefined) => (ms === undefined ? `still open after ${GIVE_UP_MS / 1000} s` : `closed after ${(ms / 1000).toFixed(2)} s`)
  t.comment(`silent connection: ${seconds(silent.closedAfterMs)}; slowloris: ${seconds(slowloris.closedAfterMs)}; slow body: ${seconds(slowBody.closedAfterMs)}; idle keep-alive: ${seconds(keepAlive.closedAfterMs)}`)
  t.ok(silent.closedAfterMs !== undefined && silent.closedAfterMs >= 900 && silent.closedAfterMs < 2_500, 'a connection that sends nothing is closed after the headers timeout (1 s)')
  t.ok(slowloris.closedAfterMs !== undefined && slowloris.closedAfterMs >= 900 && slowloris.closedAfterMs < 2_500, 'a header trickle is closed after the headers timeout (1 s)')
  t.ok(slowBody.closedAfterMs !== undefined && slowBody.closedAfterMs >= 1_900 && slowBody.closedAfterMs < 3_500, 'a moving but endless body is closed after the request timeout (2 s)')
  t.match(slowBody.received, /^HTTP\/1\.1 408/, 'and told 408 Request Timeout')
  t.ok(keepAlive.closedAfterMs !== undefined && keepAlive.closedAfterMs >= 900 && keepAlive.closedAfterMs < 3_000, 'an idle keep-alive connection is closed after the keep-alive timeout (1 s, and Node’s 1 s of grace)')
  t.match(keepAlive.received, /^HTTP\/1\.1 200[\s\S]*Keep-Alive: timeout=1/i, 'the answer before told the client how long the connection is kept')

  // A client that sends its request at once is served on a connection that then stays usable.
  const second = await keepAliveTwice(port)
  t.same(second, [200, 200], 'two requests on one connection within the keep-alive timeout are both answered')
})

/** One GET with keep-alive, then silence: how long until the server closes the connection. */
function keepAliveIdle(port: number, giveUpMs: number): Promise<{ closedAfterMs: number | undefined; received: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    let received = ''
    let answeredAt = 0
    const giveUp = setTimeout(() => {
      socket.destroy()
      resolve({ closedAfterMs: undefined, received })
    }, giveUpMs)
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1')
      if (!answeredAt && /\r\n\r\n[\s\S]*\}/.test(received)) answeredAt = performance.now()
    })
    socket.once('close', () => {
      clearTimeout(giveUp)
      resolve({ closedAfterMs: answeredAt ? performance.now() - answeredAt : 0, received })
    })
    socket.once('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: slipway\r\n\r\n'))
  })
}

/** Two GETs on one connection, the second 300 ms after the first answer. */
function keepAliveTwice(port: number): Promise<number[]> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const statuses: number[] = []
    let buffer = ''
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1')
      for (let match = /HTTP\/1\.1 (\d{3})[\s\S]*?\r\n\r\n\{[^}]*\}/.exec(buffer); match; match = /HTTP\/1\.1 (\d{3})[\s\S]*?\r\n\r\n\{[^}]*\}/.exec(buffer)) {
        statuses.push(Number(match[1]))
        buffer = buffer.slice(match.index + match[0].length)
        if (statuses.length === 1) setTimeout(() => socket.write('GET /healthz HTTP/1.1\r\nHost: slipway\r\n\r\n'), 300)
        else socket.destroy()
      }
    })
    const giveUp = setTimeout(() => socket.destroy(), 5_000)
    socket.once('close', () => {
      clearTimeout(giveUp)
      resolve(statuses)
    })
    socket.once('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: slipway\r\n\r\n'))
  })
}
