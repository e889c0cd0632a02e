/**
 * Runs the engine's DHCP server alone, for tests that start it inside a network namespace:
 *   ip netns exec <ns> node --import tsx test/helpers/dhcp-server-child.ts
 * Environment: SLW_DHCP_DB (SQLite file), SLW_DHCP_SETTINGS (JSON, Config['dhcp']), SLW_DHCP_HTTP_URL,
 * SLW_DHCP_RESERVATIONS (JSON array of {mac, ip, hostname}), SLW_DHCP_LOG_LEVEL.
 * Prints `READY` once listening and `STATS <json>` on SIGUSR2 and before exiting on SIGTERM; logs go
 * to stderr.
 */
import pino from 'pino'
import type { Config } from '../../src/config.ts'
import { migrateToLatest, openStore } from '../../src/storage/db.ts'
import { dhcpLeaseStore } from '../../src/storage/repositories/dhcp-leases.ts'
import { upsertReservation } from '../../src/storage/repositories/dhcp-reservations.ts'
import { startDhcpServer } from '../../src/transports/dhcp/dhcp-server.ts'

const settings = JSON.parse(process.env.SLW_DHCP_SETTINGS ?? '{}') as Config['dhcp']
const store = openStore(process.env.SLW_DHCP_DB ?? ':memory:')
await migrateToLatest(store)
for (const reservation of JSON.parse(process.env.SLW_DHCP_RESERVATIONS ?? '[]') as Array<{ mac: string; ip: string; hostname: string | null }>) {
  await upsertReservation(store, reservation, new Date())
}
const logger = pino({ level: process.env.SLW_DHCP_LOG_LEVEL ?? 'info' }, pino.destination(2))
const server = await startDhcpServer({ settings, httpUrl: process.env.SLW_DHCP_HTTP_URL ?? `http://${settings.serverAddress}:8080`, leases: dhcpLeaseStore(store), logger })
process.stdout.write('READY\n')
process.on('SIGUSR2', () => process.stdout.write(`STATS ${JSON.stringify(server.stats())}\n`))
process.on('SIGTERM', () => {
  const stats = server.stats()
  void server.close().then(async () => {
    await store.destroy()
    process.stdout.write(`STATS ${JSON.stringify(stats)}\n`, () => process.exit(0))
  })
})
