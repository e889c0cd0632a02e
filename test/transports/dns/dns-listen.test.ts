/**
 * Opening the DNS listener: UDP and TCP on one port. A TCP port that is taken fails the start and
 * leaves no UDP socket behind; with port 0, UDP and TCP end on the same number.
 */
import dgram from 'node:dgram'
import net from 'node:net'
import pino from 'pino'
import t from 'tap'
import { DnsZone } from '../../../src/core/dns/dns-zone.ts'
import { ConnectionGovernor } from '../../../src/transports/connection-governor.ts'
import { startDnsServer } from '../../../src/transports/dns/dns-server.ts'
import { EngineMetrics } from '../../../src/transports/metrics.ts'

const zone = new DnsZone(
  { zone: 'apps.test', ttlSeconds: 30, negativeTtlSeconds: 15, nameservers: [{ name: 'ns1.apps.test', addresses: ['127.0.0.1'] }], hostmaster: 'hostmaster.apps.test' },
  { apps: new Map(), hosts: new Map(), locations: [], serial: 1 },
)
const options = () => ({
  host: '127.0.0.1',
  zone,
  logger: pino({ level: 'silent' }),
  connections: new ConnectionGovernor({ maxConnections: 100, metrics: new EngineMetrics().connections }).listener('dns', { maxConnections: 10, maxConnectionsPerClient: 10, idleTimeoutMs: 1000 }),
})

t.test('a TCP port already taken fails the start, and the UDP socket opened for it is closed again', async (t) => {
  const taken = net.createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const port = (taken.address() as net.AddressInfo).port
  await t.rejects(startDnsServer({ ...options(), port }), { code: 'EADDRINUSE' })
  const probe = dgram.createSocket('udp4')
  t.teardown(() => probe.close())
  await t.resolves(new Promise<void>((resolve, reject) => probe.once('error', reject).bind(port, '127.0.0.1', () => resolve())), `UDP ${port} is free again`)
})

t.test('port 0: UDP and TCP on the same number', async (t) => {
  for (let run = 0; run < 20; run++) {
    const server = await startDnsServer({ ...options(), port: 0 })
    t.equal(server.tcpPort, server.udpPort)
    await server.close()
  }
})
