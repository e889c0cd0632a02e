import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './config.ts'
import { BootService } from './core/boot/boot-service.ts'
import { ContentService } from './core/content/content-service.ts'
import { ReservationService } from './core/dhcp/reservation-service.ts'
import { readContentFolders } from './adapters/content/content-folders.ts'
import { CatalogStore } from './storage/catalog-store.ts'
import { MachineDirectory } from './storage/machine-directory.ts'
import { contentRepository } from './storage/content-repository.ts'
import { reservationRepository } from './storage/repositories/dhcp-reservations.ts'
import { syncFolderContent } from './storage/content-sync.ts'
import { collationWarning, isPostgres, migrateToLatest, openStore, type Store } from './storage/db.ts'
import { inTransaction } from './storage/transactions.ts'
import { countTokens, insertToken, verifyToken } from './storage/repositories/api-tokens.ts'
import { tenantDirectory } from './storage/repositories/tenants.ts'
import { appendAudit, auditStore } from './storage/repositories/audit-log.ts'
import { AuditTrail } from './core/access/audit-trail.ts'
import { MachineService, type Machine } from './core/machines/machine-service.ts'
import { InstallAuthorization } from './core/machines/install-authorization.ts'
import { machineRepository } from './storage/repositories/machines.ts'
import { ClusterService } from './core/clusters/cluster-service.ts'
import { clusterRepository } from './storage/repositories/clusters.ts'
import { ClusterDirectory } from './storage/cluster-directory.ts'
import { SecretBox } from './storage/secret-box.ts'
import { x509ClusterPkiIssuer } from './adapters/pki/x509-cluster-pki.ts'
import { SchedulerLoop } from './jobs/scheduler-loop.ts'
import { SerialJob } from './jobs/serial-job.ts'
import { defaultReplicaId, JobLeases } from './jobs/job-lease.ts'
import { registerJobLeaseMetrics } from './jobs/job-lease-metrics.ts'
import { jobLeaseRepository } from './storage/repositories/job-leases.ts'
import { proxyRouteRepository } from './storage/repositories/proxy-routes.ts'
import { DriftService } from './core/lifecycle/drift.ts'
import { rollingModeOf } from './core/lifecycle/rolling-mode.ts'
import { driftRepository } from './storage/repositories/drift.ts'
import { RolloutService } from './core/lifecycle/rollout-service.ts'
import { RolloutExecutor } from './core/lifecycle/rollout-executor.ts'
import { rolloutRepository } from './storage/repositories/rollouts.ts'
import { rolloutPorts, rolloutTargets } from './jobs/rollout-ports.ts'
import { SshMachineShell } from './adapters/ssh/ssh-machine-shell.ts'
import type { MachineShell, NodeDrainer } from './core/lifecycle/ports.ts'
import { LockService } from './core/lifecycle/lock-service.ts'
import { lockRepository } from './storage/repositories/locks.ts'
import { keyedMachineCredentials } from './storage/machine-credentials.ts'
import { SecretDeliveryGate } from './core/boot/secret-delivery.ts'
import { loadEngineSshKey } from './storage/engine-ssh-key.ts'
import { ClusterRegistry, type ClusterApi } from './core/registry/registry-service.ts'
import { registryRepository } from './storage/repositories/registry.ts'
import { KubernetesClusterApi } from './adapters/kubernetes/cluster-api-client.ts'
import { ClusterHealthLoop } from './jobs/cluster-health-loop.ts'
import { ChartService } from './core/releases/chart-service.ts'
import { ReleaseService } from './core/releases/release-service.ts'
import { ReleaseExecutor } from './core/releases/release-executor.ts'
import type { ReleaseApplier } from './core/releases/ports.ts'
import { chartRepository, releaseRepository } from './storage/repositories/releases.ts'
import { HelmCli } from './adapters/helm/helm-cli.ts'
import { locateHelm } from './adapters/helm/helm-binary.ts'
import { KubernetesReleaseApplier } from './adapters/kubernetes/release-applier.ts'
import { DnsZone, type DnsSnapshot } from './core/dns/dns-zone.ts'
import { DnsLocations } from './core/dns/dns-locations.ts'
import { buildDnsSnapshot, dnsLocationRepository } from './storage/dns-directory.ts'
import { startDnsServer } from './transports/dns/dns-server.ts'
import { ConnectionGovernor, processConnectionCap } from './transports/connection-governor.ts'
import { governHttpServer } from './transports/http/http-listener.ts'
import { buildApp } from './transports/http/app.ts'
import { takeSnapshot } from './storage/backup.ts'
import { exportInventory, importInventory } from './storage/inventory-transfer.ts'
import { UiSessions } from './transports/http/ui-session.ts'
import { wireReverseProxy } from './engine-proxy.ts'
import { EngineMetrics } from './transports/metrics.ts'
import { startDhcpServer } from './transports/dhcp/dhcp-server.ts'
import { dhcpLeaseStore } from './storage/repositories/dhcp-leases.ts'
import { openListener } from './lib/listener-error.ts'
import { startTftpServer } from './transports/tftp/tftp-server.ts'

export interface Engine {
  app: FastifyInstance
  store: Store
  /** Set when this start generated the first admin token: shown once, never stored in clear. */
  generatedAdminToken?: string
  /** Listens: HTTP always, DHCP, TFTP and DNS when configured. Returns the HTTP address. */
  start(): Promise<string>
  /** The DNS server's port once started (UDP and TCP), when DNS is enabled. */
  dnsPort(): number | undefined
  /** The reverse proxy's URL once started, when proxy.enabled. */
  proxyUrl(): string | undefined
  /** This replica's job leases (which singleton jobs it runs now). */
  jobLeases: JobLeases
  /** `releaseLeases: false` leaves the job leases to expire, as a crash would (tests of take-over). */
  close(options?: { releaseLeases?: boolean }): Promise<void>
}

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** Wires config -> store -> migrations -> content -> core -> HTTP. Listening is the caller's choice. */
/** Adapters a test may replace (the real ones reach machines and clusters). */
export interface EngineAdapters {
  shell?: MachineShell
  drainerFrom?: (kubeconfig: string) => NodeDrainer
  clusterApi?: ClusterApi & { close?(): Promise<void> }
  releaseApplier?: ReleaseApplier & { close?(): Promise<void> }
}

export async function createEngine(config: Config, logger: Logger, adapters: EngineAdapters = {}): Promise<Engine> {
  const store = openStore(config.database)
  try {
    const applied = await migrateToLatest(store)
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated')
    const collation = await collationWarning(store)
    if (collation) logger.warn(collation)

    const content = await readContentFolders(config.content)
    const sync = await syncFolderContent(store, content, new Date().toISOString())
    logger.info(sync.imported, 'content folders loaded')
    for (const item of sync.shadowed) logger.warn({ item }, 'file ignored: this object was changed through the API, which takes precedence')
    for (const item of sync.removed) logger.info({ item }, 'removed: its file no longer exists')

    const generatedAdminToken = await ensureAdminToken(store, config.auth.adminToken)

    const catalogs = new CatalogStore(store)
    await catalogs.refresh()
    const machineDirectory = new MachineDirectory(machineRepository(store))
    await machineDirectory.load()
    const secrets = SecretBox.fromKeyFile(config.secrets.keyFile)
    const clusterStore = clusterRepository(store, secrets)
    const clusterDirectory = new ClusterDirectory(clusterStore)
    await clusterDirectory.load()
    const credentials = keyedMachineCredentials(secrets, store)
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
    const boot = new BootService(catalogs, machineDirectory, clusterDirectory, { credentials, sshPublicKey: sshKey.publicKey }, secretDeliveries)
    const locks = new LockService(lockRepository(store), {
      defaultSlots: config.lifecycle.defaultSlots,
      defaultTtlSeconds: config.lifecycle.defaultTtlSeconds || null,
    })
    // Scheduling and destroys write per-machine groups and memberships: boots must see them at once.
    const clusters = new ClusterService(clusterStore, x509ClusterPkiIssuer, undefined, {
      machinesChanged: (uuids) => machineDirectory.refreshMany(uuids),
      contentChanged: async () => {
        await catalogs.refresh()
        await clusterDirectory.load()
      },
    })
    // Singleton jobs run on the replica holding their lease (README "Replicas on PostgreSQL"); drift
    // re-checks, DNS refresh and proxy health keep per-replica memory current, so every replica runs them.
    const jobLeases = new JobLeases({
      holder: config.replicas.id || defaultReplicaId(),
      ttlMs: config.replicas.leaseSeconds * 1000,
      // SQLite: one engine per file, so a lease left by a crashed earlier start is taken at once.
      store: jobLeaseRepository(store, { exclusive: !isPostgres(store) }),
      logger,
    })
    const scheduler = new SchedulerLoop(() => clusters.schedule(), {
      intervalMs: config.scheduler.intervalSeconds * 1000,
      debounceMs: 250,
      logger,
      gate: jobLeases.lease('scheduler', (reason) => scheduler.trigger(reason)),
    })
    const machineChanged = async (uuid: string, machine?: Machine) => {
      if (machine) machineDirectory.put(machine)
      else await machineDirectory.refresh(uuid)
      scheduler.trigger('machine changed')
    }
    // A report may be what a rolling update waits for; the executor exists further down.
    let reportArrived = () => {}
    const drift = new DriftService(driftRepository(store), boot, undefined, () => reportArrived())
    // A template, profile or metadata change makes machines outdated without waiting for their reports.
    const driftRecheck = new SerialJob(
      async (reason) => {
        for (const record of await drift.recheckAll()) logger.info({ component: 'drift', uuid: record.uuid, state: record.state, reason }, `machine ${record.uuid} is now ${record.state}`)
      },
      { name: 'drift re-check', intervalMs: 0, debounceMs: 300, logger, triggersBeforeStart: true },
    )
    const rolloutLease = jobLeases.lease('rollout-runner', (reason) => rolloutRunner.trigger(reason))
    const executor = new RolloutExecutor(
      rolloutPorts({
        store,
        boot,
        clusters,
        drift,
        locks,
        shell: adapters.shell ?? new SshMachineShell(),
        sshKey,
        publicUrl: config.http.publicUrl,
        logger,
        ...(adapters.drainerFrom ? { drainerFrom: adapters.drainerFrom } : {}),
      }),
      () => rolloutRunner.trigger('machine finished'),
      () => rolloutLease.mayRun(),
    )
    // Each tick starts what may start and resumes machines left in flight (after a restart too).
    const rolloutRunner = new SerialJob(() => executor.tick(), {
      name: 'rollout runner',
      intervalMs: 500,
      debounceMs: 20,
      logger,
      gate: rolloutLease,
    })
    reportArrived = () => executor.notify()
    const rollouts = new RolloutService(rolloutRepository(store), rolloutTargets(store), locks, undefined, () => rolloutRunner.trigger('run changed'))
    // Connections outlive a sweep interval (and a little more), so that each sweep reuses them.
    const clusterApi = adapters.clusterApi ?? new KubernetesClusterApi({ keepAliveMs: Math.max(60_000, config.registry.healthIntervalSeconds * 2_000 + 10_000) })
    const registry = new ClusterRegistry(registryRepository(store, secrets), clusterApi, {
      joinTarget: (name) => clusters.joinTarget(name),
      destroy: async (name) => {
        await clusters.destroyCluster(name)
      },
    }, undefined, async () => {
      // Role templates see `cluster.labels`: the members' configs may have changed; and release
      // selectors may now match the cluster, or no longer.
      await clusterDirectory.load()
      driftRecheck.trigger('cluster changed')
      releaseReconciler.trigger('cluster changed')
      dnsRefresh.trigger('cluster changed')
    })
    const healthSweep = new ClusterHealthLoop(registry, {
      intervalMs: config.registry.healthIntervalSeconds * 1000,
      concurrency: config.registry.healthConcurrency,
      requestTimeoutMs: config.registry.requestTimeoutSeconds * 1000,
      logger,
      swept: () => dnsRefresh.trigger('health sweep'),
      gate: jobLeases.lease('cluster-health', (reason) => healthSweep.trigger(reason)),
    })
    const helm = new HelmCli({
      locate: () => locateHelm(config.helm.binary, path.join(config.dataDir, 'tools')),
      workDir: path.join(config.dataDir, 'helm'),
      concurrency: config.releases.helmConcurrency,
    })
    const charts = new ChartService(chartRepository(store), helm, config.releases.maxChartBytes)
    const tenants = tenantDirectory(store)
    // The audit log: refusals without a token summarised, retention applied, both on a timer.
    const auditTrail = new AuditTrail(auditStore(store), { retentionDays: config.audit.retentionDays, maxRows: config.audit.maxRows })
    const auditMaintenance = new SerialJob(
      async () => {
        await auditTrail.flush()
        const removed = await auditTrail.prune()
        if (removed > 0) logger.info({ component: 'audit', removed }, `audit retention removed ${removed} entries`)
      },
      { name: 'audit maintenance', intervalMs: config.audit.summaryIntervalSeconds * 1000, debounceMs: 0, logger },
    )
    const releaseClusters = {
      list: async () => {
        // A tenant's release goes to its tenant's clusters only (ReleaseService.targets).
        const tenantOf = await tenants.clusterTenants()
        return (await registry.list()).map((cluster) => ({
          name: cluster.name,
          tenant: tenantOf.get(cluster.name) ?? null,
          labels: cluster.labels,
          latitude: cluster.location.latitude,
          longitude: cluster.location.longitude,
          region: cluster.location.region,
          site: cluster.location.site,
          joined: cluster.joinedAt !== null,
          kubernetesVersion: cluster.health?.kubernetesVersion ?? null,
        }))
      },
    }
    const releases = new ReleaseService(releaseRepository(store), charts, helm, releaseClusters, undefined, () => releaseReconciler.trigger('release changed'))
    const releaseApplier = adapters.releaseApplier ?? new KubernetesReleaseApplier((cluster) => registry.connection(cluster), { requestTimeoutMs: config.releases.requestTimeoutSeconds * 1000 })
    const metrics = new EngineMetrics()
    registerJobLeaseMetrics(metrics.registry, jobLeases)
    const releaseExecutor = new ReleaseExecutor(
      {
        repository: releaseRepository(store),
        charts,
        renderer: helm,
        applier: releaseApplier,
        service: releases,
        clock: () => new Date(),
        log: ({ level, message, ...fields }) => logger[level]({ component: 'releases', ...fields }, message),
        rendered: () => metrics.countHelmRender(),
      },
      () => {
        releaseReconciler.trigger('cluster finished')
        dnsRefresh.trigger('release changed')
      },
    )
    const releaseReconciler = new SerialJob(() => releaseExecutor.tick(), {
      name: 'release reconciler',
      intervalMs: config.releases.reconcileIntervalSeconds * 1000,
      debounceMs: 50,
      logger,
      gate: jobLeases.lease('release-reconciler', (reason) => releaseReconciler.trigger(reason)),
    })
    // DNS answers from memory; the snapshot is rebuilt on a timer and after anything it depends on.
    const zoneName = config.dns.zone
    const nameserverName = config.dns.nameserverName || `ns1.${zoneName}`
    const nameserverAddresses = config.dns.nameserverAddresses.length ? config.dns.nameserverAddresses : ['0.0.0.0', '::'].includes(config.dns.host) ? [] : [config.dns.host]
    const emptySnapshot: DnsSnapshot = { apps: new Map(), hosts: new Map(), locations: [], serial: 1 }
    const dnsZone = new DnsZone(
      { zone: zoneName, ttlSeconds: config.dns.ttlSeconds, negativeTtlSeconds: config.dns.negativeTtlSeconds, nameservers: [{ name: nameserverName, addresses: nameserverAddresses }], hostmaster: `hostmaster.${zoneName}` },
      emptySnapshot,
    )
    let dnsState: { serial: number; digest: string } | undefined
    const dnsRefresh = new SerialJob(
      async () => {
        const built = await buildDnsSnapshot(store, zoneName, dnsState)
        dnsState = { serial: built.snapshot.serial, digest: built.digest }
        dnsZone.update(built.snapshot)
      },
      { name: 'dns refresh', intervalMs: config.dns.refreshSeconds * 1000, debounceMs: 20, logger, triggersBeforeStart: true },
    )
    const dnsLocations = new DnsLocations(dnsLocationRepository(store), () => dnsRefresh.trigger('locations changed'))
    // Replicas on one PostgreSQL database: boots, the API and the proxy answer from this replica's
    // memory, so what another replica changed (a scheduling pass, content, clusters, routes) is
    // reloaded on a timer.
    const proxyRouteVersions = (routes: readonly { id: string; updatedAt: string }[]) => routes.map((route) => `${route.id}@${route.updatedAt}`).sort().join(',')
    const replicaRefresh = new SerialJob(
      async () => {
        await catalogs.refresh()
        await machineDirectory.load()
        await clusterDirectory.load()
        // Reloading routes re-checks their origins: only when another replica changed them.
        if (proxyRouteVersions(await proxyRouteRepository(store).list()) !== proxyRouteVersions(reverseProxy.routes.current())) await reverseProxy.routes.load()
      },
      { name: 'replica refresh', intervalMs: config.replicas.refreshSeconds * 1000, debounceMs: 0, logger },
    )
    const contentService = new ContentService(contentRepository(store), async () => {
      await catalogs.refresh()
      driftRecheck.trigger('content changed')
    })

    const reverseProxy = await wireReverseProxy(config.proxy, store, logger, metrics)
    const app = await buildApp({
      metrics,
      boot,
      content: contentService,
      reservations: new ReservationService(reservationRepository(store), config.dhcp),
      verifyToken: (token) => verifyToken(store, token),
      checkReady: async () => {
        await sql`select 1`.execute(store)
      },
      logger,
      http: config.http,
      assetsDir: config.content.assetsDir,
      ipxeBinariesDir: config.tftp.ipxeDir,
      version: VERSION,
      machines: new MachineService(machineRepository(store), undefined, machineChanged, (kind) => metrics.countMachineConflict(kind), { addressIsIdentity: config.machines.bindSecretsToAddress }),
      machinePolicy: {
        credentialGraceSeconds: config.machines.credentialGraceSeconds,
        reprovisionWindowSeconds: config.machines.reprovisionWindowSeconds,
        discoveryReportsPerMinute: config.machines.discoveryReportsPerMinute,
      },
      installs: new InstallAuthorization(machineRepository(store), config.install, undefined, (uuid) => machineDirectory.refresh(uuid)),
      clusters,
      registry,
      healthSweep,
      charts,
      releases,
      dnsLocations,
      dnsZone,
      chartLimitBytes: config.releases.maxChartBytes,
      requestTimeoutMs: config.registry.requestTimeoutSeconds * 1000,
      scheduler,
      locks,
      credentials,
      lockGroupOf: (uuid) => clusterDirectory.memberOf(uuid)?.cluster ?? 'default',
      rollingModeOf: (uuid) => rollingModeOf((machineDirectory.lookup({ uuid })?.view.labels ?? {}) as Record<string, string>),
      drift,
      rollouts,
      proxy: reverseProxy.routes,
      uiSessions: new UiSessions(secrets),
      membershipOf: (uuid) => clusterDirectory.memberOf(uuid),
      access: { tenants, audit: auditTrail, store },
      backup: {
        databaseFile: config.database.path,
        // PostgreSQL has no file to copy: its backups are pg_dump's (the routes say so).
        ...(isPostgres(store)
          ? {}
          : {
              snapshot: () => takeSnapshot({ databaseFile: config.database.path }),
              snapshotToFolder: () => takeSnapshot({ databaseFile: config.database.path, into: path.join(config.dataDir, 'backups') }),
            }),
        exportInventory: () => exportInventory(store),
        importInventory: async (input) => {
          const report = await importInventory(store, secrets, input)
          // Boots, templates and the scheduler answer from memory: they must see the imported rows.
          await machineDirectory.load()
          await clusterDirectory.load()
          await catalogs.refresh()
          scheduler.trigger('inventory imported')
          driftRecheck.trigger('inventory imported')
          dnsRefresh.trigger('inventory imported')
          return report
        },
      },
    })
    const networkServices: { close(): Promise<void> }[] = []
    let dnsPort: number | undefined
    return {
      app,
      store,
      ...(generatedAdminToken ? { generatedAdminToken } : {}),
      dnsPort: () => dnsPort,
      proxyUrl: () => reverseProxy.url(),
      start: async () => {
        // One governor bounds every TCP listener's connections, together below the descriptor limit.
        const connections = new ConnectionGovernor({ maxConnections: processConnectionCap() ?? Number.POSITIVE_INFINITY, metrics: metrics.connections, logger })
        governHttpServer(app.server, 'http', config.http, connections, logger)
        // Every listener first, the jobs last: an engine that cannot open a socket has run nothing
        // (it rejects with a ListenerError naming it; the caller closes the engine).
        const address = await openListener('HTTP', config.http.host, config.http.port, 'set http.host / http.port (SLIPWAY_HTTP_HOST, SLIPWAY_HTTP_PORT)', () =>
          app.listen({ host: config.http.host, port: config.http.port }),
        )
        await reverseProxy.start(connections)
        dnsRefresh.start()
        if (config.dns.enabled) {
          const dnsLimits = { maxConnections: config.dns.tcpMaxConnections, maxConnectionsPerClient: config.dns.tcpMaxConnectionsPerClient, idleTimeoutMs: config.dns.tcpIdleTimeoutSeconds * 1000 }
          const dns = await openListener('DNS', config.dns.host, config.dns.port, 'set dns.host / dns.port (SLIPWAY_DNS_HOST, SLIPWAY_DNS_PORT), or dns.enabled: false', () =>
            startDnsServer({ host: config.dns.host, port: config.dns.port, zone: dnsZone, logger, connections: connections.listener('dns', dnsLimits) }),
          )
          networkServices.push(dns)
          dnsPort = dns.udpPort
          logger.info({ port: dns.udpPort, zone: zoneName }, 'dns is serving')
        }
        if (config.tftp.enabled) {
          const tftp = await openListener('TFTP', config.tftp.host, config.tftp.port, 'set tftp.host / tftp.port (SLIPWAY_TFTP_HOST, SLIPWAY_TFTP_PORT), or tftp.enabled: false', () =>
            startTftpServer({
              host: config.tftp.host,
              port: config.tftp.port,
              ipxeDir: config.tftp.ipxeDir,
              root: config.tftp.root || undefined,
              maxTransfers: config.tftp.maxTransfers,
              maxTransfersPerClient: config.tftp.maxTransfersPerClient,
              retransmitTimeoutMs: config.tftp.retransmitTimeoutMs,
              retries: config.tftp.retries,
              logger,
              metrics,
            }),
          )
          networkServices.push(tftp)
          logger.info({ port: tftp.port, ipxeDir: config.tftp.ipxeDir, root: config.tftp.root || undefined }, 'tftp is serving')
        }
        if (config.dhcp.mode !== 'off') {
          const port = (app.server.address() as AddressInfo).port
          const httpUrl = config.http.publicUrl || `http://${config.dhcp.serverAddress}:${port}`
          const dhcp = await openListener('DHCP', config.dhcp.serverAddress, config.dhcp.port, 'set dhcp.serverAddress / dhcp.port (SLIPWAY_DHCP_SERVER_ADDRESS, SLIPWAY_DHCP_PORT), or dhcp.mode: off', () =>
            startDhcpServer({ settings: config.dhcp, httpUrl, leases: dhcpLeaseStore(store), logger, metrics }),
          )
          networkServices.push(dhcp)
          logger.info({ mode: config.dhcp.mode, serverAddress: config.dhcp.serverAddress, httpUrl }, 'dhcp is serving')
        }
        // The first claims are awaited, so that each job's first pass runs at once on the holder.
        await jobLeases.start()
        scheduler.start()
        driftRecheck.start()
        rolloutRunner.start()
        if (config.registry.healthIntervalSeconds > 0) healthSweep.start()
        releaseReconciler.start()
        if (isPostgres(store) && config.replicas.refreshSeconds > 0) replicaRefresh.start()
        auditMaintenance.start()
        return address
      },
      jobLeases,
      close: async ({ releaseLeases = true } = {}) => {
        if (!releaseLeases) jobLeases.abandon()
        await scheduler.stop()
        await driftRecheck.stop()
        await rolloutRunner.stop()
        await executor.stop()
        await healthSweep.stop()
        await releaseReconciler.stop()
        await dnsRefresh.stop()
        await auditMaintenance.stop()
        // The summaries counted since the last pass are written before the store closes.
        await auditTrail.flush().catch((error: unknown) => logger.error({ err: error }, 'audit summaries could not be written at shutdown'))
        await replicaRefresh.stop()
        await releaseExecutor.stop()
        // After the jobs stopped: another replica takes over at once, with nothing of ours still running.
        await jobLeases.stop()
        await releaseApplier.close?.()
        await clusterApi.close?.()
        for (const service of networkServices.splice(0).reverse()) await service.close()
        await reverseProxy.close()
        await app.close()
        await store.destroy()
      },
    }
  } catch (error) {
    await store.destroy()
    throw error
  }
}

/**
 * A configured token is registered (or re-registered after it changed); without one, the very first
 * start generates a token and returns it so that it can be shown once.
 */
async function ensureAdminToken(store: Store, configured: string): Promise<string | undefined> {
  const now = new Date().toISOString()
  if (configured.length > 0 && configured.length < 16) throw new Error('auth.adminToken must be at least 16 characters long')
  // One transaction: replicas starting together on one PostgreSQL database neither collide nor both generate.
  return inTransaction(store, async (trx) => {
    if (configured) {
      await trx.deleteFrom('api_tokens').where('name', '=', 'configured-admin').execute()
      await insertToken(trx, 'configured-admin', configured, 'admin', now)
      return undefined
    }
    if ((await countTokens(trx)) > 0) return undefined
    const token = randomBytes(32).toString('base64url')
    await insertToken(trx, 'generated-admin', token, 'admin', now)
    return token
  })
}
