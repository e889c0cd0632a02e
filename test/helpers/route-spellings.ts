/**
 * Other spellings of one request path, as clients, proxies and attackers produce them: each names
 * the same resource to someone (a router that decodes, a proxy that merges slashes, a server that
 * ignores case or path parameters), so access must come out the same for all, or the request must
 * not reach the route at all.
 */
export interface Spelling {
  name: string
  /** The request target, exactly as sent on the request line. */
  target: string
  /** The Host header sent with it. */
  host?: string
}

const hex = (char: string) => `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`
const encodeLetters = (segment: string, upper = false) =>
  [...segment].map((char) => (/[A-Za-z0-9]/.test(char) ? (upper ? hex(char).toUpperCase() : hex(char)) : char)).join('')

/** `path` is concrete (parameters filled in) and starts with '/'. */
export function spellingsOf(path: string): Spelling[] {
  const segments = path.split('/').slice(1)
  const first = segments[0] ?? ''
  const last = segments[segments.length - 1] ?? ''
  const rest = segments.slice(1).join('/')
  const withFirst = (segment: string) => `/${[segment, ...segments.slice(1)].join('/')}`
  const withLast = (segment: string) => `/${[...segments.slice(0, -1), segment].join('/')}`
  const spellings: Spelling[] = [
    { name: 'canonical', target: path },
    { name: 'first letter percent-encoded', target: withFirst(hex(first[0] ?? 'a') + first.slice(1)) },
    { name: 'last segment letter percent-encoded, upper-case hex', target: withLast(last.slice(0, -1) + hex(last.slice(-1) || 'a').toUpperCase()) },
    { name: 'every letter percent-encoded', target: `/${segments.map((segment) => encodeLetters(segment)).join('/')}` },
    { name: 'slash as %2f', target: segments.length > 1 ? `/${first}%2f${rest}` : `${path}%2f` },
    { name: 'slash as %2F after the first segment', target: segments.length > 1 ? `/${first}%2F${rest}` : `${path}%2F` },
    { name: 'leading double slash', target: `/${path}` },
    { name: 'inner double slash', target: segments.length > 1 ? `/${first}//${rest}` : `${path}//` },
    { name: 'dot segment', target: `/./${segments.join('/')}` },
    { name: 'inner dot segment', target: segments.length > 1 ? `/${first}/./${rest}` : `${path}/.` },
    { name: 'dot-dot from a made-up segment', target: `/x/..${path}` },
    { name: 'encoded dot-dot', target: `/x/%2e%2e${path}` },
    { name: 'dot-dot after the path', target: `${path}/x/..` },
    { name: 'trailing slash', target: `${path}/` },
    { name: ';param on the last segment', target: `${path};x=1` },
    { name: ';param on the first segment', target: withFirst(`${first};a`) },
    { name: 'upper case', target: path.toUpperCase() },
    { name: 'first segment capitalised', target: withFirst(first.charAt(0).toUpperCase() + first.slice(1)) },
    // A parameter in upper case: a uuid read case-insensitively by the handler must be by the access check too.
    { name: 'last segment upper-cased', target: withLast(last.toUpperCase()) },
    { name: 'backslash for a slash', target: segments.length > 1 ? `/${first}\\${rest}` : `${path}\\` },
    { name: 'encoded backslash', target: segments.length > 1 ? `/${first}%5c${rest}` : `${path}%5c` },
    { name: 'encoded NUL at the end', target: `${path}%00` },
    { name: 'empty query', target: `${path}?` },
    { name: 'absolute form', target: `http://evil.example${path}`, host: 'localhost' },
    { name: 'absolute form, upper-case scheme, port, another Host', target: `HTTP://localhost:1${path}`, host: 'evil.example' },
    { name: 'absolute https form', target: `https://x${path}`, host: 'x' },
    { name: 'absolute form with an encoded letter', target: `http://x${withFirst(hex(first[0] ?? 'a') + first.slice(1))}` },
  ]
  return spellings
}
