/**
 * The reverse proxy's own listener under attack, on a running engine in front of an origin on
 * loopback: a flood of idle connections must not keep proxied requests from being answered within
 * 100 ms; a silent connection and a header trickle are closed after the headers timeout, a stalled
 * upload after the idle timeout, while a slow upload that keeps moving is never cut for its length.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { auth, startServingEngine } from '../../helpers/engine.ts'
import { describeRamp, idleFlood, loopbackSources, metricValue, rampIdleFlood, slowSender, timedGet } from '../http/listener-kit.ts'
import { sleep } from '../../helpers/wait.ts'

const GIVE_UP_MS = Number(process.env.SLIPWAY_TEST_GIVE_UP_MS ?? 8_000)

/** An origin that reads the whole body and answers how many bytes it got. */
async function startOrigin(t: Test): Promise<string> {
  const server = http.createServer((request, response) => {
    let bytes = 0
    request.on('data', (chunk: Buffer) => (bytes += chunk.length))
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ bytes }))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    const closed = once(server, 'close')
    server.close()
    server.closeAllConnections()
    await closed
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function proxy(t: Test, env: Record<string, string> = {}) {
  const started = await startServingEngine(t, { SLIPWAY_PROXY_HEALTH_INTERVAL_SECONDS: '0', SLIPWAY_DNS_ENABLED: 'false', ...env })
  const origin = await startOrigin(t)
  const added = await started.engine.app.inject({ method: 'POST', url: '/api/v1/proxy/routes', headers: auth, payload: { match: '/app/', origin } })
  t.equal(added.statusCode, 201, added.body)
  return { engine: started.engine, port: Number(new URL(started.engine.proxyUrl()!).port) }
}

t.test('2,000 idle connections from 40 clients: the proxy still answers within 100 ms', async (t) => {
  const { engine, port } = await proxy(t, { SLIPWAY_PROXY_MAX_CONNECTIONS: '1000' })
  const flood = idleFlood(port, { sources: loopbackSources(40) })
  t.teardown(() => flood.close())
  const ramp = await rampIdleFlood(flood, { total: 2_000, step: 100, limitMs: 100, probe: () => timedGet(port, '/app/ping', { expect: 200 }) })
  t.comment(describeRamp('proxy idle flood', ramp, flood))
  t.equal(ramp.firstBadAt, undefined, `every proxied request answered 200 within 100 ms (worst ${ramp.worst.ms.toFixed(1)} ms, ${ramp.worst.detail})`)
  const page = (await engine.app.inject({ method: 'GET', url: '/metrics' })).body
  const open = metricValue(page, 'slipway_connections_open', { listener: 'proxy' })
  const evicted = metricValue(page, 'slipway_connections_shed_total', { listener: 'proxy', reason: 'evicted_listener_cap' })
  t.comment(`engine side: ${open} proxy connections open, ${evicted} evicted by the listener's cap`)
  t.ok(open <= 1_000, `proxy.maxConnections bounds what the flood holds (${open})`)
  t.ok(evicted > 0, 'the longest idle connections were evicted to make room')
})

t.test('silent and trickling clients are closed, a stalled upload too; a slow upload that keeps moving completes', async (t) => {
  const { port } = await proxy(t, {
    SLIPWAY_PROXY_HEADERS_TIMEOUT_SECONDS: '1',
    SLIPWAY_PROXY_KEEP_ALIVE_TIMEOUT_SECONDS: '1',
    SLIPWAY_PROXY_IDLE_TIMEOUT_SECONDS: '3',
    SLIPWAY_PROXY_CONNECT_TIMEOUT_SECONDS: '0.5',
    SLIPWAY_PROXY_REQUEST_TIMEOUT_SECONDS: '0.5',
  })
  const upload = slowUpload(port, { chunks: 30, everyMs: 200 })
  const [silent, slowloris, stalled] = await Promise.all([
    slowSender(port, { head: '', trickle: '', everyMs: 1_000_000, giveUpMs: GIVE_UP_MS }),
    slowSender(port, { head: 'GET /app/ HTTP/1.1\r\nHost: proxy\r\n', trickle: 'X-Padding: slow\r\n', everyMs: 100, giveUpMs: GIVE_UP_MS }),
    slowSender(port, { head: 'POST /app/upload HTTP/1.1\r\nHost: proxy\r\nContent-Length: 1000\r\n\r\n0123456789', trickle: '', everyMs: 1_000_000, giveUpMs: GIVE_UP_MS }),
  ])
  const seconds = (ms: number | undefined) => (ms === undefined ? `still open after ${GIVE_UP_MS / 1000} s` : `closed after ${(ms / 1000).toFixed(2)} s`)
  t.comment(`silent: ${seconds(silent.closedAfterMs)}; slowloris: ${seconds(slowloris.closedAfterMs)}; stalled upload: ${seconds(stalled.closedAfterMs)}`)
  t.ok(silent.closedAfterMs !== undefined && silent.closedAfterMs >= 900 && silent.closedAfterMs < 2_500, 'a connection that sends nothing is closed after the headers timeout (1 s)')
  t.ok(slowloris.closedAfterMs !== undefined && slowloris.closedAfterMs >= 900 && slowloris.closedAfterMs < 2_500, 'a header trickle is closed after the headers timeout (1 s)')
  t.ok(stalled.closedAfterMs !== undefined && stalled.closedAfterMs >= 2_500 && stalled.closedAfterMs < 5_000, 'an upload that stops moving is closed after the idle timeout (3 s)')
  const uploaded = await upload
  t.comment(`slow upload: ${uploaded.status} after ${(uploaded.ms / 1000).toFixed(1)} s`)
  t.equal(uploaded.status, 200, 'a 6 s upload, a chunk every 200 ms, longer than every timeout, is forwarded')
  t.same(uploaded.body, { bytes: 30 * 1024 }, 'whole')
})

/** A chunked POST through the proxy, one 1 KiB chunk every `everyMs`. */
async function slowUpload(port: number, options: { chunks: number; everyMs: number }): Promise<{ status: number; body: unknown; ms: number }> {
  const started = Date.now()
  const request = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/app/upload', agent: false, headers: { 'content-type': 'application/octet-stream' } })
  const answered = new Promise<{ status: number; body: unknown; ms: number }>((resolve, reject) => {
    request.once('error', reject)
    request.once('response', (response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => (text += chunk.toString()))
      response.once('end', () => resolve({ status: response.statusCode!, body: text ? JSON.parse(text) : undefined, ms: Date.now() - started }))
    })
  })
  for (let index = 0; index < options.chunks; index++) {
    request.write(Buffer.alloc(1024, index))
    await sleep(options.everyMs)
  }
  request.end()
  return answered
}
