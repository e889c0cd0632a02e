/**
 * The reverse proxy through a running engine (real SQLite file, the real listener and undici pools)
 * in front of real HTTP(S) origins on loopback started here: routing, forwarding headers, streaming
 * in both directions without buffering, TLS termination, failing origins, health, persistence across
 * a restart, mexosagent's /v1/proxy, and bad input changing nothing.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { loadConfig } from '../../../src/config.ts'
import { auth, removeTree, startTestEngine, type TestEngine } from '../../helpers/engine.ts'
import { spawnScratchEngine } from '../../helpers/engine-process.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { sleep, until } from '../../helpers/wait.ts'

const run = promisify(execFile)
const MiB = 1024 * 1024

interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
}
interface Origin {
  url: string
  port: number
  seen: Seen[]
  server: http.Server
}
type Handler = (request: IncomingMessage, response: ServerResponse) => void

/** An origin on 127.0.0.1 that records what it receives; by default it answers who it is and what it saw. */
async function startOrigin(t: Test, name: string, handle?: Handler, tls?: { cert: string; key: string }): Promise<Origin> {
  const seen: Seen[] = []
  const echo: Handler = (req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-origin': name, 'proxy-foo': 'hop', 'x-end': 'ok' })
      res.end(JSON.stringify({ origin: name, method: req.method, url: req.url, host: req.headers.host }))
    })
  }
  const listener: Handler = (req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers })
    ;(handle ?? echo)(req, res)
  }
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  t.teardown(() => closeServer(server))
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, port, seen, server }
}

async function closeServer(server: http.Server) {
  if (!server.listening) return
  const closed = once(server, 'close')
  server.close()
  server.closeAllConnections()
  await closed
}

async function engine(t: Test, env: Record<string, string> = {}, reuse?: TestEngine): Promise<TestEngine> {
  const started = await startTestEngine({
    ...(reuse ? { dataDir: reuse.dataDir, contentDir: reuse.contentDir } : {}),
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
      SLIPWAY_PROXY_HEALTH_INTERVAL_SECONDS: '0.3',
      SLIPWAY_PROXY_HEALTH_TIMEOUT_SECONDS: '0.5',
      ...env,
    },
  })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await started.engine.close()
  }
  ;(started as TestEngine & { close?: () => Promise<void> }).close = close
  t.teardown(async () => {
    await close()
    if (!reuse) removeTree(path.dirname(started.dataDir))
  })
  await started.engine.start()
  return started
}
const closeEngine = (started: TestEngine) => (started as TestEngine & { close: () => Promise<void> }).close()

const api = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = auth) =>
  app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })

async function addRoute(t: Test, app: FastifyInstance, document: Record<string, unknown>) {
  const answer = await api(app, 'POST', '/api/v1/proxy/routes', document)
  t.equal(answer.statusCode, 201, answer.body)
  return answer.json() as { id: string; match: string; health: { status: string } }
}

function client(t: Test, options: ConstructorParameters<typeof Agent>[0] = {}) {
  const agent = new Agent(options)
  t.teardown(() => agent.close())
  return agent
}

async function fetchJson(agent: Agent, url: string, headers: Record<string, string> = {}) {
  const answer = await request(url, { dispatcher: agent, headers })
  const text = await answer.body.text()
  return { status: answer.statusCode, headers: answer.headers, text, json: () => JSON.parse(text) as Record<string, unknown> }
}


/** The engine as `npm start` runs it (tsx src/main.ts), proxy and HTTP on free loopback ports. */
async function engineProcess(t: Test): Promise<{ pid: number; httpUrl: string; proxyUrl: string }> {
  const { child, output } = spawnScratchEngine(t, { SLIPWAY_LOG_LEVEL: 'info' })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`engine did not start: ${output()}`)), 60_000)
    let httpUrl: string | undefined
    let proxyUrl: string | undefined
    child.stdout!.on('data', () => {
      httpUrl ??= /"address":"(http:\/\/127\.0\.0\.1:\d+)".*"msg":"slipway is serving"/.exec(output())?.[1]
      proxyUrl ??= /"url":"(http:\/\/127\.0\.0\.1:\d+)".*"msg":"reverse proxy is serving"/.exec(output())?.[1]
      if (httpUrl && proxyUrl) {
        clearTimeout(timer)
        resolve({ pid: child.pid!, httpUrl, proxyUrl })
      }
    })
    child.once('exit', (code) => reject(new Error(`engine exited with ${code}: ${output()}`)))
  })
}

/** VmRSS of a process (Linux). */
function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(match![1]) * 1024
}

t.test('routing by host and path, longest prefix, strip_prefix, preserve_host; forwarding headers', async (t) => {
  const running = await engine(t)
  const app = running.engine.app
  const proxyUrl = running.engine.proxyUrl()!
  t.match(proxyUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  const [shop, shopApi, vhost, fallback] = (await Promise.all(['shop', 'shop-api', 'vhost', 'fallback'].map((name) => startOrigin(t, name)))) as [Origin, Origin, Origin, Origin]
  const agent = client(t)

  const none = await fetchJson(agent, `${proxyUrl}/shop/cart`)
  t.equal(none.status, 404)
  t.match(none.json(), { statusCode: 404, code: 'NO_PROXY_ROUTE', message: /no proxy route matches host "127\.0\.0\.1:\d+" and path "\/shop\/cart"/ })

  await addRoute(t, app, { match: '/shop/', origin: shop.url, strip_prefix: true })
  await addRoute(t, app, { id: 'shop-api', match: '/shop/api', origin: `${shopApi.url}/v2` })
  await addRoute(t, app, { match: 'shop.example.com', origin: vhost.url, preserve_host: true })
  await addRoute(t, app, { match: '/', origin: `${fallback.url}/base/` })
  const listed = (await api(app, 'GET', '/api/v1/proxy/routes')).json() as { id: string; match: string; kind: string }[]
  t.same(
    listed.map((route) => [route.id, route.kind, route.match]),
    [
      ['root', 'path', '/'],
      ['shop', 'path', '/shop/'],
      ['shop-api', 'path', '/shop/api/'],
      ['shop.example.com', 'host', 'shop.example.com'],
    ],
    'ids generated from the match; prefixes canonical',
  )

  const cases: [string, Record<string, string>, string, string, string][] = [
    // path, request headers, origin, path the origin sees, Host the origin sees
    ['/shop/cart?x=1', {}, 'shop', '/cart?x=1', shop.url.slice(7)],
    ['/shop', {}, 'shop', '/', shop.url.slice(7)],
    ['/shop/api/items', {}, 'shop-api', '/v2/shop/api/items', shopApi.url.slice(7)],
    ['/shopping', {}, 'fallback', '/base/shopping', fallback.url.slice(7)],
    ['/shop/cart', { host: 'Shop.Example.com:8081' }, 'vhost', '/shop/cart', 'Shop.Example.com:8081'],
  ]
  for (const [target, headers, origin, seenPath, seenHost] of cases) {
    const answer = await fetchJson(agent, `${proxyUrl}${target}`, headers)
    t.equal(answer.status, 200, `${target}: ${answer.text}`)
    t.match(answer.json(), { origin, url: seenPath, host: seenHost }, `${JSON.stringify(headers)} ${target} -> ${origin} ${seenPath}`)
    t.equal(answer.headers['x-end'], 'ok')
    t.equal(answer.headers['proxy-foo'], undefined, 'Proxy-* response fields stay on their hop')
    t.equal(answer.headers.via, '1.1 slipway')
  }

  // What the origin learns about the client, and what it must not see (node:http sends Connection as given).
  const raw = (options: http.RequestOptions) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: new URL(proxyUrl).port, agent: false, ...options }, (res) => {
        let body = ''
        res.on('data', (chunk) => (body += chunk))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      })
      req.on('error', reject)
      req.end()
    })
  await raw({
    path: '/shop/headers',
    headers: {
      host: 'public.example.org',
      'x-forwarded-for': '203.0.113.9',
      forwarded: 'for=203.0.113.9;proto=https',
      'x-forwarded-proto': 'gopher',
      connection: 'keep-alive, x-private-hop',
      'x-private-hop': 'secret',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic c2VjcmV0',
      'x-kept': 'yes',
    },
  })
  // The request forwarded here, not the origin's last one: another may come after it.
  const seen = [...shop.seen].reverse().find((request) => request.url.endsWith('/headers'))!.headers
  t.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'X-Forwarded-For appended')
  t.equal(seen['x-forwarded-proto'], 'http', "this hop's scheme, not the client's claim")
  t.equal(seen['x-forwarded-host'], 'public.example.org')
  t.equal(seen.forwarded, 'for=203.0.113.9;proto=https, for=127.0.0.1;host=public.example.org;proto=http')
  t.equal(seen.via, '1.1 slipway')
  t.equal(seen['x-kept'], 'yes')
  for (const hop of ['x-private-hop', 'te', 'proxy-authorization', 'keep-alive', 'upgrade', 'trailer']) t.equal(seen[hop], undefined, `${hop} not forwarded`)
  t.equal(seen.host, shop.url.slice(7), "Host rewritten to the origin's")

  // Paths are normalised before routing: dot segments resolved, encoded separators and climbs above the root refused.
  const dotted = await raw({ path: '/shop/%2e%2e/admin' })
  t.equal(dotted.status, 200)
  t.match(JSON.parse(dotted.body), { origin: 'fallback', url: '/base/admin' }, '/shop/../admin is /admin')
  const slashed = await raw({ path: '/shop/..%2fadmin' })
  t.equal(slashed.status, 400)
  t.match(JSON.parse(slashed.body), { code: 'ENCODED_SLASH_IN_PATH' })
  const above = await raw({ path: '/shop/../../admin' })
  t.equal(above.status, 400)
  t.match(JSON.parse(above.body), { code: 'PATH_ABOVE_ROOT' })

  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /slipway_proxy_requests_total\{route="shop",outcome="2xx"\} \d+/)
  t.match(metrics.body, /slipway_proxy_requests_total\{route="-",outcome="no_route"\} 1/)
  t.match(metrics.body, /slipway_proxy_upstream_response_seconds_bucket\{le="[^"]+",route="shop"\}/)
})

t.test('50 MB up and down through the proxy, streamed: each side sees bytes before the other side has sent them all; the engine memory stays flat', async (t) => {
  // The engine in its own process (as `npm start` runs it), so that its memory is measured alone.
  const running = await engineProcess(t)
  const proxyUrl = running.proxyUrl
  const SIZE = 50 * MiB
  const HUGE = 200 * MiB
  const block = Buffer.alloc(64 * 1024)
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff

  // Download: the origin sends 1 MiB, then waits until the client has received bytes, then the rest.
  let clientHasFirstBytes!: () => void
  const clientGotBytes = new Promise<void>((resolve) => (clientHasFirstBytes = resolve))
  const sentHash = createHash('sha256')
  const downloadOrigin = await startOrigin(t, 'download', async (req, res) => {
    req.resume()
    if (req.url === '/huge.bin') {
      // 200 MiB at full speed: memory must not grow with the body.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(HUGE) })
      for (let sent = 0; sent < HUGE; sent += block.length) if (!res.write(block)) await once(res, 'drain')
      res.end()
      return
    }
    if (req.url !== '/big.bin') {
      res.writeHead(204).end() // the health check
      return
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) })
    let sent = 0
    while (sent < SIZE) {
      const chunk = block.subarray(0, Math.min(block.length, SIZE - sent))
      sentHash.update(chunk)
      sent += chunk.length
      if (!res.write(chunk)) await once(res, 'drain')
      if (sent === MiB) {
        const waited = await Promise.race([clientGotBytes.then(() => true), sleep(10_000).then(() => false)])
        if (!waited) {
          res.destroy(new Error('the client received nothing: the proxy buffers the response'))
          return
        }
      }
    }
    res.end()
  })

  // Upload: the client sends 1 MiB, then waits until the origin has received bytes, then the rest.
  let originHasFirstBytes!: () => void
  const originGotBytes = new Promise<void>((resolve) => (originHasFirstBytes = resolve))
  const uploadOrigin = await startOrigin(t, 'upload', (req, res) => {
    const hash = createHash('sha256')
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      bytes += chunk.length
      if (bytes >= 512 * 1024) originHasFirstBytes()
    })
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null, length: req.headers['content-length'] ?? null }))
    })
  })
  const agent = client(t)
  for (const [match, origin] of [['/download/', downloadOrigin.url], ['/upload/', uploadOrigin.url]] as const) {
    const created = await request(`${running.httpUrl}/api/v1/proxy/routes`, { dispatcher: agent, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ match, origin, strip_prefix: true }) })
    t.equal(created.statusCode, 201, await created.body.text())
  }
  // Warm up (first-request code paths), then measure.
  await (await request(`${proxyUrl}/upload/warm`, { dispatcher: agent, method: 'POST', body: block })).body.dump()
  const baselineRss = residentBytes(running.pid)
  let peakRss = baselineRss
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, residentBytes(running.pid))), 5)
  t.teardown(() => clearInterval(sampler))

  const downloadStarted = Date.now()
  const download = await request(`${proxyUrl}/download/big.bin`, { dispatcher: agent })
  t.equal(download.statusCode, 200)
  t.equal(download.headers['content-length'], String(SIZE), "the origin's length is kept")
  const receivedHash = createHash('sha256')
  let received = 0
  let firstByteMs: number | undefined
  for await (const chunk of download.body) {
    if (firstByteMs === undefined) {
      firstByteMs = Date.now() - downloadStarted
      clientHasFirstBytes()
    }
    receivedHash.update(chunk as Buffer)
    received += (chunk as Buffer).length
  }
  t.equal(received, SIZE, '50 MiB downloaded')
  t.equal(receivedHash.digest('hex'), sentHash.digest('hex'), 'byte for byte')

  let uploadedFirst = false
  async function* uploadBody() {
    let sent = 0
    while (sent < SIZE) {
      const chunk = block.subarray(0, Math.min(block.length, SIZE - sent))
      sent += chunk.length
      yield chunk
      if (sent === MiB) {
        const waited = await Promise.race([originGotBytes.then(() => true), sleep(10_000).then(() => false)])
        if (!waited) throw new Error('the origin received nothing: the proxy buffers the request')
        uploadedFirst = true
      }
    }
  }
  const expected = createHash('sha256')
  for (let sent = 0; sent < SIZE; sent += block.length) expected.update(block.subarray(0, Math.min(block.length, SIZE - sent)))
  const upload = await request(`${proxyUrl}/upload/sink`, { dispatcher: agent, method: 'PUT', body: Readable.from(uploadBody()), headers: { 'content-length': String(SIZE) } })
  const uploaded = (await upload.body.json()) as { bytes: number; sha256: string; length: string | null }
  t.equal(upload.statusCode, 200)
  t.ok(uploadedFirst, 'the origin had bytes while the client still held back the rest')
  t.same(uploaded, { bytes: SIZE, sha256: expected.digest('hex'), te: null, length: String(SIZE) }, '50 MiB uploaded, Content-Length kept')

  // A chunked upload (no length) stays chunked.
  const chunked = await request(`${proxyUrl}/upload/sink`, { dispatcher: agent, method: 'POST', body: Readable.from([block, block]) })
  t.match(await chunked.body.json(), { bytes: 2 * block.length, te: 'chunked' })

  const growth50 = (peakRss - baselineRss) / MiB

  // 200 MiB down and 200 MiB up: a proxy that buffered would grow by at least a body. Node frees
  // socket buffers lazily (V8 collects once ~64 MiB of external memory is garbage), so the growth
  // is that plateau, whatever the size of the body.
  let hugeBytes = 0
  const huge = await request(`${proxyUrl}/download/huge.bin`, { dispatcher: agent })
  for await (const chunk of huge.body) hugeBytes += (chunk as Buffer).length
  t.equal(hugeBytes, HUGE)
  const hugeUpload = await request(`${proxyUrl}/upload/sink`, {
    dispatcher: agent,
    method: 'PUT',
    body: Readable.from((function* () { for (let sent = 0; sent < HUGE; sent += block.length) yield block })()),
  })
  t.match(await hugeUpload.body.json(), { bytes: HUGE })
  clearInterval(sampler)
  const growth = (peakRss - baselineRss) / MiB
  t.comment(`first byte of the download after ${firstByteMs} ms; engine RSS ${(baselineRss / MiB).toFixed(1)} MiB before; peak growth ${growth50.toFixed(1)} MiB during the 50 MiB transfers, ${growth.toFixed(1)} MiB after 400 MiB more`)
  // Measured 6-66 MiB (the plateau); a proxy holding one 200 MiB body would be far above the bound.
  t.ok(growth < 120, `the engine's memory does not grow with the bodies (peak RSS growth ${growth.toFixed(1)} MiB over 500 MiB proxied)`)
})

t.test('TLS termination with a certificate made here; https origins and tls_verify', async (t) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-proxy-tls-'))
  t.teardown(() => removeTree(scratch))
  const pki = await x509ClusterPkiIssuer.issue('proxy-edge', new Date())
  const serving = await servingCertificate(pki)
  writeFileSync(path.join(scratch, 'proxy.crt'), serving.certificatePem)
  writeFileSync(path.join(scratch, 'proxy.key'), serving.privateKeyPem, { mode: 0o600 })
  writeFileSync(path.join(scratch, 'ca.crt'), pki.kubernetesCa.certificatePem)
  const running = await engine(t, { SLIPWAY_PROXY_TLS_CERT_FILE: path.join(scratch, 'proxy.crt'), SLIPWAY_PROXY_TLS_KEY_FILE: path.join(scratch, 'proxy.key') })
  const proxyUrl = running.engine.proxyUrl()!
  t.match(proxyUrl, /^https:\/\/127\.0\.0\.1:\d+$/)

  const plain = await startOrigin(t, 'plain')
  // An https origin with a certificate from another CA: verified, it fails; with tls_verify false it serves.
  const originPki = await x509ClusterPkiIssuer.issue('origin', new Date())
  const originCert = await servingCertificate(originPki)
  const secure = await startOrigin(t, 'secure', undefined, { cert: originCert.certificatePem, key: originCert.privateKeyPem })
  await addRoute(t, running.engine.app, { match: '/app/', origin: plain.url, strip_prefix: true })
  await addRoute(t, running.engine.app, { id: 'strict', match: '/strict/', origin: secure.url })
  await addRoute(t, running.engine.app, { id: 'lenient', match: '/lenient/', origin: secure.url, tls_verify: false })

  const agent = client(t, { connect: { ca: pki.kubernetesCa.certificatePem } })
  const answer = await fetchJson(agent, `${proxyUrl}/app/x`)
  t.equal(answer.status, 200)
  t.match(answer.json(), { origin: 'plain', url: '/x' })
  // The request the proxy forwarded, not the origin's last one: another may come after it.
  const forwarded = [...plain.seen].reverse().find((request) => request.url === '/x')
  t.equal(forwarded?.headers['x-forwarded-proto'], 'https')
  t.match(forwarded?.headers.forwarded, /;proto=https$/)

  // curl, as an operator would, trusting only the CA.
  const { stdout } = await run('curl', ['--silent', '--show-error', '--fail-with-body', '--cacert', path.join(scratch, 'ca.crt'), `${proxyUrl}/app/curl`])
  t.match(JSON.parse(stdout), { origin: 'plain', url: '/curl' })
  const refused = await run('curl', ['--silent', '--show-error', `${proxyUrl}/app/curl`]).then(() => '', (error: { stderr: string }) => error.stderr)
  t.match(refused, /certificate/, 'without the CA the certificate is refused')

  const strict = await fetchJson(agent, `${proxyUrl}/strict/`)
  t.equal(strict.status, 502)
  t.match(strict.json(), { code: 'ORIGIN_TLS_ERROR', message: /route "strict" \(\/strict\/\): origin https:\/\/127\.0\.0\.1:\d+ failed the TLS handshake: .*tls_verify: false/, details: { route: 'strict', origin: secure.url } })
  const lenient = await fetchJson(agent, `${proxyUrl}/lenient/y`)
  t.equal(lenient.status, 200, lenient.text)
  t.match(lenient.json(), { origin: 'secure', url: '/lenient/y' })
})

t.test('an origin that is down, slow or back: 502/504 with a clear body, health in the routes API', async (t) => {
  const running = await engine(t, { SLIPWAY_PROXY_REQUEST_TIMEOUT_SECONDS: '0.5' })
  const app = running.engine.app
  const proxyUrl = running.engine.proxyUrl()!
  const agent = client(t)

  // A port that was free a moment ago: nothing listens there.
  const gone = await startOrigin(t, 'gone')
  await closeServer(gone.server)
  await addRoute(t, app, { id: 'down', match: '/down/', origin: gone.url })
  const down = await fetchJson(agent, `${proxyUrl}/down/x`)
  t.equal(down.status, 502)
  t.equal(down.headers['content-type'], 'application/json; charset=utf-8')
  t.match(down.json(), {
    statusCode: 502,
    code: 'ORIGIN_UNREACHABLE',
    message: `route "down" (/down/): origin ${gone.url} refused the connection (nothing listens there) (ECONNREFUSED)`,
    details: { route: 'down', match: '/down/', origin: gone.url, error: /ECONNREFUSED/ },
  })
  const unhealthy = (await api(app, 'GET', '/api/v1/proxy/routes/down')).json()
  t.match(unhealthy.health, { status: 'unhealthy', last_error: /ECONNREFUSED/, since: /^\d{4}-/, last_error_at: /^\d{4}-/ })

  // The origin comes back on the same port: the periodic check notices without any request.
  const back = http.createServer((req, res) => res.end('back'))
  back.listen(gone.port, '127.0.0.1')
  await once(back, 'listening')
  t.teardown(() => closeServer(back))
  const healthy = await until('the health check to see the origin again', async () => {
    const route = (await api(app, 'GET', '/api/v1/proxy/routes/down')).json()
    return route.health.status === 'healthy' ? route : undefined
  })
  t.match(healthy.health, { status: 'healthy', last_error: /ECONNREFUSED/, checked_at: /^\d{4}-/ }, 'the last error is kept for reference')
  t.equal((await fetchJson(agent, `${proxyUrl}/down/x`)).text, 'back')

  // An origin that accepts and never answers: 504 after proxy.requestTimeoutSeconds.
  const silent = await startOrigin(t, 'silent', () => {})
  await addRoute(t, app, { id: 'slow', match: '/slow/', origin: silent.url, health_check_path: '/healthz' })
  const started = Date.now()
  const slow = await fetchJson(agent, `${proxyUrl}/slow/`)
  t.equal(slow.status, 504)
  t.match(slow.json(), { code: 'ORIGIN_TIMEOUT', message: /route "slow" \(\/slow\/\): origin http:\/\/127\.0\.0\.1:\d+ did not answer within 0\.5 s/ })
  t.ok(Date.now() - started < 5_000)
  const slowRoute = await until('the slow origin to be unhealthy', async () => {
    const route = (await api(app, 'GET', '/api/v1/proxy/routes/slow')).json()
    return route.health.status === 'unhealthy' ? route : undefined
  })
  t.match(slowRoute.health.last_error, /no answer within 0\.5 s|did not answer/)

  // A health path that answers 404 is unhealthy; the base URL answering 404 is not.
  const app404 = await startOrigin(t, 'not-found', (req, res) => {
    res.statusCode = 404
    res.end()
  })
  await addRoute(t, app, { id: 'base-404', match: '/b404/', origin: app404.url })
  await addRoute(t, app, { id: 'path-404', match: '/p404/', origin: app404.url, health_check_path: '/healthz' })
  const states = await until('both checks', async () => {
    const routes = (await api(app, 'GET', '/api/v1/proxy/routes')).json() as { id: string; health: { status: string; last_error: string | null } }[]
    const base = routes.find((route) => route.id === 'base-404')!.health
    const withPath = routes.find((route) => route.id === 'path-404')!.health
    return base.status !== 'unknown' && withPath.status !== 'unknown' ? { base, withPath } : undefined
  })
  t.equal(states.base.status, 'healthy')
  t.match(states.withPath, { status: 'unhealthy', last_error: 'health check GET /healthz answered 404' })
})

t.test('routes survive a restart and are served at once', async (t) => {
  const origin = await startOrigin(t, 'persistent')
  const first = await engine(t)
  await addRoute(t, first.engine.app, { match: '/keep/', origin: origin.url, strip_prefix: true, preserve_host: true })
  await addRoute(t, first.engine.app, { match: 'keep.example.com/api', origin: `${origin.url}/v1`, health_check_path: '/healthz' })
  const before = (await api(first.engine.app, 'GET', '/api/v1/proxy/routes')).json() as Record<string, unknown>[]
  await closeEngine(first)

  const second = await engine(t, {}, first)
  const after = (await api(second.engine.app, 'GET', '/api/v1/proxy/routes')).json() as Record<string, unknown>[]
  const withoutHealth = (routes: Record<string, unknown>[]) => routes.map(({ health: _health, ...route }) => route)
  t.same(withoutHealth(after), withoutHealth(before), 'the same routes, field for field')
  t.equal(after.length, 2)
  const agent = client(t)
  const answer = await fetchJson(agent, `${second.engine.proxyUrl()}/keep/item`, { host: 'front.example.com' })
  t.match(answer.json(), { origin: 'persistent', url: '/item', host: 'front.example.com' })
  const hosted = await fetchJson(agent, `${second.engine.proxyUrl()}/api/x`, { host: 'keep.example.com' })
  t.match(hosted.json(), { url: '/v1/api/x' })
})

t.test("mexosagent's POST /v1/proxy: add, list, delete", async (t) => {
  const running = await engine(t)
  const app = running.engine.app
  const [web, rest] = await Promise.all([startOrigin(t, 'web'), startOrigin(t, 'rest')])
  const proxy = (body: unknown, headers = auth) => api(app, 'POST', '/v1/proxy', body, headers)

  t.equal((await proxy({ message: 'list' }, {} as typeof auth)).statusCode, 401, 'behind the admin token')
  const added = await proxy({ message: 'add', proxies: [{ path: '/testapphttp/', origin: web.url }, { path: '/testapprest', origin: rest.url, name: 'rest-api' }] })
  t.equal(added.statusCode, 200, added.body)
  t.same(added.json(), {
    message: 'add',
    status: 'OK',
    proxies: [
      { name: 'testapphttp', path: '/testapphttp/', origin: web.url },
      { name: 'rest-api', path: '/testapprest/', origin: rest.url },
    ],
  })
  const listed = (await proxy({ message: 'list' })).json()
  t.same(listed, {
    message: 'list',
    status: `map[/testapphttp/:${web.url} /testapprest/:${rest.url}]`,
    proxies: [
      { name: 'rest-api', path: '/testapprest/', origin: rest.url },
      { name: 'testapphttp', path: '/testapphttp/', origin: web.url },
    ],
  })
  t.match((await api(app, 'GET', '/api/v1/proxy/routes/testapphttp')).json(), { kind: 'path', strip_prefix: true, preserve_host: true }, "mexosagent's semantics: prefix stripped, client Host kept")

  const agent = client(t)
  const answer = await fetchJson(agent, `${running.engine.proxyUrl()}/testapphttp/info`, { host: 'testcloudlet.example.net' })
  t.match(answer.json(), { origin: 'web', url: '/info', host: 'testcloudlet.example.net' })

  // All or nothing: one bad item adds nothing, one unknown path deletes nothing.
  const badAdd = await proxy({ message: 'add', proxies: [{ path: '/new/', origin: web.url }, { path: '/other/', origin: 'ftp://x' }] })
  t.equal(badAdd.statusCode, 400)
  t.match(badAdd.json(), { code: 'INVALID_PROXY_ROUTE', message: /proxies\[1\]\.origin: the scheme must be http or https/ })
  const duplicate = await proxy({ message: 'add', proxies: [{ path: '/new/', origin: web.url }, { path: '/testapphttp', origin: rest.url }] })
  t.equal(duplicate.statusCode, 409)
  t.match(duplicate.json(), { code: 'PROXY_ROUTE_EXISTS', message: /route "testapphttp" already matches \/testapphttp\// })
  t.equal((await proxy({ message: 'add', proxies: [{ path: '/x/' }] })).json().code, 'INVALID_PROXY_REQUEST')
  t.equal((await proxy({ message: 'add', proxies: [] })).json().code, 'INVALID_PROXY_REQUEST')
  t.equal((await proxy({ message: 'add', proxies: [{ path: '/x/', origin: web.url, name: 'Bad Name' }] })).statusCode, 400)
  t.equal((await proxy({ message: 'rename' })).statusCode, 400)
  const badDelete = await proxy({ message: 'delete', proxies: [{ path: '/testapprest/' }, { path: '/missing/' }] })
  t.equal(badDelete.statusCode, 404)
  t.match(badDelete.json(), { code: 'PROXY_ROUTE_NOT_FOUND', message: /proxies\[1\]\.path: no path route for \/missing\/; nothing was deleted/ })
  t.equal((await proxy({ message: 'list' })).json().proxies.length, 2, 'nothing changed')

  const deleted = await proxy({ message: 'delete', proxies: [{ path: '/testapprest', origin: rest.url }] })
  t.same(deleted.json(), { message: 'delete', status: 'OK', proxies: [{ name: 'rest-api', path: '/testapprest/', origin: rest.url }] })
  t.same((await proxy({ message: 'list' })).json().proxies, [{ name: 'testapphttp', path: '/testapphttp/', origin: web.url }])
  t.equal((await fetchJson(agent, `${running.engine.proxyUrl()}/testapprest/`)).status, 404, 'no longer routed')
})

t.test('the routes API: bad input is a 4xx and changes nothing', async (t) => {
  const running = await engine(t)
  const app = running.engine.app
  const origin = await startOrigin(t, 'api')
  const created = await addRoute(t, app, { id: 'shop', match: '/shop/', origin: origin.url })
  const snapshot = async () => (await api(app, 'GET', '/api/v1/proxy/routes')).json().map(({ health: _health, ...route }: Record<string, unknown>) => route)
  const before = await snapshot()

  const attempts: [string, 'POST' | 'PUT' | 'DELETE', string, unknown, number, string][] = [
    ['missing origin', 'POST', '/api/v1/proxy/routes', { match: '/a/' }, 400, 'INVALID_PROXY_ROUTE'],
    ['unknown field', 'POST', '/api/v1/proxy/routes', { match: '/a/', origin: origin.url, weight: 3 }, 400, 'INVALID_PROXY_ROUTE'],
    ['bad origin', 'POST', '/api/v1/proxy/routes', { match: '/a/', origin: 'http://' }, 400, 'INVALID_PROXY_ROUTE'],
    ['same match', 'POST', '/api/v1/proxy/routes', { match: '/shop', origin: origin.url }, 409, 'PROXY_ROUTE_EXISTS'],
    ['same id', 'POST', '/api/v1/proxy/routes', { id: 'shop', match: '/other/', origin: origin.url }, 409, 'PROXY_ROUTE_EXISTS'],
    ['not JSON', 'POST', '/api/v1/proxy/routes', '{nope', 400, 'MALFORMED_JSON'],
    ['replace unknown', 'PUT', '/api/v1/proxy/routes/nope', { match: '/n/', origin: origin.url }, 404, 'PROXY_ROUTE_NOT_FOUND'],
    ['replace invalid', 'PUT', '/api/v1/proxy/routes/shop', { match: '/shop/', origin: origin.url, tls_verify: false }, 400, 'INVALID_PROXY_ROUTE'],
    ['rename', 'PUT', '/api/v1/proxy/routes/shop', { id: 'other', match: '/shop/', origin: origin.url }, 400, 'INVALID_PROXY_ROUTE'],
    ['delete unknown', 'DELETE', '/api/v1/proxy/routes/nope', undefined, 404, 'PROXY_ROUTE_NOT_FOUND'],
  ]
  for (const [what, method, url, body, status, code] of attempts) {
    const answer =
      typeof body === 'string'
        ? await app.inject({ method, url, headers: { ...auth, 'content-type': 'application/json' }, payload: body })
        : await api(app, method, url, body)
    t.equal(answer.statusCode, status, `${what}: ${answer.body}`)
    t.equal(answer.json().code, code, what)
  }
  t.same(await snapshot(), before, 'nothing changed')
  t.equal((await api(app, 'GET', '/api/v1/proxy/routes/shop', undefined, {})).statusCode, 401)

  // A valid replace keeps id and creation time; another route cannot take a used match.
  await addRoute(t, app, { id: 'cart', match: '/cart/', origin: origin.url })
  t.equal((await api(app, 'PUT', '/api/v1/proxy/routes/cart', { match: '/shop/', origin: origin.url })).statusCode, 409)
  const replaced = await api(app, 'PUT', '/api/v1/proxy/routes/shop', { match: 'shop.example.com/store', origin: `${origin.url}/v2`, strip_prefix: true })
  t.equal(replaced.statusCode, 200, replaced.body)
  t.match(replaced.json(), { id: 'shop', kind: 'host', match: 'shop.example.com/store/', host: 'shop.example.com', path_prefix: '/store/', origin: `${origin.url}/v2`, created_at: before[0].created_at })
  t.equal((await api(app, 'DELETE', '/api/v1/proxy/routes/shop')).statusCode, 204)
  t.equal((await api(app, 'GET', '/api/v1/proxy/routes/shop')).json().code, 'PROXY_ROUTE_NOT_FOUND')
  t.ok(created)
})

t.test('the proxy can be turned off, and a half-set TLS configuration is refused', async (t) => {
  const running = await engine(t, { SLIPWAY_PROXY_ENABLED: 'false' })
  t.equal(running.engine.proxyUrl(), undefined)
  t.equal((await api(running.engine.app, 'GET', '/api/v1/proxy/routes')).statusCode, 200, 'routes are still managed')
  t.throws(() => loadConfig({ cwd: os.tmpdir(), env: { SLIPWAY_PROXY_TLS_CERT_FILE: '/nonexistent.crt' } }), { message: /proxy\.tls: set both certFile and keyFile/ })

  // A port already taken: start-up fails naming the setting.
  const blocker = await startOrigin(t, 'blocker')
  const blocked = await startTestEngine({ env: { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_PROXY_PORT: String(blocker.port) } })
  t.teardown(async () => {
    await blocked.engine.close()
    removeTree(path.dirname(blocked.dataDir))
  })
  await t.rejects(blocked.engine.start(), { name: 'ListenerError', message: /^the reverse proxy listener cannot listen on 127\.0\.0\.1:\d+: address already in use \(EADDRINUSE\); set proxy\.host \/ proxy\.port/ })
})
