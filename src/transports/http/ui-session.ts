import type { FastifyReply, FastifyRequest } from 'fastify'

export const UI_SESSION_COOKIE = 'slipway_session'
/** Sealing context: a sealed value from elsewhere in the engine (a cluster credential, say) never opens as a session. */
const SESSION_CONTEXT = 'ui-session'
export const UI_SESSION_TTL_MS = 12 * 60 * 60 * 1000
/** The header a browser page adds to every non-GET request; a cross-site form cannot send one. */
export const UI_CSRF_HEADER = 'x-slipway-ui'

/** The part of the engine's SecretBox that sessions use (AES-256-GCM, bound to a context). */
export interface Sealer {
  seal(plaintext: string, context: string): Buffer
  open(sealed: Uint8Array, context: string): string
}

/**
 * Web UI sessions. The cookie holds the token itself, sealed with the engine's key, with an expiry:
 * the engine keeps no session table, and every request runs the token through the same verifier as a
 * bearer token, so a revoked token ends its sessions and the principal is exactly the token's.
 */
export class UiSessions {
  constructor(
    private readonly sealer: Sealer,
    private readonly clock: () => number = Date.now,
    readonly ttlMs: number = UI_SESSION_TTL_MS,
  ) {}

  /** The cookie value for a verified token. */
  seal(token: string): string {
    const expiresAt = this.clock() + this.ttlMs
    return this.sealer.seal(JSON.stringify({ token, expiresAt }), SESSION_CONTEXT).toString('base64url')
  }

  /** The token inside a cookie value; undefined when it is forged, altered, sealed with another key or expired. */
  open(value: string): string | undefined {
    if (!/^[A-Za-z0-9_-]{20,4096}$/.test(value)) return undefined
    try {
      const session = JSON.parse(this.sealer.open(Buffer.from(value, 'base64url'), SESSION_CONTEXT)) as { token?: unknown; expiresAt?: unknown }
      if (typeof session.token !== 'string' || typeof session.expiresAt !== 'number' || session.expiresAt <= this.clock()) return undefined
      return session.token
    } catch {
      return undefined
    }
  }

  /** The token of the request's session cookie, if it carries a valid one. */
  tokenOf(request: FastifyRequest): string | undefined {
    const header = request.headers.cookie
    if (!header) return undefined
    // The value is base64url: no quoting or decoding to undo.
    for (const pair of header.split(';')) {
      const [name, value] = pair.trim().split('=', 2)
      if (name === UI_SESSION_COOKIE && value) return this.open(value)
    }
    return undefined
  }

  /** HttpOnly (no script reads it), SameSite=Strict (no cross-site request carries it), Path=/ (the UI and the API). */
  start(reply: FastifyReply, token: string, secure: boolean): void {
    reply.header('set-cookie', sessionCookie(this.seal(token), Math.floor(this.ttlMs / 1000), secure))
  }

  end(reply: FastifyReply, secure: boolean): void {
    reply.header('set-cookie', `${sessionCookie('', 0, secure)}; Expires=Thu, 01 Jan 1970 00:00:00 GMT`)
  }
}

/** Secure when the browser reaches the engine over TLS (directly, or through a proxy named in http.publicUrl). */
function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${UI_SESSION_COOKIE}=${value}; Max-Age=${maxAgeSeconds}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`
}
