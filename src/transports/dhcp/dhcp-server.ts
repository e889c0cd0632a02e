/**
 * The engine's DHCP server: checks the settings, picks the responder of the mode and runs it on the
 * socket loop. Full mode hands out addresses and boot information; proxy mode (beside an existing
 * DHCP server) only boot information, on port 67 and on the PXE port 4011. Each answered request
 * is logged and counted here, once.
 */
import type { Logger } from 'pino'
import type { Config } from '../../config.ts'
import type { EngineMetrics } from '../metrics.ts'
import { validateDhcpSettings } from '../../core/dhcp/dhcp-settings.ts'
import type { DhcpLeaseStore } from '../../core/dhcp/lease-store.ts'
import { misconfigured } from '../../core/errors.ts'
import { DEFAULT_IPXE_BINARIES, type BootServer, type IpxeBinaries } from '../../core/dhcp/boot-decision.ts'
import type { DhcpHandler } from './dhcp-handler.ts'
import { emptyDhcpStats, startDhcpSocketLoop, type DhcpServerHandle } from './dhcp-socket-loop.ts'
import { FullResponder } from './full-responder.ts'
import { ProxyResponder, PXE_PORT } from './proxy-responder.ts'

export type { DhcpServerHandle, DhcpServerStats } from './dhcp-socket-loop.ts'
export { PXE_PORT } from './proxy-responder.ts'

export interface DhcpServerOptions {
  settings: Config['dhcp']
  /** Base URL of the engine's HTTP for iPXE scripts and HTTP boot, e.g. `http://10.0.0.1:8080`. */
  httpUrl: string
  binaries?: IpxeBinaries
  /** Leases and reservations (full mode); in the engine, `dhcpLeaseStore(db)`. */
  leases: DhcpLeaseStore
  logger: Logger
  /** Where decisions are counted for /metrics; optional so the server can run alone (tests, lab). */
  metrics?: EngineMetrics
  clock?: () => Date
}

export async function startDhcpServer(options: DhcpServerOptions): Promise<DhcpServerHandle> {
  const { settings, logger, metrics } = options
  if (settings.mode === 'off') return { close: async () => {}, stats: emptyDhcpStats }

  const problems = validateDhcpSettings(settings)
  if (problems.length > 0) {
    throw misconfigured('DHCP_SETTINGS_INVALID', `invalid dhcp settings:\n  - ${problems.map((problem) => `${problem.path}: ${problem.message} (${problem.code})`).join('\n  - ')}`, { problems })
  }
  const bootServer: BootServer = { address: settings.serverAddress, httpUrl: options.httpUrl.replace(/\/+$/, ''), binaries: options.binaries ?? DEFAULT_IPXE_BINARIES }
  const handler: DhcpHandler =
    settings.mode === 'proxy'
      ? new ProxyResponder({ serverAddress: settings.serverAddress, bootServer })
      : new FullResponder({ settings, leases: options.leases, bootServer, clock: options.clock ?? (() => new Date()) })
  const extraPorts = settings.mode === 'proxy' ? [PXE_PORT] : []
  const log = logger.child({ component: 'dhcp', mode: settings.mode })

  const server = await startDhcpSocketLoop({
    serverPort: settings.port,
    extraPorts,
    serverAddress: settings.serverAddress,
    handler,
    log,
    observer: {
      answered: (outcome) => {
        metrics?.countDhcpDecision({ mode: settings.mode, type: outcome.requestType, outcome: outcome.message, boot: outcome.boot })
        log[outcome.level](outcome.fields, outcome.message)
      },
      malformed: (code) => metrics?.countDhcpMalformed(code),
    },
  })
  const pool = settings.mode === 'full' ? { pool: `${settings.rangeStart}-${settings.rangeEnd}` } : {}
  log.info({ ports: [settings.port, ...extraPorts], serverAddress: settings.serverAddress, ...pool }, 'DHCP server listening')
  return server
}
