/**
 * Hostile and broken input against a real engine over a real socket: JSON nested 50,000 deep, a
 * body that fails its schema thousands of times, selector keys and ids no client writes, numbers no
 * machine has, a compressed body the engine cannot read, requests Node's own parser refuses, a flood
 * of calls without a token, and the files the engine writes. Each gets a 4xx with a stable code,
 * changes nothing, and stays small.
 */
import net from 'node:net'
import { statSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { RawHttpClient } from '../../helpers/raw-http.ts'

/** One request written as is on a fresh socket; the whole answer as text. */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(text))
    let answer = ''
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')))
    socket.on('close', () => resolve(answer))
    socket.on('error', reject)
  })
}

t.test('bad input: a 4xx with a code, nothing changed, a bounded answer', async (t) => {
  const { engine, dataDir, config } = await startTestEngine({ env: { SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_BODY_LIMIT: '1048576' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const port = Number(new URL(await engine.start()).port)
  const client = new RawHttpClient(port)
  t.teardown(() => client.close())
  const json = { ...auth, 'content-type': 'application/json' }
  const send = (method: string, url: string, body: string, headers: Record<string, string> = json) => client.request(method, url, headers, body)
  const codeOf = (body: string) => {
    try {
      return (JSON.parse(body) as { code?: string }).code
    } catch {
      return `not JSON: ${body.slice(0, 80)}`
    }
  }
  const groups = async () => (await client.request('GET', '/api/v1/groups', auth)).body

  const before = await groups()
  // 50,000 deep, on a route with a schema and on one that takes any JSON.
  // 50,000 deep on the admin routes; 30,000 on /discovery, whose bodies stop at 64 KiB.
  for (const [url, depth] of [['/api/v1/groups', 50_000], ['/api/v1/inventory/import', 50_000], ['/discovery', 30_000]] as const) {
    const deep = await send('POST', url, `${'['.repeat(depth)}${']'.repeat(depth)}`)
    t.equal(deep.status, 400, `${url}: ${depth}-deep JSON is a 400, not a 500`)
    t.equal(codeOf(deep.body), 'TOO_DEEP')
  }
  const deepObject = await send('POST', '/api/v1/groups', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`)
  t.equal(codeOf(deepObject.body), 'TOO_DEEP', 'objects too')
  t.equal(codeOf((await send('POST', '/api/v1/groups', '{"id":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "profile": "discovery"}')).body), 'VALIDATION_FAILED', 'brackets inside a string do not count')

  // A body that fails its schema thousands of times gets a bounded answer, whichever layer checks it.
  const manyLabels = JSON.stringify(Object.fromEntries(Array.from({ length: 3000 }, (_, index) => [`key-${index}`, index])))
  const manyLocations = JSON.stringify(Array.from({ length: 3000 }, (_, index) => ({ subnet: `bad ${index}`, site: '', latitude: 200 })))
  for (const [method, url, payload, code] of [
    ['PUT', '/api/v1/machines/4c4c4544-0042-3510-8050-b4c04f4e3432/labels', manyLabels, 'VALIDATION_FAILED'],
    ['PUT', '/api/v1/dns/locations', manyLocations, 'INVALID_LOCATION'],
  ] as const) {
    const failing = await send(method, url, payload)
    t.equal(failing.status, 400)
    const body = JSON.parse(failing.body) as { code: string; details: { problems: string[]; count: number } }
    t.equal(body.code, code)
    t.ok(body.details.problems.length <= 20 && body.details.count >= body.details.problems.length, `${url}: ${body.details.problems.length} problems answered of ${body.details.count}`)
    t.ok(failing.body.length < 8192, `${url}: the answer (${failing.body.length} bytes) for a ${payload.length}-byte body`)
  }

  // Keys, values and ids no client writes.
  for (const [what, group] of [
    ['an empty selector key', { id: 'g1', profile: 'discovery', selector: { '': 'x' } }],
    ['a selector key with NUL', { id: 'g2', profile: 'discovery', selector: { 'k\u0000': 'x' } }],
    ['a selector value with a newline', { id: 'g3', profile: 'discovery', selector: { rack: 'r1\nforged log line' } }],
    ['a name with a control character', { id: 'g4', name: 'a\u0007b', profile: 'discovery' }],
    ['a 300-character id', { id: 'g'.repeat(300), profile: 'discovery' }],
  ] as const) {
    const answer = await send('POST', '/api/v1/groups', JSON.stringify(group))
    t.equal(answer.status, 400, `${what}: 400`)
  }
  const longTemplate = await client.request('PUT', `/api/v1/templates/ignition/${'t'.repeat(3000)}.json`, json, JSON.stringify({ body: '{}' }))
  t.equal(longTemplate.status, 400, 'a 3,000-character template id: 400')
  t.equal(await groups(), before, 'no group was stored by any of it')

  // Numbers no machine has.
  const machine = (memory: number) => ({ 'boot-info': { uuid: '4c4c4544-0042-3510-8050-b4c04f4e3499', mac: '52:54:00:00:99:01' }, interfaces: [{ name: 'eth0', mac: '52:54:00:00:99:01' }], memory: { 'total-bytes': memory } })
  const huge = await send('POST', '/discovery', JSON.stringify(machine(2 ** 80)), { 'content-type': 'application/json' })
  t.equal(huge.status, 400, '2^80 bytes of memory: 400')
  t.equal((await client.request('GET', '/api/v1/machines/4c4c4544-0042-3510-8050-b4c04f4e3499', auth)).status, 404, 'not stored')

  // A compressed body the engine does not decode.
  const gzip = await send('POST', '/api/v1/groups', JSON.stringify({ id: 'gz', profile: 'discovery' }), { ...json, 'content-encoding': 'gzip' })
  t.equal(gzip.status, 415, 'Content-Encoding: gzip on a plain body: 415')
  t.equal(codeOf(gzip.body), 'UNSUPPORTED_CONTENT_ENCODING')
  t.equal((await client.request('GET', '/api/v1/groups/gz', auth)).status, 404, 'not stored')
  t.equal((await client.request('POST', '/api/v1/groups', { 'content-encoding': 'gzip', 'content-type': 'application/json' }, '{}')).status, 401, 'without a token, still only 401')

  // What Node's own parser refuses, and a URL that is not valid percent-encoding.
  for (const [what, text] of [
    ['a malformed request line', 'GET /healthz HTTP/9.9\r\n\r\n'],
    ['a header without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n'],
    ['headers too large', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    ['a bad percent-escape', 'GET /api/v1/groups/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
  ] as const) {
    const answer = await rawExchange(port, text)
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1])
    t.ok(status >= 400 && status < 500, `${what}: ${status}`)
    const code = codeOf(answer.slice(answer.indexOf('\r\n\r\n') + 4))
    t.match(code, /^[A-Z_]+$/, `${what}: a code (${code})`)
  }

  // A flood without a token: counted, summarised, not one entry each.
  const auditRows = async () => Number((await engine.store.selectFrom('audit_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
  const rowsBefore = await auditRows()
  for (let n = 0; n < 2000; n++) await client.request('POST', '/api/v1/groups', { 'content-type': 'application/json' }, '{}')
  const page = (await client.request('GET', '/api/v1/audit?limit=5', auth)).body
  t.ok((await auditRows()) - rowsBefore <= 2, `2,000 refused calls are ${(await auditRows()) - rowsBefore} audit entries`)
  t.match(page, /20\d\d unauthenticated calls refused \(401\) between/, 'the summary counts them')

  // The files that hold secrets are the engine user's alone.
  for (const file of [config.database.path, `${config.database.path}-wal`, config.secrets.keyFile]) {
    t.equal(statSync(file).mode & 0o777, 0o600, `${path.basename(file)}: 0600`)
  }
  const backup = await client.request('GET', '/api/v1/backup', auth)
  t.equal(backup.status, 200)
})
