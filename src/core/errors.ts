/**
 * Every failure the domain reports carries a stable machine-readable code and a message a person can
 * act on. Transports map the kind to their own status (HTTP 4xx/5xx, DHCP silence, DNS rcode).
 */
export type ErrorKind =
  | 'invalid' // the caller sent something wrong; nothing was changed
  | 'too_large' // the caller sent more than is accepted; nothing was changed
  | 'unsupported' // the caller sent a format (media type, encoding) that is not accepted; nothing was changed
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'unavailable' // try again later (Ignition retries 5xx forever)
  | 'rate_limited' // the caller asked too often; try again after `retryAfterSeconds`
  | 'configuration' // the engine's own content (profile, template) is broken: an operator must fix it
  | 'upstream' // a system the engine drives for the caller (a BMC) failed or refused
  | 'upstream_timeout' // a system the engine drives did not answer in time

/** At most this many problems of one document are reported (with their count): a bounded answer for any input. */
export const MAX_REPORTED_PROBLEMS = 20

export class SlipwayError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
    this.name = 'SlipwayError'
  }
}

export const invalid = (code: string, message: string, details?: Record<string, unknown>) =>
  new SlipwayError('invalid', code, message, details)
export const tooLarge = (code: string, message: string, details?: Record<string, unknown>) =>
  new SlipwayError('too_large', code, message, details)
export const notFound = (code: string, message: string, details?: Record<string, unknown>) =>
  new SlipwayError('not_found', code, message, details)
export const conflict = (code: string, message: string, details?: Record<string, unknown>) =>
  new SlipwayError('conflict', code, message, details)
export const forbidden = (code: string, message: string, details?: Record<string, unknown>) =>
  new SlipwayError('forbidden', code, message, details)
/** `retryAfterSeconds` becomes HTTP's Retry-After. */
export const unavailable = (code: string, message: string, retryAfterSeconds: number, details?: Record<string, unknown>) =>
  new SlipwayError('unavailable', code, message, { ...details, retryAfterSeconds })
/** `retryAfterSeconds` becomes HTTP's Retry-After. */
export const rateLimited = (code: string, message: string, retryAfterSeconds: number, details?: Record<string, unknown>) =>
  new SlipwayError('rate_limited', code, message, { ...details, retryAfterSeconds })
/** A system the engine drives (a BMC) failed: `timedOut` when it did not answer in time. */
export const upstreamFailed = (code: string, message: string, timedOut: boolean, details?: Record<string, unknown>) =>
  new SlipwayError(timedOut ? 'upstream_timeout' : 'upstream', code, message, details)
export const misconfigured = (code: string, message: string, details?: Record<string, unknown>) =>
  new SlipwayError('configuration', code, message, details)
