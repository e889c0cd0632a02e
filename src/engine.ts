import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './config.ts'
import type { MachineShell, NodeDrainer } from './core/lifecycle/ports.ts'
import type { ReleaseApplier } from './core/releases/ports.ts'
import type { ClusterApi } from './core/registry/registry-service.ts'
import type { JobLeases } from './jobs/job-lease.ts'
import type { Db } from './storage/database.ts'
import { inventoryFigures } from './storage/repositories/inventory-figures.ts'
import { ConnectionGovernor, processConnectionCap } from './transports/connection-governor.ts'
import { EngineMetrics } from './transports/metrics.ts'
import { wireAccess } from './wiring/access.ts'
import { wireApps } from './wiring/apps.ts'
import type { Capability, Closable, ListenContext } from './wiring/capability.ts'
import { wireDns } from './wiring/dns.ts'
import { EngineEvents } from './wiring/engine-events.ts'
import { wireEtcd, type EtcdAdapter } from './wiring/etcd.ts'
import { buildEngineApp, listenHttp } from './wiring/http.ts'
import { wireLifecycle } from './wiring/lifecycle.ts'
import { wirePower, type PowerAdapters } from './wiring/power.ts'
import { wireProvisioning } from './wiring/provisioning.ts'
import { replicaJobLeases, replicaRefresh } from './wiring/replicas.ts'
import { wireReverseProxy } from './wiring/reverse-proxy.ts'
import { openStorage } from './wiring/storage.ts'

export interface Engine {
  app: FastifyInstance
  store: Db
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

/** Adapters a test may replace (the real ones reach machines and clusters). */
export interface EngineAdapters {
  shell?: MachineShell
  drainerFrom?: (kubeconfig: string) => NodeDrainer
  clusterApi?: ClusterApi & { close?(): Promise<void> }
  releaseApplier?: ReleaseApplier & { close?(): Promise<void> }
  /** BMC clients by protocol (the real ones run ipmitool and speak Redfish). */
  power?: PowerAdapters
  /** Clusters' etcd (the real one speaks etcd's v3 JSON gateway to the members). */
  etcd?: EtcdAdapter
}

/**
 * Wires the engine in dependency order: storage, then each capability over the ones before it
 * (src/wiring, one module each), then HTTP over all of them. Where a capability must wake a job
 * wired after it, it emits an EngineEvent. Listening is the caller's choice (`start`).
 */
export async function createEngine(config: Config, logger: Logger, adapters: EngineAdapters = {}): Promise<Engine> {
  const { store, secrets } = await openStorage(config, logger)
  try {
    const metrics = new EngineMetrics()
    metrics.observeInventory(() => inventoryFigures(store), config.install.maxConcurrent)
    const basics = { config, store, secrets, logger, metrics, events: new EngineEvents(), jobLeases: replicaJobLeases(config, store, logger, metrics) }
    const access = await wireAccess(basics)
    const provisioning = await wireProvisioning(basics)
    const etcd = wireEtcd(basics, provisioning, adapters.etcd)
    const power = wirePower(basics, access.audit, provisioning, etcd.members, adapters.power)
    const lifecycle = wireLifecycle(basics, provisioning, adapters, power.power, etcd.quorum)
    const apps = wireApps(basics, provisioning, access.tenants, adapters)
    const dns = wireDns(basics, provisioning.endpointHealth)
    const reverseProxy = await wireReverseProxy(basics)
    const replicas = replicaRefresh(basics, provisioning.reload, reverseProxy.routes)
    // HTTP listens first (a port taken fails before anything ran); /healthz says 'starting' until the rest listen too.
    let starting = false
    const app = await buildEngineApp(basics, { access, provisioning, etcd, power, lifecycle, apps, dns, reverseProxy }, () => starting)
    const { jobLeases } = basics
    const running = runCapabilities([access, provisioning, etcd, power, lifecycle, apps, dns, reverseProxy, replicas], jobLeases)
    return {
      app,
      store,
      ...(access.generatedAdminToken ? { generatedAdminToken: access.generatedAdminToken } : {}),
      dnsPort: dns.port,
      proxyUrl: reverseProxy.url,
      jobLeases,
      start: async () => {
        // One governor bounds every TCP listener's connections, together below the descriptor limit.
        const connections = new ConnectionGovernor({ maxConnections: processConnectionCap() ?? Number.POSITIVE_INFINITY, metrics: metrics.connections, logger })
        starting = true
        try {
          const address = await listenHttp(app, config, connections, logger)
          await running.start({ connections, httpPort: (app.server.address() as AddressInfo).port })
          return address
        } finally {
          starting = false
        }
      },
      close: async (options) => {
        await running.stop(options)
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
 * Every listener first, then the job leases, then the jobs: an engine that cannot open a socket has
 * run nothing (a ListenerError names it; the caller closes the engine). Stopping goes the other way:
 * the jobs, then the leases (another replica takes over at once, with nothing of ours still
 * running), the listeners, and the capabilities' clients.
 */
function runCapabilities(capabilities: Capability[], jobLeases: JobLeases) {
  const opened: Closable[] = []
  const jobs = capabilities.flatMap((capability) => capability.jobs)
  return {
    start: async (context: ListenContext) => {
      for (const listener of capabilities.flatMap((capability) => capability.listeners)) {
        const socket = await listener(context)
        if (socket) opened.push(socket)
      }
      // The first claims are awaited, so that each job's first pass runs at once on the holder.
      await jobLeases.start()
      for (const job of jobs) job.start()
    },
    stop: async ({ releaseLeases = true }: { releaseLeases?: boolean } = {}) => {
      if (!releaseLeases) jobLeases.abandon()
      for (const job of [...jobs].reverse()) await job.stop()
      await jobLeases.stop()
      for (const socket of opened.splice(0).reverse()) await socket.close()
      for (const capability of [...capabilities].reverse()) await capability.close?.()
    },
  }
}
