/**
 * The request path the reverse proxy routes and forwards, normalised as nginx does before it matches
 * a location (RFC 3986 §6.2.2 and nginx's ngx_http_parse_complex_uri with merge_slashes on):
 *
 * - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded, other escapes are kept
 *   with upper-case hex (`%7e%c3%a9` -> `~%C3%A9`);
 * - duplicate slashes are merged (`//a//b` -> `/a/b`);
 * - `.` and `..` segments, `%2e` spellings included, are resolved (`/a/./b/../c` -> `/a/c`); a path
 *   that climbs above the root is refused.
 *
 * Stricter than nginx where origins disagree on what a path means, so that no origin can resolve a
 * forwarded path to somewhere outside the route it was chosen for:
 *
 * - an encoded `/` or `\` (%2F, %5C) or a raw `\` is refused: nginx decodes %2F into a separator, many
 *   origins decode it after routing, Windows servers read `\` as one;
 * - a `.`/`..` segment with parameters (`..;x`, `..%3B`) is refused: servlet containers read it as `..`;
 * - an encoded control character (%00-%1F, %7F) is refused (nginx refuses %00), and so are escapes
 *   that are not UTF-8 (overlong `%C0%AE`, which old decoders read as `.`) and malformed ones (`%zz`).
 *
 * The query string is not part of the path: callers keep it as sent.
 */

export type PathProblemCode = 'ENCODED_SLASH_IN_PATH' | 'PATH_ABOVE_ROOT' | 'BAD_PATH_ENCODING' | 'DOT_SEGMENT_WITH_PARAMETERS'

export type NormalizedPath = { ok: true; path: string } | { ok: false; code: PathProblemCode; message: string }

const HEX = '0123456789ABCDEF'
const ALREADY_NORMAL_UNLESS = /[%\\]|\/\/|\/\./
const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** `path` starts with `/` and has no query; the result is the normalised path or why it is refused. */
export function normalizeRequestPath(path: string): NormalizedPath {
  // Most paths have nothing to normalise: no escape, no backslash, no empty or dot-led segment.
  if (!ALREADY_NORMAL_UNLESS.test(path)) return { ok: true, path }
  const shown = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}...` : path)
  const refuse = (code: PathProblemCode, why: string): NormalizedPath => ({ ok: false, code, message: `the path ${shown} ${why}` })
  const raw = path.split('/')
  const kept: string[] = []
  let trailingSlash = false
  // raw[0] is the empty text before the leading slash.
  for (let index = 1; index < raw.length; index++) {
    const decoded = decodeSegment(raw[index]!)
    if (typeof decoded !== 'string') return refuse(decoded.code, decoded.why)
    const last = index === raw.length - 1
    if (decoded === '' || decoded === '.') {
      trailingSlash = last
      continue
    }
    if (decoded === '..') {
      if (kept.length === 0) return refuse('PATH_ABOVE_ROOT', 'climbs above the root with ".."')
      kept.pop()
      trailingSlash = last
      continue
    }
    if (/^\.\.?(;|%3B)/.test(decoded)) {
      return refuse('DOT_SEGMENT_WITH_PARAMETERS', 'has a "." or ".." segment with parameters (such as "..;x"), which some servers read as ".."')
    }
    kept.push(decoded)
    trailingSlash = false
  }
  if (kept.length === 0) return { ok: true, path: '/' }
  return { ok: true, path: `/${kept.join('/')}${trailingSlash ? '/' : ''}` }
}

/** One segment with its escapes normalised, or the problem it has. */
function decodeSegment(segment: string): string | { code: PathProblemCode; why: string } {
  if (!segment.includes('%') && !segment.includes('\\')) return segment
  let out = ''
  for (let i = 0; i < segment.length; i++) {
    const char = segment[i]!
    if (char === '\\') return encodedSlash()
    if (char !== '%') {
      out += char
      continue
    }
    const byte = hexByte(segment, i)
    if (byte === undefined) return { code: 'BAD_PATH_ENCODING', why: `has a malformed percent-encoding (${JSON.stringify(segment.slice(i, i + 3))}; "%" starts two hex digits)` }
    if (byte === 0x2f || byte === 0x5c) return encodedSlash()
    if (byte < 0x20 || byte === 0x7f) return { code: 'BAD_PATH_ENCODING', why: `has an encoded control character (%${hex(byte)})` }
    if (byte >= 0x80) {
      // A run of encoded bytes above 0x7F must be UTF-8 on its own: overlong forms (%C0%AE) are not.
      const bytes: number[] = []
      let j = i
      for (let next = hexByte(segment, j); next !== undefined && next >= 0x80; next = hexByte(segment, j)) {
        bytes.push(next)
        j += 3
      }
      try {
        UTF8.decode(Uint8Array.from(bytes))
      } catch {
        return { code: 'BAD_PATH_ENCODING', why: `has percent-encoded bytes that are not UTF-8 (${bytes.map((value) => `%${hex(value)}`).join('')})` }
      }
      out += bytes.map((value) => `%${hex(value)}`).join('')
      i = j - 1
      continue
    }
    out += isUnreserved(byte) ? String.fromCharCode(byte) : `%${hex(byte)}`
    i += 2
  }
  return out
}

function encodedSlash(): { code: PathProblemCode; why: string } {
  return { code: 'ENCODED_SLASH_IN_PATH', why: 'has an encoded "/" or "\\" (%2F, %5C) or a "\\" inside a segment, which origins do not agree on' }
}

/** The byte of `%XX` at `at`, or undefined when there is no valid escape there. */
function hexByte(text: string, at: number): number | undefined {
  if (text[at] !== '%') return undefined
  const digits = text.slice(at + 1, at + 3)
  return /^[0-9A-Fa-f]{2}$/.test(digits) ? parseInt(digits, 16) : undefined
}

function hex(byte: number): string {
  return HEX[byte >> 4]! + HEX[byte & 15]!
}

function isUnreserved(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e
}
