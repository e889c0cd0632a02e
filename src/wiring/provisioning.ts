import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { lookupThrough } from '../adapters/kubernetes/engine-names.ts'
import { probeReadyz } from '../adapters/kubernetes/readyz-probe.ts'
import { x509ClusterPkiIssuer } from '../adapters/pki/x509-cluster-pki.ts'
import { BootService } from '../core/boot/boot-service.ts'
import { SecretDeliveryGate } from '../core/boot/secret-delivery.ts'
import { BootstrapProgressService, EndpointHealth } from '../core/clusters/bootstrap-progress.ts'
import { ClusterService } from '../core/clusters/cluster-service.ts'
import { ContentService } from '../core/content/content-service.ts'
import { ReservationService } from '../core/dhcp/reservation-service.ts'
import { signedMachineCredentials } from '../core/lifecycle/machine-credentials.ts'
import { InstallAuthorization } from '../core/machines/install-authorization.ts'
import { MachineService, type Machine } from '../core/machines/machine-service.ts'
import { SchedulerLoop } from '../jobs/scheduler-loop.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { forEachLimited } from '../lib/concurrency-limiter.ts'
import { openListener } from '../lib/listener-error.ts'
import type { Db } from '../storage/database.ts'
import { CatalogDirectory } from '../storage/directories/catalog-directory.ts'
import { ClusterDirectory } from '../storage/directories/cluster-directory.ts'
import { MachineDirectory } from '../storage/directories/machine-directory.ts'
import { loadEngineSshKey } from '../storage/engine-ssh-key.ts'
import { appendAudit } from '../storage/repositories/audit-log.ts'
import { clusterRepository } from '../storage/repositories/clusters.ts'
import { bootstrapRepository } from '../storage/repositories/member-bootstrap.ts'
import { contentRepository } from '../storage/repositories/content.ts'
import { dhcpLeaseStore } from '../storage/repositories/dhcp-leases.ts'
import { reservationRepository } from '../storage/repositories/dhcp-reservations.ts'
import { findCredentialState, machineRepository } from '../storage/repositories/machines.ts'
import { endpointProbeTargets, endpointResolver } from '../storage/repositories/dns-snapshot.ts'
import { startDhcpServer } from '../transports/dhcp/dhcp-server.ts'
import type { EngineMetrics } from '../transports/metrics.ts'
import { startTftpServer } from '../transports/tftp/tftp-server.ts'
import type { Capability, EngineListener, WiringBasics } from './capability.ts'

export type Provisioning = Awaited<ReturnType<typeof wireProvisioning>>

/** Probes of members' /readyz at once, and how long one may take. */
const ENDPOINT_PROBES_AT_ONCE = 16
const ENDPOINT_PROBE_TIMEOUT_MS = 3_000

/**
 * Booting and placing machines: what a booting machine is served (from in-memory pictures of the
 * catalog, the machines and the clusters, so that a boot never waits for the database), discovery
 * and installs, content, clusters and the scheduler that fills them; TFTP and DHCP.
 */
export async function wireProvisioning(basics: WiringBasics) {
  const { config, store, metrics, events, jobLeases, logger } = basics
  const { catalogs, machineDirectory, clusterDirectory, clusterStore, ...served } = await bootServing(basics)
  // Scheduling and destroys write per-machine groups and memberships: boots must see them at once.
  const clusters = new ClusterService(
    clusterStore,
    x509ClusterPkiIssuer,
    undefined,
    {
      machinesChanged: (uuids) => machineDirectory.refreshMany(uuids),
      contentChanged: async () => {
        await catalogs.refresh()
        await clusterDirectory.load()
      },
      certificatesChanged: async () => {
        await clusterDirectory.load()
        events.emit('certificates issued')
      },
    },
    { zone: config.dns.zone, reserveAddresses: config.dhcp.mode === 'full' },
  )
  const scheduler = new SchedulerLoop(() => clusters.schedule(), { intervalMs: config.scheduler.intervalSeconds * 1000, debounceMs: 250, logger, gate: jobLeases.lease('scheduler') })
  const certificateCheck = new SerialJob(
    async (reason) => {
      const report = await clusters.ca.issue()
      for (const issued of report.issued) logger.info({ component: 'certificates', reason, cluster: issued.cluster, hostname: issued.hostname, uuid: issued.machineUuid }, `${issued.renewal ? 'renewed' : 'issued'} the certificates of ${issued.hostname}`)
      for (const cluster of report.adminRenewed) logger.info({ component: 'certificates', reason, cluster }, `renewed the engine's admin certificate for cluster ${cluster}`)
      return report
    },
    { name: 'certificate check', intervalMs: config.scheduler.certificateCheckSeconds * 1000, debounceMs: 0, logger, gate: jobLeases.lease('certificates') },
  )
  const machineChanged = async (uuid: string, machine?: Machine) => {
    if (machine) machineDirectory.put(machine)
    else await machineDirectory.refresh(uuid)
    scheduler.trigger('machine changed')
  }
  // Which control-plane members' API servers answer: what the endpoint's DNS answer and the engine's
  // own resolver leave out. Each replica probes for itself (what it answers is its own view).
  const endpointHealth = new EndpointHealth()
  const endpointProbe = new SerialJob(
    async () => {
      const targets = await endpointProbeTargets(store, config.dns.zone)
      let changed = false
      await forEachLimited(targets, ENDPOINT_PROBES_AT_ONCE, async (target) => {
        const ok = await probeReadyz(target, ENDPOINT_PROBE_TIMEOUT_MS)
        if (!endpointHealth.record(target.ip, ok)) return
        changed = true
        logger[ok ? 'info' : 'warn']({ component: 'endpoint', cluster: target.cluster, ip: target.ip }, ok ? `${target.ip} answers /readyz again: back in ${target.serverName}` : `${target.ip} does not answer /readyz: left out of ${target.serverName}`)
      })
      endpointHealth.retain(new Set(targets.map((target) => target.ip)))
      if (changed) events.emit('endpoint health changed')
    },
    { name: 'endpoint probe', intervalMs: config.dns.endpointProbeSeconds * 1000, debounceMs: 100, logger },
  )
  events.on('bootstrap reported', (event) => endpointProbe.trigger(event))
  events.on('inventory imported', (event) => {
    scheduler.trigger(event)
    // An imported inventory brings memberships without their issued certificates: issue them now.
    certificateCheck.trigger(event)
  })
  const capability: Capability = { jobs: [scheduler, certificateCheck, ...(config.dns.endpointProbeSeconds > 0 ? [endpointProbe] : [])], listeners: [tftpListener(config, logger, metrics), dhcpListener(config, store, logger, metrics)] }
  return {
    ...served,
    clusters,
    bootstrap: new BootstrapProgressService(bootstrapRepository(store), undefined, () => events.emit('bootstrap reported')),
    scheduler,
    machineDirectory,
    clusterDirectory,
    machines: new MachineService(machineRepository(store), undefined, machineChanged, (kind) => metrics.countMachineConflict(kind), { addressIsIdentity: config.machines.bindSecretsToAddress }),
    installs: new InstallAuthorization(machineRepository(store), config.install, undefined, async (uuid) => {
      await machineDirectory.refresh(uuid)
      events.emit('install state changed')
    }),
    content: new ContentService(contentRepository(store), async () => {
      await catalogs.refresh()
      events.emit('content changed')
    }),
    reservations: new ReservationService(reservationRepository(store), config.dhcp),
    /** How the engine's clients resolve a provisioned cluster's endpoint name: from the engine's own answers. */
    endpointLookup: lookupThrough(endpointResolver(store, config.dns.zone, endpointHealth)),
    endpointHealth,
    /** Reloads every in-memory picture from the store (another replica's writes, an imported inventory). */
    reload: async () => {
      await catalogs.refresh()
      await machineDirectory.load()
      await clusterDirectory.load()
    },
    ...capability,
  }
}

/** The in-memory pictures a boot is answered from, the machine credentials, and the boot service over them. */
async function bootServing({ config, store, secrets }: WiringBasics) {
  const catalogs = new CatalogDirectory(store)
  await catalogs.refresh()
  const machineDirectory = new MachineDirectory(machineRepository(store))
  await machineDirectory.load()
  const clusterStore = clusterRepository(store, secrets)
  // In proxy DHCP mode another server hands out addresses and the engine cannot reserve them: members
  // keep theirs statically unless their flavor says otherwise, with the resolvers DHCP would have given.
  const clusterDirectory = new ClusterDirectory(clusterStore, config.dns.zone, { staticByDefault: config.dhcp.mode === 'proxy', nameservers: config.dhcp.dnsServers })
  await clusterDirectory.load()
  const credentials = signedMachineCredentials(secrets, (uuid) => findCredentialState(store, uuid))
  const sshKey = await loadEngineSshKey(store, secrets)
  // Configs that carry secrets go out only past this gate, and each delivery is audited.
  const secretDeliveries = new SecretDeliveryGate(
    {
      credentials,
      record: (delivery) =>
        appendAudit(store, {
          at: delivery.at,
          principal: `machine:${delivery.uuid}`,
          role: null,
          tenant: null,
          sourceIp: delivery.address,
          method: 'GET',
          route: `/${delivery.kind}`,
          target: delivery.uuid,
          summary: `secret-bearing ${delivery.kind} delivered (${delivery.ground})`,
          status: 200,
          errorCode: null,
          requestId: '-',
        }),
    },
    { requireMachineAddress: config.machines.bindSecretsToAddress },
  )
  const boot = new BootService(catalogs, machineDirectory, clusterDirectory, { credentials, sshPublicKey: sshKey.publicKey }, secretDeliveries, config.images)
  return { catalogs, machineDirectory, clusterDirectory, clusterStore, credentials, sshKey, boot }
}

function tftpListener(config: Config, logger: Logger, metrics: EngineMetrics): EngineListener {
  const settings = config.tftp
  return async () => {
    if (!settings.enabled) return undefined
    const tftp = await openListener('TFTP', settings.host, settings.port, 'set tftp.host / tftp.port (SLIPWAY_TFTP_HOST, SLIPWAY_TFTP_PORT), or tftp.enabled: false', () =>
      startTftpServer({
        host: settings.host,
        port: settings.port,
        ipxeDir: settings.ipxeDir,
        root: settings.root || undefined,
        maxTransfers: settings.maxTransfers,
        maxTransfersPerClient: settings.maxTransfersPerClient,
        retransmitTimeoutMs: settings.retransmitTimeoutMs,
        retries: settings.retries,
        logger,
        metrics,
      }),
    )
    logger.info({ port: tftp.port, ipxeDir: settings.ipxeDir, root: settings.root || undefined }, 'tftp is serving')
    return tftp
  }
}

function dhcpListener(config: Config, store: Db, logger: Logger, metrics: EngineMetrics): EngineListener {
  const settings = config.dhcp
  return async ({ httpPort }) => {
    if (settings.mode === 'off') return undefined
    const httpUrl = config.http.publicUrl || `http://${settings.serverAddress}:${httpPort}`
    const dhcp = await openListener('DHCP', settings.serverAddress, settings.port, 'set dhcp.serverAddress / dhcp.port (SLIPWAY_DHCP_SERVER_ADDRESS, SLIPWAY_DHCP_PORT), or dhcp.mode: off', () =>
      startDhcpServer({ settings, httpUrl, leases: dhcpLeaseStore(store), logger, metrics }),
    )
    logger.info({ mode: settings.mode, serverAddress: settings.serverAddress, httpUrl }, 'dhcp is serving')
    return dhcp
  }
}
