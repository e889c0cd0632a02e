/**
 * MAC addresses arrive as `52:54:00:aa:bb:cc` (DHCP, discovery), `52-54-00-AA-BB-CC` (iPXE's
 * `${mac:hexhyp}`) or `525400aabbcc`. Everything stored or compared uses the lowercase colon form,
 * so that a selector written in one form matches a request made in another.
 */
const SEPARATED = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i
const BARE = /^[0-9a-f]{12}$/i

/** Returns the canonical lowercase colon form, or undefined if `text` is not a 48-bit MAC. */
export function normalizeMac(text: string): string | undefined {
  const trimmed = text.trim()
  const separated = SEPARATED.exec(trimmed)
  if (separated) {
    return [separated[1], separated[3], separated[4], separated[5], separated[6], separated[7]].join(':').toLowerCase()
  }
  if (BARE.test(trimmed)) return trimmed.toLowerCase().match(/../g)!.join(':')
  return undefined
}
