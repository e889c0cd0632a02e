import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { openListener } from '../lib/listener-error.ts'
import { takeSnapshot } from '../storage/backup.ts'
import { isPostgres, pingDatabase } from '../storage/db.ts'
import type { Db } from '../storage/database.ts'
import { exportInventory, importInventory } from '../storage/inventory-transfer.ts'
import type { SecretBox } from '../storage/secret-box.ts'
import type { ConnectionGovernor } from '../transports/connection-governor.ts'
import { buildApp } from '../transports/http/app.ts'
import type { BackupRouteOptions } from '../transports/http/routes/admin/backup.ts'
import type { EnjoliverBackupRouteOptions } from '../transports/http/routes/compat/enjoliver/backup.ts'
import { governHttpServer } from '../transports/http/http-listener.ts'
import type { wireAccess } from './access.ts'
import type { wireApps } from './apps.ts'
import type { wireDns } from './dns.ts'
import type { wireEtcd } from './etcd.ts'
import type { WiringBasics } from './capability.ts'
import type { wireLifecycle } from './lifecycle.ts'
import type { wirePower } from './power.ts'
import type { Provisioning } from './provisioning.ts'
import type { wireReverseProxy } from './reverse-proxy.ts'

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** The services HTTP serves, by capability. */
export interface HttpCapabilities {
  access: Awaited<ReturnType<typeof wireAccess>>
  provisioning: Provisioning
  etcd: ReturnType<typeof wireEtcd>
  power: ReturnType<typeof wirePower>
  lifecycle: ReturnType<typeof wireLifecycle>
  apps: ReturnType<typeof wireApps>
  dns: ReturnType<typeof wireDns>
  reverseProxy: Awaited<ReturnType<typeof wireReverseProxy>>
}

/** The HTTP API, the machine-facing routes and the web UI, over every capability's services. */
export function buildEngineApp(
  { config, store, secrets, logger, metrics, events }: WiringBasics,
  { access, provisioning, etcd, power, lifecycle, apps, dns, reverseProxy }: HttpCapabilities,
  isStarting: () => boolean,
): Promise<FastifyInstance> {
  return buildApp({
    metrics,
    logger,
    version: VERSION,
    http: config.http,
    assetsDir: config.content.assetsDir,
    ipxeBinariesDir: config.tftp.ipxeDir,
    checkReady: () => pingDatabase(store),
    isStarting,
    verifyToken: (token) => access.tokens.verify(token),
    access: { tenants: access.tenants, audit: access.audit, tokens: access.tokens, store },
    uiSessions: access.uiSessions,
    boot: provisioning.boot,
    content: provisioning.content,
    reservations: provisioning.reservations,
    machines: provisioning.machines,
    machinePolicy: {
      credentialGraceSeconds: config.machines.credentialGraceSeconds,
      reprovisionWindowSeconds: config.machines.reprovisionWindowSeconds,
      discoveryReportsPerMinute: config.machines.discoveryReportsPerMinute,
    },
    installs: provisioning.installs,
    credentials: provisioning.credentials,
    clusters: provisioning.clusters,
    etcd: { quorum: etcd.quorum, access: etcd.access },
    scheduler: provisioning.scheduler,
    membershipOf: (uuid) => provisioning.clusterDirectory.memberOf(uuid),
    power: power.power,
    bringUps: power.bringUps,
    flows: power.flows,
    locks: lifecycle.locks,
    lockGroupOf: lifecycle.lockGroupOf,
    rollingGate: lifecycle.rollingGate,
    rollingPolicyOf: lifecycle.rollingPolicyOf,
    rollingRefusals: lifecycle.rollingRefusals,
    drift: lifecycle.drift,
    bootstrap: provisioning.bootstrap,
    rollouts: lifecycle.rollouts,
    registry: apps.registry,
    healthSweep: apps.healthSweep,
    charts: apps.charts,
    releases: apps.releases,
    chartLimitBytes: config.releases.maxChartBytes,
    requestTimeoutMs: config.registry.requestTimeoutSeconds * 1000,
    dnsLocations: dns.locations,
    dnsZone: dns.zone,
    proxy: reverseProxy.routes,
    backup: backupOptions(config, store, secrets, async () => {
      // Boots, templates and the scheduler answer from memory: they must see the imported rows.
      await provisioning.reload()
      events.emit('inventory imported')
    }),
  })
}

/** Snapshots (SQLite only: PostgreSQL's backups are pg_dump's, the routes say so) and the inventory's export and import. */
function backupOptions(config: Config, store: Db, secrets: SecretBox, imported: () => Promise<void>): BackupRouteOptions & EnjoliverBackupRouteOptions {
  const databaseFile = config.database.path
  return {
    databaseFile,
    ...(isPostgres(store)
      ? {}
      : {
          snapshot: () => takeSnapshot({ databaseFile }),
          snapshotToFolder: () => takeSnapshot({ databaseFile, into: path.join(config.dataDir, 'backups') }),
        }),
    exportInventory: () => exportInventory(store),
    importInventory: async (input) => {
      const report = await importInventory(store, secrets, input)
      await imported()
      return report
    },
  }
}

/** HTTP listens under the connection governor; a port it cannot take stops the start with a ListenerError. */
export async function listenHttp(app: FastifyInstance, config: Config, connections: ConnectionGovernor, logger: Logger): Promise<string> {
  governHttpServer(app.server, 'http', config.http, connections, logger)
  return openListener('HTTP', config.http.host, config.http.port, 'set http.host / http.port (SLIPWAY_HTTP_HOST, SLIPWAY_HTTP_PORT)', () => app.listen({ host: config.http.host, port: config.http.port }))
}
