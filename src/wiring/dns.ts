import type { EndpointHealth } from '../core/clusters/bootstrap-progress.ts'
import { DnsLocations } from '../core/dns/dns-locations.ts'
import { DnsZone, type DnsSnapshot } from '../core/dns/dns-zone.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { openListener } from '../lib/listener-error.ts'
import { startDnsServer } from '../transports/dns/dns-server.ts'
import { dnsLocationRepository } from '../storage/repositories/dns-locations.ts'
import { buildDnsSnapshot } from '../storage/repositories/dns-snapshot.ts'
import type { Capability, EngineListener, WiringBasics } from './capability.ts'

/**
 * DNS for apps and machines: the zone answers from memory; its snapshot is rebuilt on a timer and
 * after anything it depends on (releases ready on clusters, cluster health, machines, locations).
 * Every replica rebuilds its own.
 */
export function wireDns({ config, store, logger, events }: WiringBasics, endpointHealth?: EndpointHealth) {
  const settings = config.dns
  const zoneName = settings.zone
  const nameserverName = settings.nameserverName || `ns1.${zoneName}`
  const nameserverAddresses = settings.nameserverAddresses.length ? settings.nameserverAddresses : ['0.0.0.0', '::'].includes(settings.host) ? [] : [settings.host]
  const emptySnapshot: DnsSnapshot = { apps: new Map(), hosts: new Map(), locations: [], serial: 1 }
  const zone = new DnsZone(
    { zone: zoneName, ttlSeconds: settings.ttlSeconds, negativeTtlSeconds: settings.negativeTtlSeconds, nameservers: [{ name: nameserverName, addresses: nameserverAddresses }], hostmaster: `hostmaster.${zoneName}` },
    emptySnapshot,
  )
  let built: { serial: number; digest: string } | undefined
  const refresh = new SerialJob(
    async () => {
      const next = await buildDnsSnapshot(store, zoneName, built, endpointHealth)
      built = { serial: next.snapshot.serial, digest: next.digest }
      zone.update(next.snapshot)
    },
    { name: 'dns refresh', intervalMs: settings.refreshSeconds * 1000, debounceMs: 20, logger, triggersBeforeStart: true },
  )
  for (const event of ['cluster changed', 'clusters swept', 'release cluster finished', 'bootstrap reported', 'install state changed', 'endpoint health changed', 'inventory imported', 'dns locations changed'] as const) events.on(event, (reason) => refresh.trigger(reason))

  let port: number | undefined
  const listener: EngineListener = async ({ connections }) => {
    if (!settings.enabled) return undefined
    // The zone is built before the first query is answered.
    await refresh.runNow('start')
    const limits = { maxConnections: settings.tcpMaxConnections, maxConnectionsPerClient: settings.tcpMaxConnectionsPerClient, idleTimeoutMs: settings.tcpIdleTimeoutSeconds * 1000 }
    const server = await openListener('DNS', settings.host, settings.port, 'set dns.host / dns.port (SLIPWAY_DNS_HOST, SLIPWAY_DNS_PORT), or dns.enabled: false', () =>
      startDnsServer({ host: settings.host, port: settings.port, zone, logger, connections: connections.listener('dns', limits) }),
    )
    port = server.udpPort
    logger.info({ port, zone: zoneName }, 'dns is serving')
    return server
  }
  const capability: Capability = { jobs: [refresh], listeners: [listener] }
  return { zone, locations: new DnsLocations(dnsLocationRepository(store), () => events.emit('dns locations changed')), port: () => port, ...capability }
}
