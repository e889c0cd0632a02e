/**
 * The proxy's path normalisation against a table of cases, each with what nginx 1.22 makes of the
 * same request target (`location /files/ { proxy_pass http://origin/base/; }`, merge_slashes on): the
 * normalised URI it routes by and forwards, re-escaped as it forwards it, or 400. Where Slipway is
 * stricter than nginx the row says why. The last test checks the nginx column against a live nginx
 * on loopback when one is installed.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { normalizeRequestPath, type PathProblemCode } from '../../../src/core/proxy/path-normalization.ts'
import { canonicalPrefix } from '../../../src/core/proxy/proxy-route.ts'
import { selectRoute, upstreamTarget } from '../../../src/core/proxy/route-selection.ts'
import { sleep } from '../../helpers/wait.ts'

interface Case {
  target: string
  /** The normalised path, or the code it is refused with (400). */
  slipway: string | PathProblemCode
  /** The URI nginx routes by and forwards, or its status when it answers itself (400). */
  nginx: string
  why?: string
}

const STRICTER_SLASH = 'an encoded separator: nginx decodes it into "/", origins behind a proxy that keeps it may decode it after routing'
const STRICTER_BACKSLASH = 'a "\\" is a separator on Windows origins'

const CASES: Case[] = [
  // Encoded separators.
  { target: '/files/..%2fsecret.txt', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/secret.txt', why: STRICTER_SLASH },
  { target: '/files/..%2Fsecret.txt', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/secret.txt', why: STRICTER_SLASH },
  { target: '/files/%2e%2e%2fsecret.txt', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/secret.txt', why: STRICTER_SLASH },
  { target: '/files/a%2fb', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/files/a/b', why: STRICTER_SLASH },
  { target: '/files/%2F', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/files/', why: STRICTER_SLASH },
  { target: '/files/a%2f..%2f..%2fsecret', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/secret', why: STRICTER_SLASH },
  { target: '/files/..\\secret.txt', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/files/..\\secret.txt', why: STRICTER_BACKSLASH },
  { target: '/files/a\\b', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/files/a\\b', why: STRICTER_BACKSLASH },
  { target: '/files/..%5csecret.txt', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/files/..%5Csecret.txt', why: STRICTER_BACKSLASH },
  { target: '/files/%2e%2e%5csecret.txt', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/files/..%5Csecret.txt', why: STRICTER_BACKSLASH },
  { target: '/files/a%5Cb', slipway: 'ENCODED_SLASH_IN_PATH', nginx: '/files/a%5Cb', why: STRICTER_BACKSLASH },
  // Dot segments, plain and encoded: resolved as nginx does; above the root refused as nginx does.
  { target: '/files/../secret.txt', slipway: '/secret.txt', nginx: '/secret.txt' },
  { target: '/files/%2E%2E/secret.txt', slipway: '/secret.txt', nginx: '/secret.txt' },
  { target: '/files/.%2e/x', slipway: '/x', nginx: '/x' },
  { target: '/files/%2e%2e', slipway: '/', nginx: '/' },
  { target: '/files/..', slipway: '/', nginx: '/' },
  { target: '/files/a/../b', slipway: '/files/b', nginx: '/files/b' },
  { target: '/files/a/.', slipway: '/files/a/', nginx: '/files/a/' },
  { target: '/files/a/..', slipway: '/files/', nginx: '/files/' },
  { target: '/files/%2e', slipway: '/files/', nginx: '/files/' },
  { target: '/files/./a/./b', slipway: '/files/a/b', nginx: '/files/a/b' },
  { target: '/files/../../secret.txt', slipway: 'PATH_ABOVE_ROOT', nginx: '400' },
  { target: '/..', slipway: 'PATH_ABOVE_ROOT', nginx: '400' },
  { target: '/files/...', slipway: '/files/...', nginx: '/files/...' },
  { target: '/files/%2e%2e%2e', slipway: '/files/...', nginx: '/files/...' },
  { target: '/files/a%2e%2e', slipway: '/files/a..', nginx: '/files/a..' },
  { target: '/files/a%2E', slipway: '/files/a.', nginx: '/files/a.' },
  // Slashes merged.
  { target: '/files//a//b', slipway: '/files/a/b', nginx: '/files/a/b' },
  { target: '//files/a', slipway: '/files/a', nginx: '/files/a' },
  { target: '/files/a//../b', slipway: '/files/b', nginx: '/files/b' },
  { target: '/', slipway: '/', nginx: '/' },
  { target: '/files/', slipway: '/files/', nginx: '/files/' },
  { target: '/files', slipway: '/files', nginx: '301', why: 'nginx redirects to its location with the slash; the path itself is already normal' },
  // Escapes: unreserved decoded, the rest kept upper-case (nginx re-escapes what it forwards the same way).
  { target: '/files/%41%7e%2d', slipway: '/files/A~-', nginx: '/files/A~-' },
  { target: '/files/%7E%41', slipway: '/files/~A', nginx: '/files/~A' },
  { target: '/files/%252e%252e%252fsecret.txt', slipway: '/files/%252e%252e%252fsecret.txt', nginx: '/files/%252e%252e%252fsecret.txt' },
  { target: '/files/caf%c3%a9', slipway: '/files/caf%C3%A9', nginx: '/files/caf%C3%A9' },
  { target: '/files/%20x', slipway: '/files/%20x', nginx: '/files/%20x' },
  { target: '/files/a%3fb', slipway: '/files/a%3Fb', nginx: '/files/a%3Fb' },
  { target: '/files/a%23b', slipway: '/files/a%23b', nginx: '/files/a%23b' },
  { target: '/files/a%25b', slipway: '/files/a%25b', nginx: '/files/a%25b' },
  { target: '/files/%3b', slipway: '/files/%3B', nginx: '/files/;', why: 'only unreserved characters are decoded: ";" is a delimiter to some origins' },
  { target: '/files/a;x=1/b', slipway: '/files/a;x=1/b', nginx: '/files/a;x=1/b' },
  // Dot segments with parameters: servlet containers read "..;x" as "..".
  { target: '/files/..;/secret.txt', slipway: 'DOT_SEGMENT_WITH_PARAMETERS', nginx: '/files/..;/secret.txt', why: 'Tomcat and Jetty drop ";x" and resolve the ".."' },
  { target: '/files/%2e%2e;x=1/secret.txt', slipway: 'DOT_SEGMENT_WITH_PARAMETERS', nginx: '/files/..;x=1/secret.txt', why: 'Tomcat and Jetty drop ";x" and resolve the ".."' },
  { target: '/files/..%3bx/secret.txt', slipway: 'DOT_SEGMENT_WITH_PARAMETERS', nginx: '/files/..;x/secret.txt', why: 'Tomcat and Jetty drop ";x" and resolve the ".."' },
  { target: '/files/.;x/a', slipway: 'DOT_SEGMENT_WITH_PARAMETERS', nginx: '/files/.;x/a', why: 'Tomcat and Jetty drop ";x" and resolve the "."' },
  // Control characters, malformed escapes, bytes that are not UTF-8.
  { target: '/files/a%00', slipway: 'BAD_PATH_ENCODING', nginx: '400' },
  { target: '/files/secret.txt%00', slipway: 'BAD_PATH_ENCODING', nginx: '400' },
  { target: '/files/a%01b', slipway: 'BAD_PATH_ENCODING', nginx: '/files/a%01b', why: 'a control character ends or splits a path in C origins' },
  { target: '/files/%7f', slipway: 'BAD_PATH_ENCODING', nginx: '/files/%7F', why: 'a control character' },
  { target: '/files/%zz', slipway: 'BAD_PATH_ENCODING', nginx: '400' },
  { target: '/files/%4', slipway: 'BAD_PATH_ENCODING', nginx: '400' },
  { target: '/files/%c0%ae%c0%ae/secret.txt', slipway: 'BAD_PATH_ENCODING', nginx: '/files/%C0%AE%C0%AE/secret.txt', why: 'overlong UTF-8 for ".": old decoders read it as ".."' },
  { target: '/files/%c3%a9%c0', slipway: 'BAD_PATH_ENCODING', nginx: '/files/%C3%A9%C0', why: 'a truncated UTF-8 sequence' },
  { target: '/files/%ed%a0%80', slipway: 'BAD_PATH_ENCODING', nginx: '/files/%ED%A0%80', why: 'an encoded UTF-16 surrogate is not UTF-8' },
]

t.test('every case of the table', async (t) => {
  for (const { target, slipway } of CASES) {
    const result = normalizeRequestPath(target)
    if (slipway.startsWith('/')) t.same(result, { ok: true, path: slipway }, `${target} -> ${slipway}`)
    else t.match(result, { ok: false, code: slipway, message: /^the path ".*" / }, `${target} refused: ${slipway}`)
  }
})

t.test('a normalised path is a fixed point, and never holds a dot segment, an empty segment or an encoded separator', async (t) => {
  for (const { target } of CASES) {
    const result = normalizeRequestPath(target)
    if (!result.ok) continue
    t.same(normalizeRequestPath(result.path), result, `${result.path} normalises to itself`)
    t.notMatch(result.path, /(^|\/)\.\.?(\/|$)|\/\/|%2f|%5c|\\/i, result.path)
  }
})

t.test('random paths: no normalised path climbs out of the prefix it starts with', async (t) => {
  const pieces = ['a', '.', '..', '%2e', '%2E%2e', '', '%2f', '%5c', '\\', ';x', '%3b', '%41', '%00', '%c0%ae', '%c3%a9', 'b.c', '%25', '%zz', '...']
  let seed = 12345
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  let normalised = 0
  for (let run = 0; run < 20_000; run++) {
    const segments = Array.from({ length: 1 + Math.floor(random() * 6) }, () => Array.from({ length: 1 + Math.floor(random() * 2) }, () => pieces[Math.floor(random() * pieces.length)]).join(''))
    const target = `/files/${segments.join('/')}`
    const result = normalizeRequestPath(target)
    if (!result.ok) continue
    normalised++
    // Whatever an origin decodes, the path it is sent has nothing that walks up.
    const fullyDecoded = result.path.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    const walksUp = fullyDecoded.split('/').some((segment) => /^\.\.?(;.*)?$/.test(segment))
    if (walksUp) t.fail(`${target} -> ${result.path}`)
    // Starting under /files/, a path either stays there or is resolved (plainly) to somewhere else.
    if (!result.path.startsWith('/files/') && result.path !== '/files') {
      const plain = target.replace(/%2e/gi, '.')
      if (!/(^|\/)\.\.(\/|$)/.test(plain)) t.fail(`${target} left /files/ without a ".." segment: ${result.path}`)
    }
  }
  t.ok(normalised > 1000, `${normalised} of 20000 random paths normalised, the rest refused`)
})

t.test('route prefixes are kept in the form requests are matched in', async (t) => {
  t.equal(canonicalPrefix('/%7Euser'), '/~user/')
  t.equal(canonicalPrefix('/caf%c3%a9/'), '/caf%C3%A9/')
  t.throws(() => canonicalPrefix('/a%2fb/'), { code: 'INVALID_PROXY_ROUTE', message: /prefix: the path "\/a%2fb\/" has an encoded "\/"/ })
  t.throws(() => canonicalPrefix('/a%00/'), { code: 'INVALID_PROXY_ROUTE' })
  const routes = [{ id: 'cafe', host: '', pathPrefix: canonicalPrefix('/caf%c3%a9/'), stripPrefix: true }]
  for (const target of ['/caf%C3%A9/menu', '/caf%c3%a9/menu', '/caf%c3%a9//./menu']) {
    const normalized = normalizeRequestPath(target)
    if (!normalized.ok) throw new Error(normalized.message)
    const route = selectRoute(routes, undefined, normalized.path)
    t.equal(route?.id, 'cafe', target)
    t.equal(upstreamTarget(route!, '/base', normalized.path, '?q=%2e%2e'), '/base/menu?q=%2e%2e')
  }
})

const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((file) => existsSync(file))

t.test('the nginx column is what a live nginx does', { skip: nginx ? false : 'nginx is not installed' }, async (t) => {
  // The origin answers with the request target it received.
  const origin = http.createServer((request, response) => response.end(request.url))
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => new Promise<void>((resolve) => origin.close(() => resolve())))
  const originPort = (origin.address() as AddressInfo).port
  const port = await freePort()

  const prefix = mkdtempSync(path.join(os.tmpdir(), 'slipway-nginx-'))
  mkdirSync(path.join(prefix, 'tmp'))
  const temp = (name: string) => `${name} ${path.join(prefix, 'tmp')};`
  writeFileSync(
    path.join(prefix, 'nginx.conf'),
    `daemon off; worker_processes 1; pid ${path.join(prefix, 'nginx.pid')}; error_log ${path.join(prefix, 'error.log')};
events { worker_connections 64; }
http {
  access_log off; ${temp('client_body_temp_path')} ${temp('proxy_temp_path')} ${temp('fastcgi_temp_path')} ${temp('uwsgi_temp_path')} ${temp('scgi_temp_path')}
  server {
    listen 127.0.0.1:${port};
    location /files/ { proxy_pass http://127.0.0.1:${originPort}/base/; }
    location / { proxy_pass http://127.0.0.1:${originPort}/other/; }
  }
}
`,
  )
  const server = spawn(nginx!, ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', path.join(prefix, 'error.log')], { stdio: 'ignore' })
  t.teardown(async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = once(server, 'exit')
      server.kill('SIGTERM')
      await exited
    }
    rmSync(prefix, { recursive: true, force: true })
  })
  for (let attempt = 0; !(await accepts(port)); attempt++) {
    if (attempt > 100 || server.exitCode !== null) throw new Error('nginx did not start')
    await sleep(50)
  }

  for (const { target, nginx: expected } of CASES) {
    const answer = await rawGet(port, target)
    // Map what the origin saw back to the URI nginx routed: /base/x was /files/x, /other/x was /x.
    const routed = answer.status === 200 ? answer.body.replace(/^\/base\//, '/files/').replace(/^\/other\//, '/') : String(answer.status)
    t.equal(routed, expected, `nginx: ${target} -> ${routed}`)
  }
})

async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => resolve(true))
    socket.once('error', () => resolve(false))
    socket.once('connect', () => socket.destroy())
  })
}

async function rawGet(port: number, target: string): Promise<{ status: number; body: string }> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(Buffer.from(`GET ${target} HTTP/1.0\r\nHost: nginx.test\r\n\r\n`, 'latin1'))
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await once(socket, 'close')
  const text = Buffer.concat(chunks).toString('latin1')
  return { status: Number(/^HTTP\/1\.\d (\d{3})/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) }
}
