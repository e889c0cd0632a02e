import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { SlipwayError } from '../core/errors.ts'
import type { InventoryFigures } from '../core/inventory-figures.ts'
import type { ConnectionMetrics, ShedReason } from './connection-governor.ts'

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/**
 * The engine's Prometheus metrics, shared by every transport and served at /metrics: what machines
 * were handed over HTTP, DHCP and TFTP, so a template broken for some machines, a full pool or a
 * missing iPXE binary shows up at once; and how often helm rendered for release fan-outs.
 */
export class EngineMetrics {
  readonly registry = new Registry()
  /** The TCP listeners' connections, as the connection governor bounds them. */
  readonly connections: ConnectionMetrics = new ListenerConnectionMetrics(this.registry)
  private readonly renders: Counter<'kind' | 'outcome'>
  private readonly dhcpDecisions: Counter<'mode' | 'type' | 'outcome' | 'boot'>
  private readonly dhcpMalformed: Counter<'code'>
  private readonly tftpTransfers: Counter<'outcome'>
  private readonly tftpBytes: Counter
  private readonly tftpActiveTransfers: Gauge
  private readonly bmcCalls: Counter<'protocol' | 'operation' | 'outcome'>
  private readonly bmcSeconds: Histogram<'protocol' | 'operation'>
  private readonly tftpRefusals: Counter<'reason'>
  private readonly helmRenders: Counter
  private readonly machineConflicts: Counter<'kind'>
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>
  private readonly httpSeconds: Histogram<'method' | 'route'>

  constructor() {
    // prom-client's process_* and nodejs_* series under their standard names (what the usual Node.js
    // dashboards query), less its three gauges named like counters (Prometheus' rules, which promtool
    // checks): nodejs_active_{handles,requests,resources} by type stay, their _total sums go.
    collectDefaultMetrics({ register: this.registry })
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name)
    const registers = [this.registry]
    this.httpRequests = new Counter({
      name: 'slipway_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern ("unmatched" when no route matched: raw paths never become labels) and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    })
    this.httpSeconds = new Histogram({
      name: 'slipway_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method and route pattern.',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    this.renders = new Counter({
      name: 'slipway_boot_renders_total',
      help: 'Machine-facing renders by kind (ipxe, ignition, metadata, generic) and outcome (ok or an error code).',
      labelNames: ['kind', 'outcome'],
      registers,
    })
    this.dhcpDecisions = new Counter({
      name: 'slipway_dhcp_decisions_total',
      help: 'DHCP messages answered or deliberately not, by mode, message type, outcome (offer, ack, nak, no offer, ...) and boot decision (ipxe-script, tftp-binary, http-binary, none).',
      labelNames: ['mode', 'type', 'outcome', 'boot'],
      registers,
    })
    this.dhcpMalformed = new Counter({
      name: 'slipway_dhcp_malformed_total',
      help: 'Datagrams on the DHCP ports that were not a parseable DHCP message, by reason.',
      labelNames: ['code'],
      registers,
    })
    this.tftpTransfers = new Counter({
      name: 'slipway_tftp_transfers_total',
      help: 'TFTP read requests that got past the limits, by outcome: sent, not-found, access-denied, client-aborted, failed, shutdown, evicted (its client never answered and the slot was needed), unanswered (its client never answered until the retransmissions ran out). Requests turned away before a transfer are in slipway_tftp_refusals_total.',
      labelNames: ['outcome'],
      registers,
    })
    this.tftpBytes = new Counter({ name: 'slipway_tftp_sent_bytes_total', help: 'Bytes sent by completed TFTP transfers.', registers })
    this.tftpActiveTransfers = new Gauge({ name: 'slipway_tftp_active_transfers', help: 'TFTP read requests holding a transfer slot (being looked up or transferring).', registers })
    this.tftpRefusals = new Counter({
      name: 'slipway_tftp_refusals_total',
      help: 'TFTP requests answered with an ERROR instead of a transfer, by reason: server-busy (every slot taken by answering clients), client-busy (the per-client limit), no-file-descriptor (EMFILE/ENFILE), malformed, write-request, unsupported-mode.',
      labelNames: ['reason'],
      registers,
    })
    this.machineConflicts = new Counter({
      name: 'slipway_machine_identity_conflicts_total',
      help: "Discovery reports refused because they claimed a known machine's identity, by kind: mac-claimed (a new uuid with a known boot MAC), mac-changed (a known uuid with another boot MAC), address-changed (a machine with a role at another address). Open conflicts are at GET /api/v1/machines/conflicts.",
      labelNames: ['kind'],
      registers,
    })
    this.bmcCalls = new Counter({
      name: 'slipway_bmc_calls_total',
      help: 'BMC operations (IPMI, Redfish), by protocol, operation (power status, power on, boot device, ...) and outcome (ok or the failure code), retries included in one.',
      labelNames: ['protocol', 'operation', 'outcome'],
      registers,
    })
    this.bmcSeconds = new Histogram({
      name: 'slipway_bmc_call_duration_seconds',
      help: 'Time of a BMC operation from its first try to its end, retries and backoff included.',
      labelNames: ['protocol', 'operation'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    })
    this.helmRenders = new Counter({
      name: 'slipway_helm_renders_total',
      help: 'helm template runs of the release fan-out: one per distinct chart, release, values and Kubernetes version (clusters with equal values share one); the render that checks an install or upgrade is not counted.',
      registers,
    })
  }

  async observeRender<T>(kind: string, render: () => T | Promise<T>): Promise<T> {
    try {
      const result = await render()
      this.renders.inc({ kind, outcome: 'ok' })
      return result
    } catch (error) {
      this.renders.inc({ kind, outcome: error instanceof SlipwayError ? error.code : 'INTERNAL' })
      throw error
    }
  }

  countMachineConflict(kind: string): void {
    this.machineConflicts.inc({ kind })
  }

  countDhcpDecision(labels: { mode: string; type: string; outcome: string; boot: string }): void {
    this.dhcpDecisions.inc(labels)
  }

  countDhcpMalformed(code: string): void {
    this.dhcpMalformed.inc({ code })
  }

  observeBmcCall(protocol: string, operation: string, outcome: string, seconds: number): void {
    this.bmcCalls.inc({ protocol, operation, outcome })
    this.bmcSeconds.observe({ protocol, operation }, seconds)
  }

  countHelmRender(): void {
    this.helmRenders.inc()
  }

  countTftpTransfer(outcome: string, bytes: number): void {
    this.tftpTransfers.inc({ outcome })
    if (outcome === 'sent') this.tftpBytes.inc(bytes)
  }

  countTftpRefusal(reason: string): void {
    this.tftpRefusals.inc({ reason })
  }

  setTftpActiveTransfers(count: number): void {
    this.tftpActiveTransfers.set(count)
  }

  observeHttp(method: string, route: string, status: number, seconds: number): void {
    // A method is a client's word too: only the standard ones become label values.
    const known = HTTP_METHODS.has(method) ? method : 'other'
    this.httpRequests.inc({ method: known, route, status: String(status) })
    this.httpSeconds.observe({ method: known, route }, seconds)
  }

  /**
   * Gauges read from the store when Prometheus scrapes: machines by state, install slots in use of
   * `installSlots`, clusters by health (Unknown: never checked), releases by state, reboot lock slots
   * and holders per group. One read serves every gauge of a scrape.
   */
  observeInventory(read: () => Promise<InventoryFigures>, installSlots: number): void {
    let pending: Promise<InventoryFigures> | undefined
    const figures = () => {
      // The gauges of one scrape are collected together: they share the read under way.
      pending ??= read().finally(() => setTimeout(() => (pending = undefined), 0))
      return pending
    }
    const registers = [this.registry]
    const byLabel = <L extends string>(gauge: Gauge<L>, label: L, counts: Record<string, number>) => {
      gauge.reset()
      for (const [value, count] of Object.entries(counts)) gauge.set({ [label]: value } as Record<L, string>, count)
    }
    new Gauge({ name: 'slipway_machines', help: 'Machines in the inventory, by state.', labelNames: ['state'], registers, async collect() { byLabel(this, 'state', (await figures()).machinesByState) } })
    new Gauge({ name: 'slipway_install_slots_in_use', help: 'Install slots held: machines installing to disk now.', registers, async collect() { this.set((await figures()).machinesByState.installing ?? 0) } })
    new Gauge({ name: 'slipway_install_slots', help: 'Install slots in all (install.maxConcurrent).', registers, collect() { this.set(installSlots) } })
    new Gauge({ name: 'slipway_clusters', help: 'Clusters in the registry, by health (Healthy, Degraded, Unreachable; Unknown until checked once).', labelNames: ['health'], registers, async collect() { byLabel(this, 'health', (await figures()).clustersByHealth) } })
    new Gauge({ name: 'slipway_releases', help: 'Releases, by state (active, paused, halted, deleting).', labelNames: ['state'], registers, async collect() { byLabel(this, 'state', (await figures()).releasesByState) } })
    new Gauge({ name: 'slipway_machine_power', help: 'Machines with a BMC, by the power state it last reported (on, off; unknown until read).', labelNames: ['state'], registers, async collect() { byLabel(this, 'state', (await figures()).machinesByPower) } })
    new Gauge({ name: 'slipway_lock_slots', help: 'Reboot lock slots, by lock group.', labelNames: ['group'], registers, async collect() { byLabel(this, 'group', Object.fromEntries(Object.entries((await figures()).lockGroups).map(([group, lock]) => [group, lock.slots]))) } })
    new Gauge({ name: 'slipway_lock_slots_held', help: 'Reboot lock slots held, by lock group.', labelNames: ['group'], registers, async collect() { byLabel(this, 'group', Object.fromEntries(Object.entries((await figures()).lockGroups).map(([group, lock]) => [group, lock.held]))) } })
  }
}

/**
 * Connections of the TCP listeners (http, proxy, dns) under the connection governor: how many are
 * open against their cap, and how many it closed, so that a flood shows up as evictions before
 * anyone is refused.
 */
class ListenerConnectionMetrics implements ConnectionMetrics {
  private readonly open: Gauge<'listener'>
  private readonly limit: Gauge<'listener'>
  private readonly shed: Counter<'listener' | 'reason'>

  constructor(registry: Registry) {
    const registers = [registry]
    this.open = new Gauge({ name: 'slipway_connections_open', help: 'TCP connections open, by listener (http, proxy, dns).', labelNames: ['listener'], registers })
    this.limit = new Gauge({
      name: 'slipway_connections_limit',
      help: 'Connections a listener holds at most, and across listeners (listener="all"): the configured caps, lowered to fit the file descriptor limit.',
      labelNames: ['listener'],
      registers,
    })
    this.shed = new Counter({
      name: 'slipway_connections_shed_total',
      help: 'Connections the governor closed, by listener and reason: idle_timeout; evicted_client_cap, evicted_listener_cap, evicted_process_cap (the longest-idle one, to make room for a new connection over that cap); refused_client_cap, refused_listener_cap, refused_process_cap (a new connection, when every one under the cap was busy).',
      labelNames: ['listener', 'reason'],
      registers,
    })
  }

  connectionOpened(listener: string): void {
    this.open.inc({ listener })
  }

  connectionClosed(listener: string): void {
    this.open.dec({ listener })
  }

  connectionShed(listener: string, reason: ShedReason): void {
    this.shed.inc({ listener, reason })
  }

  connectionLimit(listener: string, limit: number): void {
    this.limit.set({ listener }, limit)
  }
}
