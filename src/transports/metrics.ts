import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import { SlipwayError } from '../core/errors.ts'

/**
 * The engine's Prometheus metrics, shared by every transport and served at /metrics: what machines
 * were handed over HTTP, DHCP and TFTP, so a template broken for some machines, a full pool or a
 * missing iPXE binary shows up at once; and how often helm rendered for release fan-outs.
 */
export class EngineMetrics {
  readonly registry = new Registry()
  private readonly renders: Counter<'kind' | 'outcome'>
  private readonly dhcpDecisions: Counter<'mode' | 'type' | 'outcome' | 'boot'>
  private readonly dhcpMalformed: Counter<'code'>
  private readonly tftpTransfers: Counter<'outcome'>
  private readonly tftpBytes: Counter
  private readonly helmRenders: Counter

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
      help: 'TFTP read requests by outcome (sent, not-found, access-denied, refused, aborted, failed).',
      labelNames: ['outcome'],
      registers,
    })
    this.tftpBytes = new Counter({ name: 'slipway_tftp_sent_bytes_total', help: 'Bytes sent by completed TFTP transfers.', registers })
    this.helmRenders = new Counter({
      name: 'slipway_helm_renders_total',
      help: 'helm template runs of the release fan-out: one per distinct chart, release, values and Kubernetes version (clusters with equal values share one); the render that checks an install or upgrade is not counted.',
      registers,
    })
  }

  observeRender<T>(kind: string, render: () => T): T {
    try {
      const result = render()
      this.renders.inc({ kind, outcome: 'ok' })
      return result
    } catch (error) {
      this.renders.inc({ kind, outcome: error instanceof SlipwayError ? error.code : 'INTERNAL' })
      throw error
    }
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
}
