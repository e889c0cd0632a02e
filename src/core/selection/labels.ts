import { normalizeMac } from '../../lib/mac.ts'
import { invalid } from '../errors.ts'

/** Labels describe a booting machine: every query parameter of a machine-facing request is one. */
export type Labels = Readonly<Record<string, string>>

/**
 * Builds labels from query parameters the way matchbox does (first value of a repeated key wins),
 * except that an unparseable `mac` is rejected: matchbox silently drops it and the machine then
 * boots whatever the default group says, which is how a fleet gets reinstalled by accident.
 */
export function labelsFromQuery(query: Iterable<[string, string]>): Labels {
  const labels: Record<string, string> = {}
  for (const [key, value] of query) {
    if (key in labels) continue
    // matchbox parses the MAC whatever the key's case, but keeps the key as written.
    if (key.toLowerCase() === 'mac') {
      const mac = normalizeMac(value)
      if (!mac) {
        throw invalid('INVALID_MAC', `mac "${value}" is not a MAC address; use 52:54:00:aa:bb:cc or 52-54-00-aa-bb-cc`, {
          mac: value,
        })
      }
      labels[key] = mac
    } else {
      labels[key] = value
    }
  }
  return labels
}
