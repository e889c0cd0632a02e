import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { JobLeases } from '../jobs/job-lease.ts'
import type { Db } from '../storage/database.ts'
import type { SecretBox } from '../storage/secret-box.ts'
import type { ConnectionGovernor } from '../transports/connection-governor.ts'
import type { EngineMetrics } from '../transports/metrics.ts'
import type { EngineEvents } from './engine-events.ts'

/** What every capability is wired with. */
export interface WiringBasics {
  config: Config
  store: Db
  secrets: SecretBox
  logger: Logger
  metrics: EngineMetrics
  events: EngineEvents
  /** The leases of the singleton jobs (replicas.ts): a job that must run on one replica at a time takes one. */
  jobLeases: JobLeases
}

/** A background job as the engine runs it: started once every listener is open, stopped before the store closes. */
export interface EngineJob {
  start(): void
  stop(): Promise<void>
}

/** What a listener needs that exists only once the engine starts. */
export interface ListenContext {
  /** Bounds every TCP listener's connections together, below the descriptor limit. */
  connections: ConnectionGovernor
  /** The port HTTP listens on (DHCP hands out URLs to it). */
  httpPort: number
}

export interface Closable {
  close(): Promise<void>
}

/**
 * Opens a socket (or a set) a capability serves on besides HTTP; rejects with a ListenerError naming
 * it when it cannot, and resolves to nothing when the capability is switched off.
 */
export type EngineListener = (context: ListenContext) => Promise<Closable | undefined>

/** What every capability hands the engine beside its services: its jobs, its listeners and what to close. */
export interface Capability {
  jobs: EngineJob[]
  listeners: EngineListener[]
  /** Releases clients and pools, once the jobs stopped and the listeners closed. */
  close?(): Promise<void>
}
