import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Logger } from 'pino'
import type { BootService } from '../../core/boot/boot-service.ts'
import type { ContentService } from '../../core/content/content-service.ts'
import { installAccessControl, requireBearerToken, registerWithAccess, type TokenVerifier } from './auth.ts'
import { publicAccess } from '../../core/access/route-policy.ts'
import type { AuditTrail } from '../../core/access/audit-trail.ts'
import type { BringUpService } from '../../core/power/bring-up.ts'
import type { MachineFlows } from '../../core/power/machine-flows.ts'
import type { PowerService } from '../../core/power/power-service.ts'
import type { TokenService } from '../../core/access/token-service.ts'
import type { TenantDirectory } from '../../core/access/tenancy.ts'
import type { Db } from '../../storage/database.ts'
import { tokenRoutes } from './routes/admin/tokens.ts'
import { auditRoutes } from './routes/admin/audit.ts'
import type { ClusterRegistry, SweepReport } from '../../core/registry/registry-service.ts'
import multipart from '@fastify/multipart'
import { GZIP_TYPES } from './chart-upload.ts'
import { registryRoutes } from './routes/admin/registry.ts'
import { releaseRoutes } from './routes/admin/releases.ts'
import { dnsRoutes } from './routes/admin/dns.ts'
import type { DnsLocations } from '../../core/dns/dns-locations.ts'
import type { DnsZone } from '../../core/dns/dns-zone.ts'
import { optikonReleaseRoutes } from './routes/compat/optikon/releases.ts'
import { chartRepositoryRoutes } from './routes/chart-repository.ts'
import type { ChartService } from '../../core/releases/chart-service.ts'
import type { ReleaseService } from '../../core/releases/release-service.ts'
import { installErrorHandling } from './errors.ts'
import { loggableUrl } from './loggable-url.ts'
import { clientErrorAnswer, frameworkErrorAnswer, installRequestLimits } from './request-limits.ts'
import type { EngineMetrics } from '../metrics.ts'
import { staticFileRoutes } from './routes/machine/static-files.ts'
import { bootRoutes } from './routes/machine/boot.ts'
import { healthRoutes } from './routes/health.ts'
import { SECURITY_SCHEMES, transformDocument, transformRoute } from './openapi.ts'
import { groupRoutes } from './routes/admin/groups.ts'
import { profileRoutes } from './routes/admin/profiles.ts'
import { selectionRoutes } from './routes/admin/selection.ts'
import { templateRoutes } from './routes/admin/templates.ts'
import { dhcpRoutes } from './routes/admin/dhcp.ts'
import type { ReservationService } from '../../core/dhcp/reservation-service.ts'
import { ErrorResponse } from './schemas/common.ts'
import type { MachineService } from '../../core/machines/machine-service.ts'
import { discoveryRoutes } from './routes/machine/discovery.ts'
import { installRoutes } from './routes/machine/install.ts'
import type { InstallAuthorization } from '../../core/machines/install-authorization.ts'
import { machineRoutes, type MembershipOf } from './routes/admin/machines.ts'
import { machineBootRoutes } from './routes/admin/machine-boot.ts'
import { machineIdentityRoutes } from './routes/admin/machine-identity.ts'
import { uiRoutes } from './routes/ui/ui-routes.ts'
import type { UiSessions } from './ui-session.ts'
import { clusterEtcdRoutes } from './routes/admin/cluster-etcd.ts'
import { clusterRoutes } from './routes/admin/clusters.ts'
import type { BootstrapProgressService } from '../../core/clusters/bootstrap-progress.ts'
import { provisionRoutes } from './routes/compat/mexosagent/provision.ts'
import type { ClusterService, ScheduleReport } from '../../core/clusters/cluster-service.ts'
import type { EtcdAccess } from '../../core/clusters/etcd-access.ts'
import type { EtcdQuorum } from '../../core/clusters/etcd-quorum.ts'
import type { LockService } from '../../core/lifecycle/lock-service.ts'
import type { DriftService } from '../../core/lifecycle/drift.ts'
import type { RollingDrain, RollingMode } from '../../core/lifecycle/rolling-mode.ts'
import type { RollingRefusals } from '../../core/lifecycle/rolling-refusals.ts'
import type { MachineRollingGate } from '../../core/lifecycle/machine-rolling-gate.ts'
import type { RolloutService } from '../../core/lifecycle/rollout-service.ts'
import { rolloutRoutes } from './routes/admin/rollouts.ts'
import type { MachineCredentials } from '../../core/lifecycle/machine-credentials.ts'
import { fleetLockRoutes } from './routes/machine/fleetlock.ts'
import { lifecycleRoutes } from './routes/machine/lifecycle.ts'
import { lockRoutes } from './routes/admin/locks.ts'
import { powerRoutes } from './routes/admin/power.ts'
import { proxyRouteRoutes } from './routes/admin/proxy-routes.ts'
import { mexosagentProxyRoutes } from './routes/compat/mexosagent/proxy.ts'
import { backupRoutes, type BackupRouteOptions } from './routes/admin/backup.ts'
import { enjoliverBackupRoutes, type EnjoliverBackupRouteOptions } from './routes/compat/enjoliver/backup.ts'
import { enjoliverDiscoveryRoutes } from './routes/compat/enjoliver/discovery.ts'
import { enjoliverSchedulerRoutes } from './routes/compat/enjoliver/scheduler.ts'
import type { ProxyRouteService } from '../../core/proxy/proxy-route-service.ts'

export interface AppDependencies {
  boot: BootService
  content: ContentService
  reservations: ReservationService
  verifyToken: TokenVerifier
  checkReady: () => Promise<void>
  isStarting: () => boolean
  logger: Logger
  http: { publicUrl: string; bodyLimit: number }
  assetsDir: string
  ipxeBinariesDir: string
  metrics: EngineMetrics
  version: string
  machines: MachineService
  /** Defaults of the operator's machine-identity calls (credential rotation grace, re-provision window). */
  machinePolicy: { credentialGraceSeconds: number; reprovisionWindowSeconds: number; discoveryReportsPerMinute: number }
  installs: InstallAuthorization
  clusters: ClusterService
  /** Provisioned clusters' etcd, asked live, and operators' etcd client certificates. */
  etcd: { quorum: Pick<EtcdQuorum, 'look'>; access: Pick<EtcdAccess, 'issueClientCertificate'> }
  registry: ClusterRegistry
  charts: ChartService
  releases: ReleaseService
  dnsLocations: DnsLocations
  dnsZone: DnsZone
  /** The largest chart archive a request may carry. */
  chartLimitBytes: number
  healthSweep: { runNow(reason?: string): Promise<SweepReport> }
  /** Timeout of each request to a cluster's API server made while answering (?live=true). */
  requestTimeoutMs: number
  /** Scheduling passes go through the job, so that an API pass never overlaps a timed one. */
  scheduler: { runNow(reason?: string): Promise<ScheduleReport[]> }
  locks: LockService
  /** Machines' BMCs: records, power and boot device; bring-ups in batches. */
  power: PowerService
  bringUps: BringUpService
  /** Re-provision and deprovision through the BMC. */
  flows: MachineFlows
  credentials: MachineCredentials
  /** The lock group of a machine's rolling updates. */
  lockGroupOf: (machineUuid: string) => string
  /** etcd's quorum for control-plane members that roll themselves. */
  rollingGate: MachineRollingGate
  rollingPolicyOf: (machineUuid: string) => { mode: RollingMode; drain: RollingDrain }
  rollingRefusals: RollingRefusals
  drift: DriftService
  bootstrap: BootstrapProgressService
  rollouts: RolloutService
  /** The reverse proxy's routes (the proxy listener itself is transports/proxy). */
  proxy: ProxyRouteService
  /** Web UI sessions: the token in a sealed cookie, accepted by the API as a bearer token is. */
  uiSessions: UiSessions
  /** A machine's cluster, role and hostname once scheduled. */
  membershipOf: MembershipOf
  /** Snapshots (SQLite only) and the inventory's JSON export/import. */
  backup: BackupRouteOptions & EnjoliverBackupRouteOptions
  /** Tenants of clusters, machines and releases; the audit trail; the store behind the token and audit routes. */
  access: { tenants: TenantDirectory; audit: AuditTrail; tokens: TokenService; store: Db }
}

/**
 * Where a request that matches no route still needs a token: the API prefixes and optikon's
 * collections. Matched routes are decided by their own declarations (auth.ts).
 */
const GUARDED_PREFIXES = ['/api', '/v1', '/clusters', '/releases', '/charts']

/** Builds the HTTP app with every route; it never listens, so tests inject requests into it. */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.http.bodyLimit,
    // Requests are logged once, on response, below; fastify's pair of lines per request is noise.
    logController: new LogController({ disableRequestLogging: true }),
    // Reject unknown fields instead of silently dropping them (fastify's default is to remove them).
    // and never coerce types: ["a"] is not the string "a".
    ajv: { customOptions: { removeAdditional: false, allErrors: true, coerceTypes: false } },
    trustProxy: false,
    // Malformed requests (a bad URL escape, Node's parser refusing a request) answer in the engine's error shape.
    frameworkErrors: frameworkErrorAnswer,
    clientErrorHandler: clientErrorAnswer,
  }).withTypeProvider<TypeBoxTypeProvider>()

  installErrorHandling(app)
  installRequestLimits(app)
  // Every route declares its access where it is registered; each request is decided on the route
  // the router matched, and every change recorded (auth.ts).
  installAccessControl(app, {
    authenticate: requireBearerToken(deps.verifyToken, deps.uiSessions),
    machineCredentials: deps.credentials,
    guardedPrefixes: GUARDED_PREFIXES,
    tenants: deps.access.tenants,
    audit: (event) => deps.access.audit.record(event),
  })
  app.addSchema(ErrorResponse)
  const metrics = deps.metrics
  const registryOptions = {
    registry: deps.registry,
    clusters: deps.clusters,
    healthSweep: deps.healthSweep,
    requestTimeoutMs: deps.requestTimeoutMs,
    retire: (uuids: readonly string[], requestedBy: string) => deps.flows.retireAll(uuids, requestedBy),
  }

  // The level is fixed at start-up: decide once whether request lines are written at all.
  const logged = { info: deps.logger.isLevelEnabled('info'), warn: deps.logger.isLevelEnabled('warn') }
  app.addHook('onResponse', (request, reply, done) => {
    // By the matched route's pattern: a path nothing matched is "unmatched", so that no client can mint series.
    metrics.observeHttp(request.method, request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched'), reply.statusCode, reply.elapsedTime / 1000)
    const level = reply.statusCode >= 500 ? 'warn' : 'info'
    if (logged[level]) {
      const entry = { method: request.method, url: loggableUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime), principal: request.principal?.name }
      request.log[level](entry, level === 'warn' ? 'request failed' : 'request')
    }
    done()
  })

  // Chart archives arrive as multipart forms (ours and optikon's) or bare gzip bodies, up to the chart limit.
  await app.register(multipart, { limits: { fileSize: deps.chartLimitBytes, files: 1, fields: 20, fieldSize: 1_048_576, parts: 21 } })
  app.addContentTypeParser(GZIP_TYPES, { parseAs: 'buffer', bodyLimit: deps.chartLimitBytes }, (_request, body, done) => done(null, body))
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Slipway API',
        version: deps.version,
        description:
          'The admin API (every /api/v1 and /v1 route needs `Authorization: Bearer <token>`), and what machines call: the routes tagged machine-facing need no token (firmware and installers cannot send one), the lifecycle routes take the machine credential.',
      },
      components: { securitySchemes: { ...SECURITY_SCHEMES } },
      security: [{ bearerAuth: [] }],
    },
    transform: transformRoute as never,
    transformObject: transformDocument as never,
  })
  // The API's description is public, as every API's is; it holds no data.
  await registerWithAccess(app, publicAccess(), swaggerUi, { routePrefix: '/apidocs' })

  await app.register(bootRoutes, { boot: deps.boot, publicUrl: deps.http.publicUrl, metrics })
  await app.register(staticFileRoutes, { prefix: '/assets', dir: deps.assetsDir, noun: 'asset' })
  // UEFI HTTP boot clients are told to fetch iPXE from here (see core/dhcp/boot-decision.ts).
  await app.register(staticFileRoutes, { prefix: '/pxe', dir: deps.ipxeBinariesDir, noun: 'iPXE binary', trustTopLevelLinks: true })
  await app.register(discoveryRoutes, { machines: deps.machines, reportsPerMinutePerClient: deps.machinePolicy.discoveryReportsPerMinute, wipeRequested: (uuid) => deps.flows.wipeRequested(uuid) })
  await app.register(installRoutes, { installs: deps.installs, flows: deps.flows })
  await app.register(fleetLockRoutes, { locks: deps.locks, lockGroupOf: deps.lockGroupOf, rollingGate: deps.rollingGate })
  await app.register(lifecycleRoutes, {
    locks: deps.locks,
    lockGroupOf: deps.lockGroupOf,
    rollingGate: deps.rollingGate,
    rollingPolicyOf: deps.rollingPolicyOf,
    rollingRefusals: deps.rollingRefusals,
    drift: deps.drift,
    bootstrap: deps.bootstrap,
    publicUrl: deps.http.publicUrl,
  })
  await app.register(healthRoutes, { checkReady: deps.checkReady, isStarting: deps.isStarting, registry: metrics.registry, version: deps.version })

  await app.register(
    async (admin) => {
      await admin.register(groupRoutes, { content: deps.content })
      await admin.register(profileRoutes, { content: deps.content })
      await admin.register(templateRoutes, { content: deps.content })
      await admin.register(selectionRoutes, { boot: deps.boot })
      await admin.register(dhcpRoutes, { reservations: deps.reservations })
      await admin.register(machineRoutes, { machines: deps.machines, membershipOf: deps.membershipOf, drift: deps.drift })
      await admin.register(machineIdentityRoutes, { machines: deps.machines, ...deps.machinePolicy })
      await admin.register(machineBootRoutes, { machines: deps.machines, boot: deps.boot, credentials: deps.credentials, publicUrl: deps.http.publicUrl })
      await admin.register(powerRoutes, { power: deps.power, bringUps: deps.bringUps, flows: deps.flows })
      await admin.register(clusterRoutes, { clusters: deps.clusters, bootstrap: deps.bootstrap, scheduler: deps.scheduler })
      await admin.register(clusterEtcdRoutes, { etcd: deps.etcd })
      await admin.register(registryRoutes, registryOptions)
      await admin.register(releaseRoutes, { charts: deps.charts, releases: deps.releases })
      await admin.register(dnsRoutes, { locations: deps.dnsLocations, zone: deps.dnsZone })
      await admin.register(lockRoutes, { locks: deps.locks })
      await admin.register(rolloutRoutes, { rollouts: deps.rollouts })
      await admin.register(proxyRouteRoutes, { proxy: deps.proxy })
      await admin.register(backupRoutes, deps.backup)
      await admin.register(tokenRoutes, { tokens: deps.access.tokens })
      await admin.register(auditRoutes, { store: deps.access.store, trail: deps.access.audit })
    },
    { prefix: '/api/v1' },
  )
  await app.register(chartRepositoryRoutes, { charts: deps.charts })

  // The seed systems' routes at their own paths, for their clients (routes/compat).
  await app.register(
    async (enjoliver) => {
      await enjoliver.register(enjoliverSchedulerRoutes, { clusters: deps.clusters })
      await enjoliver.register(enjoliverDiscoveryRoutes, { machines: deps.machines })
    },
    { prefix: '/api/v1' },
  )
  await app.register(enjoliverBackupRoutes, deps.backup)
  await app.register(provisionRoutes, { clusters: deps.clusters })
  await app.register(mexosagentProxyRoutes, { proxy: deps.proxy })
  // optikon's cluster registry is Slipway's, also served at the root; its releases have their own shape.
  await app.register(registryRoutes, registryOptions)
  await app.register(optikonReleaseRoutes, { charts: deps.charts, releases: deps.releases })
  await app.register(uiRoutes, { verifyToken: deps.verifyToken, sessions: deps.uiSessions, publicUrl: deps.http.publicUrl })
  return app
}
