import type http from 'node:http'
import type https from 'node:https'
import type { Logger } from 'pino'
import type { ConnectionGovernor, GovernedConnection, GovernedListener } from '../connection-governor.ts'

/** An HTTP listener's timeouts and caps (config `http.*`; the proxy's `proxy.*`). */
export interface HttpListenerSettings {
  headersTimeoutSeconds: number
  /** 0: the whole request is never limited in time (the proxy streams uploads of any length). */
  requestTimeoutSeconds: number
  keepAliveTimeoutSeconds: number
  idleTimeoutSeconds: number
  maxConnections: number
  maxConnectionsPerClient: number
}

/** Node keeps an idle keep-alive socket this much longer than it announces, so that a client that reuses it just in time is not reset. */
const KEEP_ALIVE_GRACE_MS = 1_000

/**
 * Bounds a Node http(s) server before it listens (the engine's fastify `app.server`, the reverse
 * proxy's): Node's own timeouts, which answer a late request with 408, and the connection governor,
 * which caps the connections and closes idle ones. Who does what:
 * - a connection with no request in flight (just accepted, or between requests) is idle for the
 *   governor: closed after the headers timeout (first request) or the keep-alive timeout, and the
 *   first to go when a new connection needs its slot;
 * - a request's headers (server.headersTimeout) and whole request (server.requestTimeout) are
 *   checked by Node every `connectionsCheckingInterval`, 30 s by default: made much shorter here;
 * - while a request is in flight, a connection where nothing moves is closed (server.timeout).
 */
export function governHttpServer(server: http.Server | https.Server, name: string, settings: HttpListenerSettings, governor: ConnectionGovernor, logger: Logger): GovernedListener {
  if (server.listening) throw new Error(`the ${name} listener must be bounded before it listens`)
  const headersMs = Math.round(settings.headersTimeoutSeconds * 1000)
  const requestMs = Math.round(settings.requestTimeoutSeconds * 1000)
  const keepAliveMs = Math.round(settings.keepAliveTimeoutSeconds * 1000)
  // fastify's defaults (requestTimeout 0, no socket timeout) are replaced here: app.ts never listens.
  server.requestTimeout = requestMs
  // Node refuses (throws from its checking timer) a headers timeout longer than a non-zero request timeout.
  server.headersTimeout = requestMs > 0 ? Math.min(headersMs, requestMs) : headersMs
  server.keepAliveTimeout = keepAliveMs
  server.setTimeout(Math.round(settings.idleTimeoutSeconds * 1000))
  // A createServer() option that Node reads again when the server starts listening (fastify's
  // server is created in app.ts); a quarter of the shortest timeout, at most 1 s.
  ;(server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.max(50, Math.min(1_000, Math.floor(Math.min(headersMs, requestMs || headersMs) / 4)))

  const listener = governor.listener(name, { maxConnections: settings.maxConnections, maxConnectionsPerClient: settings.maxConnectionsPerClient, idleTimeoutMs: headersMs })
  // Keyed by the peer's address and port: for https, a request's socket is the TLS socket that
  // wraps the TCP socket admitted at 'connection' (before the handshake, so that it is bounded too).
  const byPeer = new Map<string, GovernedConnection>()
  server.on('connection', (socket) => {
    const connection = listener.admit(socket)
    if (!connection) return
    const key = peerKey(socket)
    byPeer.set(key, connection)
    socket.once('close', () => {
      if (byPeer.get(key) === connection) byPeer.delete(key)
    })
  })
  // Before the app's own listener: the connection is busy from the moment its request is parsed.
  // (An upgraded connection, a WebSocket, would need marking busy too: the engine serves none.)
  server.prependListener('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    const connection = byPeer.get(peerKey(request.socket))
    if (!connection) return
    connection.requestStarted()
    response.once('close', () => connection.requestEnded(keepAliveMs + KEEP_ALIVE_GRACE_MS))
  })
  // After listening, a failed accept (EMFILE when the descriptors ran out anyway) is logged, never fatal.
  server.once('listening', () => server.on('error', (error) => logger.error({ err: error, listener: name }, `${name} listener error`)))
  return listener
}

function peerKey(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? 0}`
}
