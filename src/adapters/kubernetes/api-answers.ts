import { ApiException } from '@kubernetes/client-node'

/**
 * Reading what went wrong talking to a Kubernetes API server: its `Status` answers (a
 * PodDisruptionBudget's refusal among them) and the network or TLS failure behind a bare
 * "fetch failed".
 */
/** The `Status` object the API server answers errors with; `ApiException.body` holds it as text. */
export interface ApiStatus {
  message?: string
  reason?: string
  details?: { causes?: Array<{ reason?: string; type?: string; message?: string }>; retryAfterSeconds?: number }
}

export function parseStatus(body: unknown): ApiStatus | undefined {
  try {
    const value: unknown = typeof body === 'string' ? JSON.parse(body) : body
    return value !== null && typeof value === 'object' ? (value as ApiStatus) : undefined
  } catch {
    return undefined
  }
}

export const isStatus = (error: unknown, code: number): error is ApiException<unknown> => error instanceof ApiException && error.code === code

/** Why a 429 was answered: the PDB's own cause when there is one ("The disruption budget web needs 2 healthy pods..."). */
export function refusalReason(error: ApiException<unknown>): { byBudget: boolean; text: string } {
  const status = parseStatus(error.body)
  const cause = status?.details?.causes?.find((c) => c.reason === 'DisruptionBudget' || c.type === 'DisruptionBudget')
  if (cause) return { byBudget: true, text: cause.message ?? status?.message ?? 'disruption budget' }
  return { byBudget: false, text: status?.message ?? 'Too Many Requests' }
}

export const truncate = (text: string, length: number) => (text.length > length ? `${text.slice(0, length)}...` : text)

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
}

/**
 * client-node's KubernetesObjectApi prefixes the message of a failed discovery request
 * (`e.message = ...` in its resource()); when the request was aborted by its timeout the error is a
 * DOMException whose message is read-only, so what reaches us is this TypeError instead.
 */
const isMangledAbort = (error: unknown) => error instanceof TypeError && /Cannot set property message of .* which has only a getter/.test(error.message)

/** What undici's `fetch failed` hides in its `cause` (an error with a code, or an AggregateError of them). */
export function networkCause(error: unknown): { code?: string; text: string; tls: boolean } {
  const seen = error as { name?: string; message?: string; cause?: unknown }
  if (seen?.name === 'TimeoutError' || seen?.name === 'AbortError' || isMangledAbort(error)) return { code: 'TIMEOUT', text: 'no answer in time', tls: false }
  let cause = (seen?.cause ?? error) as { code?: string; message?: string; errors?: unknown[] } | undefined
  if (!cause?.code && Array.isArray(cause?.errors) && cause.errors.length > 0) cause = cause.errors[0] as typeof cause
  const code = cause?.code
  if (code && NETWORK_ERRORS[code]) return { code, text: `${NETWORK_ERRORS[code]} (${code})`, tls: false }
  if (code && (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('UNABLE_TO_') || code.startsWith('ERR_SSL'))) {
    return { code, text: code, tls: true }
  }
  return { code, text: truncate(cause?.message ?? seen?.message ?? String(error), 200), tls: false }
}
