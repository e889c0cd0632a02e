import type { HealthStatus } from './registered-cluster.ts'

/** Why a request to an API server got no usable answer. */
export type ProbeFailureKind = 'timeout' | 'connection' | 'tls' | 'unauthorized' | 'forbidden' | 'server_error'

/** What one look at a cluster's API server saw (adapters/kubernetes/cluster-connector.ts takes it). */
export interface HealthSample {
  /** The API server's /readyz answered 200. */
  apiReady: boolean
  /** /readyz's body when it was not ready (the failing checks). */
  apiMessage?: string
  kubernetesVersion?: string
  nodes?: { ready: number; total: number; notReady: string[] }
  pods?: { running: number; total: number }
  /** Set when the API server could not be used at all, or a listing failed. */
  failure?: { kind: ProbeFailureKind; message: string }
  durationMs: number
}

export interface HealthVerdict {
  status: HealthStatus
  reason: string
  message: string
}

const UNREACHABLE_REASONS: Record<ProbeFailureKind, string> = {
  timeout: 'Timeout',
  connection: 'ConnectionFailed',
  tls: 'TLSError',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  server_error: 'ServerError',
}

/** Failures that leave the engine without any use of the cluster; the others mean it answers, badly. */
const UNUSABLE: ProbeFailureKind[] = ['timeout', 'connection', 'tls', 'unauthorized']

const listNames = (names: string[], limit = 5) => names.slice(0, limit).join(', ') + (names.length > limit ? ` and ${names.length - limit} more` : '')

/**
 * Healthy: the API server is ready and every node is Ready. Degraded: it answers, but is not ready,
 * has no node or NotReady nodes, fails requests (5xx) or lets the engine see less than it needs (403). Unreachable: no
 * answer in time, no connection, a TLS failure, or credentials it rejects (401): the engine cannot
 * use the cluster at all, and says which of these it was.
 */
export function classifyHealth(sample: HealthSample): HealthVerdict {
  const { failure } = sample
  if (failure && UNUSABLE.includes(failure.kind)) {
    const message = failure.kind === 'unauthorized' ? `the API server rejected the engine's credentials: ${failure.message}` : failure.message
    return { status: 'Unreachable', reason: UNREACHABLE_REASONS[failure.kind], message }
  }
  if (failure) return { status: 'Degraded', reason: UNREACHABLE_REASONS[failure.kind], message: failure.message }
  if (!sample.apiReady) return { status: 'Degraded', reason: 'APIServerNotReady', message: `/readyz is failing${sample.apiMessage ? `: ${sample.apiMessage}` : ''}` }
  const nodes = sample.nodes ?? { ready: 0, total: 0, notReady: [] }
  const pods = sample.pods ? `, ${sample.pods.running}/${sample.pods.total} pods running` : ''
  if (nodes.total === 0) return { status: 'Degraded', reason: 'NoNodes', message: `the cluster has no node${pods}` }
  if (nodes.ready < nodes.total) {
    return { status: 'Degraded', reason: 'NodesNotReady', message: `${nodes.total - nodes.ready} of ${nodes.total} nodes not Ready (${listNames(nodes.notReady)})${pods}` }
  }
  return { status: 'Healthy', reason: 'AllReady', message: `${nodes.ready}/${nodes.total} nodes Ready${pods}` }
}
