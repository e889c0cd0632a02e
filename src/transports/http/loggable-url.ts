/** A machine credential (core/lifecycle/machine-credentials.ts), in any case. */
const MACHINE_CREDENTIAL = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(?:g[0-9]+\.)?[A-Za-z0-9_-]{43}/gi
/** An API token (core/access/token-service.ts), should one ever be put in a URL. */
const API_TOKEN = /slw_[A-Za-z0-9_-]{20,}/g
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i
/** A MAC in any of the forms the engine reads (52:54:00:aa:bb:cc, 52-54-00-AA-BB-CC, 525400aabbcc). */
const MAC = /(?<![0-9a-f])(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}(?![0-9a-f])|(?<![0-9a-f-])[0-9a-f]{12}(?![0-9a-f-])/gi

/**
 * A request target fit for the log: no machine credential (FleetLock base URLs carry one), no API
 * token, and never a machine's uuid beside a MAC (the pair names a machine to the install routes), in
 * whatever key, case or place they appear. Read decoded, so that percent-encoding cannot carry a
 * secret past the redaction.
 */
export function loggableUrl(url: string): string {
  let text = decodedOr(url).replace(MACHINE_CREDENTIAL, 'REDACTED-CREDENTIAL').replace(API_TOKEN, 'REDACTED-TOKEN')
  if (UUID.test(text)) text = text.replace(MAC, 'REDACTED')
  return text
}

function decodedOr(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
