import t from 'tap'
import { SlipwayError } from '../../../src/core/errors.ts'
import { canonicalHost, hasDotSegment, matchOf, parseMatch, parseOrigin, parseRouteDocument } from '../../../src/core/proxy/proxy-route.ts'
import { prefixMatches, requestHost, selectRoute, upstreamTarget } from '../../../src/core/proxy/route-selection.ts'

const route = (id: string, match: string) => ({ id, ...parseMatch(match, undefined) })

t.test('host routes before path routes, longest prefix wins, whole segments only', async (t) => {
  const routes = [
    route('root', '/'),
    route('shop', '/shop/'),
    route('shop-api', '/shop/api/'),
    route('shop-host', 'shop.example.com'),
    route('shop-host-api', 'shop.example.com/api/'),
    route('other-host', 'other.example.com/only/'),
  ]
  const pick = (host: string | undefined, path: string) => selectRoute(routes, host, path)?.id
  t.equal(pick('engine.local', '/shop/cart'), 'shop')
  t.equal(pick('engine.local', '/shop'), 'shop', 'the prefix without its slash is the same prefix')
  t.equal(pick('engine.local', '/shopping'), 'root', 'no partial segment match')
  t.equal(pick('engine.local', '/shop/api/v1/items'), 'shop-api', 'longest prefix')
  t.equal(pick(undefined, '/anything'), 'root')
  t.equal(pick('shop.example.com', '/shop/cart'), 'shop-host', 'a host route wins over a longer path route')
  t.equal(pick('Shop.Example.COM.:8081', '/api/x'), 'shop-host-api', 'host compared without case, port and trailing dot')
  t.equal(pick('other.example.com', '/elsewhere'), 'root', 'a host whose prefixes do not match falls back to path routes')
  t.equal(pick('other.example.com', '/only/x'), 'other-host')
  t.equal(selectRoute([route('a', '/a/')], 'x', '/b'), undefined)
})

t.test('selection is deterministic whatever the order of the list', async (t) => {
  const routes = [route('b', '/x/'), route('a', '/x/'), route('c', '/x/y/')]
  for (let i = 0; i < 6; i++) {
    const shuffled = [...routes].sort(() => Math.random() - 0.5)
    t.equal(selectRoute(shuffled, 'h', '/x/z')?.id, 'a', 'ties go to the smaller id')
    t.equal(selectRoute(shuffled, 'h', '/x/y/z')?.id, 'c')
  }
})

t.test('prefix matching, request hosts and upstream targets', async (t) => {
  t.ok(prefixMatches('/', '/'))
  t.ok(prefixMatches('/a/', '/a'))
  t.notOk(prefixMatches('/a/', '/ab'))
  t.notOk(prefixMatches('/a/b/', '/a'))
  t.equal(requestHost('[::1]:8080'), '[::1]')
  t.equal(requestHost('EXAMPLE.org'), 'example.org')
  const strip = { pathPrefix: '/shop/', stripPrefix: true }
  t.equal(upstreamTarget(strip, '', '/shop/cart', '?q=1'), '/cart?q=1')
  t.equal(upstreamTarget(strip, '', '/shop', ''), '/')
  t.equal(upstreamTarget(strip, '/base', '/shop/', ''), '/base/')
  t.equal(upstreamTarget({ pathPrefix: '/shop/', stripPrefix: false }, '/base', '/shop/cart', ''), '/base/shop/cart')
  t.equal(upstreamTarget({ pathPrefix: '/', stripPrefix: true }, '', '/x', ''), '/x')
})

t.test('documents: canonical forms and defaults', async (t) => {
  const { id, spec } = parseRouteDocument({ match: '/shop', origin: 'http://10.0.0.5:80/base/' })
  t.equal(id, undefined)
  t.same(spec, { kind: 'path', host: '', pathPrefix: '/shop/', origin: 'http://10.0.0.5/base', stripPrefix: false, preserveHost: false, tlsVerify: true, healthCheckPath: null })
  const host = parseRouteDocument({ id: 'web', kind: 'host', match: 'Web.Example.com./api', origin: 'https://backend:8443', tls_verify: false, strip_prefix: true, health_check_path: '/healthz' })
  t.match(host, { id: 'web', spec: { kind: 'host', host: 'web.example.com', pathPrefix: '/api/', origin: 'https://backend:8443', tlsVerify: false, stripPrefix: true, healthCheckPath: '/healthz' } })
  t.equal(matchOf(host.spec), 'web.example.com/api/')
  t.equal(matchOf(parseRouteDocument({ match: 'a.b', origin: 'http://x' }).spec), 'a.b')
  t.match(parseOrigin('https://[::1]:8443'), { base: 'https://[::1]:8443', hostHeader: '[::1]:8443', basePath: '' })
  t.equal(canonicalHost('a_b.example'), undefined)
  t.ok(hasDotSegment('/a/%2E%2e/b'))
  t.notOk(hasDotSegment('/a/..b/c.d'))
})

t.test('bad documents: 400 INVALID_PROXY_ROUTE naming the field', async (t) => {
  const bad: [unknown, RegExp][] = [
    [{ origin: 'http://x' }, /match/],
    [{ match: '/a/', origin: 'http://x', extra: 1 }, /unknown field\(s\) extra/],
    [{ match: '/a/', origin: 'ftp://x' }, /origin: the scheme must be http or https/],
    [{ match: '/a/', origin: 'not a url' }, /is not a URL/],
    [{ match: '/a/', origin: 'http://u:p@x' }, /credentials/],
    [{ match: '/a/', origin: 'http://x/?q=1' }, /no query/],
    [{ match: '/a b/', origin: 'http://x' }, /not a path prefix/],
    [{ match: '/a/../b/', origin: 'http://x' }, /"\.\." segment|"\." or "\.\." segment/],
    [{ match: '/a//b/', origin: 'http://x' }, /empty segment/],
    [{ match: 'bad_host.example', origin: 'http://x' }, /not a host name/],
    [{ match: 'h.example:8080', origin: 'http://x' }, /not a host name/],
    [{ kind: 'path', match: 'shop.example.com', origin: 'http://x' }, /a path route matches a path prefix/],
    [{ kind: 'host', match: '/shop/', origin: 'http://x' }, /a host route starts with a host name/],
    [{ match: '/a/', origin: 'http://x', tls_verify: false }, /tls_verify: applies to https origins only/],
    [{ match: '/a/', origin: 'http://x', strip_prefix: 'yes' }, /strip_prefix/],
    [{ id: 'Upper', match: '/a/', origin: 'http://x' }, /id: must match/],
    [{ match: '/a/', origin: 'http://x', health_check_path: 'healthz' }, /health_check_path: must be an absolute path/],
    ['text', /route/],
  ]
  for (const [input, message] of bad) {
    const error = t.throws(() => parseRouteDocument(input), JSON.stringify(input)) as SlipwayError
    t.equal(error.code, 'INVALID_PROXY_ROUTE', JSON.stringify(input))
    t.equal(error.kind, 'invalid')
    t.match(error.message, message)
  }
})
