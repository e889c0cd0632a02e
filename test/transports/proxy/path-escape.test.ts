/**
 * Path traversal through the reverse proxy, end to end: the real proxy listener of an engine in front
 * of a real origin on loopback that serves /secret.txt outside the route's base, and resolves paths
 * the way careless servers do (percent-decoding everything, `\` as `/`, overlong UTF-8 `%c0%ae` as
 * `.`, a NUL ending the path, `;parameters` dropped from segments). Whatever a client spells, the
 * origin is never asked for anything outside the base.
 */
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import path from 'node:path'
import t, { type Test } from 'tap'
import { auth, removeTree, startTestEngine, type TestEngine } from '../../helpers/engine.ts'

const SECRET = 'the-secret-outside-the-base'

/** What a lenient origin makes of a request path: every escape decoded, `\` is `/`, dot segments resolved. */
function carelessResolve(target: string): string {
  let raw = target.split('?')[0]!
  raw = raw.replace(/%c0%ae/gi, '.').replace(/%c0%af/gi, '/').replace(/%c1%9c/gi, '\\')
  const bytes: number[] = []
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '%' && /^[0-9a-f]{2}$/i.test(raw.slice(i + 1, i + 3))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(raw.charCodeAt(i) & 0xff)
  }
  let decoded = Buffer.from(bytes).toString('latin1')
  const nul = decoded.indexOf('\0')
  if (nul !== -1) decoded = decoded.slice(0, nul)
  // Path parameters dropped from each segment, as servlet containers do (`..;x=1` is `..`).
  const segments = decoded.replace(/\\/g, '/').split('/').map((segment) => segment.replace(/;.*$/, ''))
  return path.posix.normalize(segments.join('/'))
}

interface CarelessOrigin {
  url: string
  /** Request targets exactly as received. */
  seen: string[]
}

async function startCarelessOrigin(t: Test): Promise<CarelessOrigin> {
  const seen: string[] = []
  const server = http.createServer((request, response) => {
    seen.push(request.url!)
    const file = carelessResolve(request.url!)
    if (file === '/secret.txt') return response.end(SECRET)
    if (file.startsWith('/base/') || file === '/base') return response.end(JSON.stringify({ file }))
    response.statusCode = 404
    response.end(JSON.stringify({ file, error: 'not found' }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  )
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

/** One request with the target written byte for byte (no client library re-encodes it). */
async function rawGet(proxyUrl: string, target: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(proxyUrl)
  const socket = net.connect(Number(port), hostname)
  await once(socket, 'connect')
  socket.write(Buffer.from(`GET ${target} HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n`, 'latin1'))
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await once(socket, 'close')
  const text = Buffer.concat(chunks).toString('latin1')
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
  return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4) }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return { notJson: text }
  }
}

async function engineWithRoute(t: Test, document: Record<string, unknown>): Promise<TestEngine> {
  const running = await startTestEngine({
    env: { SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_HTTP_PORT: '0', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0', SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0', SLIPWAY_PROXY_HEALTH_INTERVAL_SECONDS: '0' },
  })
  t.teardown(async () => {
    await running.engine.close()
    removeTree(path.dirname(running.dataDir))
  })
  await running.engine.start()
  const created = await running.engine.app.inject({ method: 'POST', url: '/api/v1/proxy/routes', headers: auth, payload: document })
  t.equal(created.statusCode, 201, created.body)
  return running
}

// [request target, status expected from the proxy]: 400 for a refused path, 404 for one that normalises
// to a path outside every route, 200 for one that stays in the base.
const ATTACKS: [string, number][] = [
  ['/files/..%2fsecret.txt', 400],
  ['/files/..%2Fsecret.txt', 400],
  ['/files/%2e%2e%2fsecret.txt', 400],
  ['/files/%2E%2E/secret.txt', 404],
  ['/files/%2e%2e/secret.txt', 404],
  ['/files/../secret.txt', 404],
  ['/files/.%2e/secret.txt', 404],
  ['/files/..\\secret.txt', 400],
  ['/files/..%5csecret.txt', 400],
  ['/files/..%5Csecret.txt', 400],
  ['/files/%2e%2e%5csecret.txt', 400],
  ['/files/a/..%2f..%2fsecret.txt', 400],
  ['/files/a%2f..%2f..%2fsecret.txt', 400],
  ['/files/%5c..%5csecret.txt', 400],
  ['/files//..//secret.txt', 404],
  ['/files/./../secret.txt', 404],
  ['/files/a/../../secret.txt', 404],
  ['/files/%c0%ae%c0%ae/secret.txt', 400],
  ['/files/%c0%ae%c0%ae%c0%afsecret.txt', 400],
  ['/files/..%00/secret.txt', 400],
  ['/files/a/..%00', 400],
  ['/files/secret.txt%00', 400],
  ['/files/..;/secret.txt', 400],
  ['/files/%2e%2e;x=1/secret.txt', 400],
  // Inside the base: normalised, forwarded, served from the base.
  ['/files//a//b.txt', 200],
  ['/files/./a/./b.txt', 200],
  ['/files/a/../b.txt', 200],
  ['/files/%252e%252e%252fsecret.txt', 200],
  ['/files/%41%7e.txt', 200],
  ['/files/a.txt?next=../../secret.txt', 200],
]

for (const stripPrefix of [true, false]) {
  t.test(`no spelling of a path reaches outside the route's base (strip_prefix ${stripPrefix})`, async (t) => {
    const origin = await startCarelessOrigin(t)
    const running = await engineWithRoute(t, { match: '/files/', origin: `${origin.url}/base/`, strip_prefix: stripPrefix })
    const proxyUrl = running.engine.proxyUrl()!

    // The origin does serve the secret to whoever asks it directly: the proxy is all that stands in between.
    t.equal((await rawGet(origin.url, '/base/../secret.txt')).body, SECRET, 'the origin serves /secret.txt when asked')

    for (const [target, status] of ATTACKS) {
      const before = origin.seen.length
      const answer = await rawGet(proxyUrl, target)
      t.notMatch(answer.body, SECRET, `${target}: the secret is not served`)
      t.equal(answer.status, status, `${target}: ${answer.status} ${answer.body.slice(0, 300)}`)
      for (const forwarded of origin.seen.slice(before)) {
        const resolved = carelessResolve(forwarded)
        t.ok(resolved === '/base' || resolved.startsWith('/base/'), `${target}: forwarded as ${forwarded}, which a careless origin reads as ${resolved}`)
      }
      if (status !== 200) {
        t.equal(origin.seen.length, before, `${target}: nothing forwarded`)
        t.match(parseJson(answer.body), { statusCode: status, code: String }, `${target}: the proxy's JSON error`)
      }
    }
  })
}

t.test('forwarded paths are the normalised ones; the query string is left as sent', async (t) => {
  const origin = await startCarelessOrigin(t)
  const running = await engineWithRoute(t, { match: '/files/', origin: `${origin.url}/base/`, strip_prefix: true })
  const proxyUrl = running.engine.proxyUrl()!
  const cases: [string, string][] = [
    ['/files//a//b.txt', '/base/a/b.txt'],
    ['/files/./a/./b.txt', '/base/a/b.txt'],
    ['/files/a/../b.txt', '/base/b.txt'],
    ['/files/a/.', '/base/a/'],
    ['/files/a/..', '/base/'],
    ['/files/%252e%252e%252fsecret.txt', '/base/%252e%252e%252fsecret.txt'],
    ['/files/%41%7e%2D%5f%2e.txt', '/base/A~-_..txt'],
    ['/files/caf%c3%a9?q=%2e%2e/../x&y=%2f', '/base/caf%C3%A9?q=%2e%2e/../x&y=%2f'],
    ['/files/a%20b%3Fc', '/base/a%20b%3Fc'],
  ]
  for (const [target, forwarded] of cases) {
    const before = origin.seen.length
    const answer = await rawGet(proxyUrl, target)
    t.equal(answer.status, 200, `${target}: ${answer.body}`)
    t.same(origin.seen.slice(before), [forwarded], `${target} -> ${forwarded}`)
  }
  // Routing sees the normalised path too: a path that leaves /files/ is not sent to its origin.
  const elsewhere = await rawGet(proxyUrl, '/files/../other/x')
  t.equal(elsewhere.status, 404)
  t.match(parseJson(elsewhere.body), { code: 'NO_PROXY_ROUTE', details: { path: '/other/x' } })
})

t.test('refusals carry a stable code and say what is wrong', async (t) => {
  const origin = await startCarelessOrigin(t)
  const running = await engineWithRoute(t, { match: '/files/', origin: `${origin.url}/base/` })
  const proxyUrl = running.engine.proxyUrl()!
  const cases: [string, string, RegExp][] = [
    ['/files/..%2fsecret.txt', 'ENCODED_SLASH_IN_PATH', /encoded "\/" or "\\"/],
    ['/files/a%5cb', 'ENCODED_SLASH_IN_PATH', /encoded "\/" or "\\"/],
    ['/files/a\\b', 'ENCODED_SLASH_IN_PATH', /encoded "\/" or "\\"/],
    ['/../secret.txt', 'PATH_ABOVE_ROOT', /above the root/],
    ['/files/../../secret.txt', 'PATH_ABOVE_ROOT', /above the root/],
    ['/files/%zz', 'BAD_PATH_ENCODING', /percent/],
    ['/files/a%00', 'BAD_PATH_ENCODING', /control/],
    ['/files/%c0%ae', 'BAD_PATH_ENCODING', /UTF-8/],
    ['/files/..;/x', 'DOT_SEGMENT_WITH_PARAMETERS', /parameters/],
  ]
  for (const [target, code, message] of cases) {
    const answer = await rawGet(proxyUrl, target)
    t.equal(answer.status, 400, target)
    t.match(parseJson(answer.body), { statusCode: 400, code, message }, target)
  }
  t.same(origin.seen, [], 'nothing reached the origin')
})
