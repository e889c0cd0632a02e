import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { SlipwayError } from '../core/errors.ts'
import type { ConnectionMetrics, ShedReason } from './connection-governor.ts'

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
  private readonly tftpRefusals: Counter<'reason'>
  private readonly helmRenders: Counter
  private readonly machineConflicts: Counter<'kind'>

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'slipway_' })
    const registers = [this.registry]
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
