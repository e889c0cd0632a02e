/**
 * The web UI's session cookie never reaches an origin behind the reverse proxy, nor can an origin set
 * it: browsers send a host's cookies to every port of that host, so without this an app served
 * through the proxy would receive an operator's session and could replay it against the admin API.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { ADMIN_TOKEN, auth, startServingEngine } from '../../helpers/engine.ts'

t.test("the engine's session cookie is stripped on the way to an origin and refused on the way back", async (t) => {
  const { address, engine } = await startServingEngine(t, { SLIPWAY_PROXY_HEALTH_INTERVAL_SECONDS: '0', SLIPWAY_DNS_ENABLED: 'false' })
  const seen: string[] = []
  const origin = http.createServer((request, response) => {
    seen.push(String(request.headers.cookie ?? ''))
    response.setHeader('set-cookie', ['slipway_session=forged-by-the-app; Path=/', 'app=2; Path=/'])
    response.end('app page')
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => origin.close())
  const route = await fetch(`${address}/api/v1/proxy/routes`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ match: '/shop/', origin: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`, strip_prefix: true }),
  })
  t.equal(route.status, 201)

  const login = await fetch(`${address}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: ADMIN_TOKEN }), redirect: 'manual' })
  const session = /slipway_session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0]
  t.ok(session, 'an operator signed in to the web UI')
  const page = await fetch(`${engine.proxyUrl()}/shop/`, { headers: { cookie: `${session}; app=1` } })
  t.equal(await page.text(), 'app page')
  t.same(seen, ['app=1'], "the origin gets the app's cookies, not the engine's session")
  t.same(page.headers.getSetCookie(), ['app=2; Path=/'], "the origin's own cookies come back, a slipway_session of its making does not")
  const alone = await fetch(`${engine.proxyUrl()}/shop/`, { headers: { cookie: session! } })
  await alone.text()
  t.same(seen.at(-1), '', 'a Cookie header holding only the session is not forwarded at all')
})
