import t from 'tap'
import { clientIp, downstreamResponseHeaders, forwardedElement, upstreamRequestHeaders } from '../../../src/transports/proxy/forwarding.ts'

const pairs = (flat: string[]) => Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!])

t.test('request headers: hop-by-hop dropped, forwarding fields set or appended, duplicates kept', async (t) => {
  const out = upstreamRequestHeaders(
    ['Host', 'front.example', 'Connection', 'close, X-Hop', 'X-Hop', '1', 'Cookie', 'a=1', 'Cookie', 'b=2', 'X-Forwarded-For', '198.51.100.1', 'X-Forwarded-For', '198.51.100.2', 'Expect', '100-continue', 'Proxy-Connection', 'keep-alive', 'Transfer-Encoding', 'chunked', 'Via', '1.0 edge'],
    { clientAddress: '::ffff:192.0.2.7', proto: 'https', requestHost: 'front.example', upstreamHost: 'origin:8080' },
  )
  t.same(pairs(out), [
    ['Cookie', 'a=1'],
    ['Cookie', 'b=2'],
    ['host', 'origin:8080'],
    ['x-forwarded-for', '198.51.100.1, 198.51.100.2, 192.0.2.7'],
    ['x-forwarded-proto', 'https'],
    ['x-forwarded-host', 'front.example'],
    ['forwarded', 'for=192.0.2.7;host=front.example;proto=https'],
    ['via', '1.0 edge, 1.1 slipway'],
  ])
})

t.test('Forwarded quoting (RFC 7239) and client addresses', async (t) => {
  t.equal(forwardedElement('2001:db8::1', 'shop.example.com:8081', 'http'), 'for="[2001:db8::1]";host="shop.example.com:8081";proto=http')
  t.equal(forwardedElement(undefined, undefined, 'http'), 'for=unknown;proto=http')
  t.equal(clientIp('::ffff:10.0.0.1'), '10.0.0.1')
  t.equal(clientIp('::1'), '::1')
})

t.test('response headers: hop-by-hop dropped, Via appended', async (t) => {
  const out = downstreamResponseHeaders([Buffer.from('Content-Length'), Buffer.from('5'), Buffer.from('Connection'), Buffer.from('keep-alive, X-Internal'), Buffer.from('X-Internal'), Buffer.from('1'), Buffer.from('Keep-Alive'), Buffer.from('timeout=5'), Buffer.from('Set-Cookie'), Buffer.from('a=1'), Buffer.from('Set-Cookie'), Buffer.from('b=2')])
  t.same(pairs(out), [
    ['Content-Length', '5'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['via', '1.1 slipway'],
  ])
})
