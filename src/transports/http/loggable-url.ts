/** A machine credential (storage/machine-credentials.ts), in any case. */
const MACHINE_CREDENTIAL = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(?:g[0-9]+\.)?[A-Za-z0-9_-]{43}/gi
/** An API token (storage/repositories/api-tokens.ts), should one ever be put in a URL. */
const API_TOKEN = /slw_[A-Za-z0-9_-]{20,}/g

/**
 * A request target fit for the log: no machine credential (FleetLock base URLs carry one), no API
 * token, and never a machine's uuid beside its boot MAC (the pair names a machine to the install
 * routes). Read decoded, so that percent-encoding cannot carry a credential past the redaction.
 */
export function loggableUrl(url: string): string {
  const queryStart = url.indexOf('?')
  const path = redactSecrets(decodedOr(queryStart === -1 ? url : url.slice(0, queryStart)))
  if (queryStart === -1) return path
  const query = new URLSearchParams(url.slice(queryStart + 1))
  const pairsWithUuid = query.get('uuid')
  const kept = [...query].map(([key, value]) => `${key}=${key.toLowerCase() === 'mac' && pairsWithUuid ? 'REDACTED' : redactSecrets(value)}`)
  return `${path}?${kept.join('&')}`
}

const redactSecrets = (text: string) => text.replace(MACHINE_CREDENTIAL, 'REDACTED-CREDENTIAL').replace(API_TOKEN, 'REDACTED-TOKEN')

function decodedOr(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
