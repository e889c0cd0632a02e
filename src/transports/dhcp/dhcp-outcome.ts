/**
 * What one answered request leaves behind: a log line saying what was decided and why, and a count in
 * /metrics. Responders describe it; the server writes it, so a responder needs no logger.
 */
import type { BootDecision } from '../../core/dhcp/boot-decision.ts'
import { NO_ADDRESS } from './dhcp-packet.ts'
import type { DhcpRequest } from './dhcp-request.ts'

export interface DhcpOutcome {
  /** The log message and the metrics label, e.g. `offer`, `nak`, `proxy ack (port 4011)`. */
  message: string
  level: 'info' | 'warn'
  /** The request's message type name, e.g. `DISCOVER`. */
  requestType: string
  boot: BootDecision['kind']
  /** The log line: the client, what was decided, and `reason`. */
  fields: Record<string, unknown>
}

/** A responder's own words on one request; `why` replaces the boot decision's reason in the log. */
export interface Verdict {
  message: string
  fields?: Record<string, unknown>
  why?: string
  level?: 'info' | 'warn'
}

export function outcomeOf(request: DhcpRequest, decision: BootDecision, verdict: Verdict): DhcpOutcome {
  const { client, packet } = request
  return {
    message: verdict.message,
    level: verdict.level ?? 'info',
    requestType: request.typeName,
    boot: decision.kind,
    fields: {
      mac: request.mac,
      type: request.typeName,
      arch: client.arch,
      vendorClass: client.vendorClass,
      userClasses: client.userClasses,
      ...(packet.giaddr !== NO_ADDRESS ? { relay: packet.giaddr } : {}),
      ...verdict.fields,
      reason: verdict.why ?? decision.reason,
    },
  }
}
