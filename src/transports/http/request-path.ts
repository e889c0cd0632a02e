/**
 * The path a request target could be read as, by the most lenient reader on its way (a router that
 * decodes, a proxy that merges slashes or drops `;params`, a server that ignores case): used only to
 * decide whether a request that matched no route falls under a guarded prefix. Access to a matched
 * route never looks at the raw URL.
 */
export function lenientPath(target: string): string | undefined {
  let path = target
  // Absolute form (`GET http://host/api/... HTTP/1.1`): the path is what follows the authority.
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(path)
  if (absolute) path = path.slice(absolute[0].length) || '/'
  path = path.split(/[?#]/, 1)[0]!
  let decoded: string
  try {
    // Twice: a proxy in front may already have decoded once.
    decoded = decodeURIComponent(decodeURIComponent(path))
  } catch {
    return undefined
  }
  const segments: string[] = []
  for (const raw of decoded.replaceAll('\\', '/').split('/')) {
    const segment = raw.split(';', 1)[0]!.replace(/\0/g, '')
    if (segment === '' || segment === '.') continue
    if (segment === '..') segments.pop()
    else segments.push(segment.toLowerCase())
  }
  return `/${segments.join('/')}`
}

/**
 * Whether an unmatched request is under a guarded prefix, and so answers 401 without a token rather
 * than saying what exists. Fails closed: a target that cannot be decoded counts as guarded.
 */
export function isUnderGuardedPrefix(target: string, prefixes: readonly string[]): boolean {
  const path = lenientPath(target)
  if (path === undefined) return true
  return prefixes.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))
}
