import { once } from 'node:events'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Dispatcher } from 'undici'
import type { Logger } from 'pino'
import type { OriginHealthBoard } from '../../core/proxy/origin-health.ts'
import { normalizeRequestPath } from '../../core/proxy/path-normalization.ts'
import { matchOf, type ProxyRoute } from '../../core/proxy/proxy-route.ts'
import { upstreamTarget, type RouteTable } from '../../core/proxy/route-selection.ts'
import { downstreamResponseHeaders, upstreamRequestHeaders, VIA } from './forwarding.ts'
import type { OriginPools, OriginTarget } from './origin-pools.ts'
import { statusClass, type ProxyMetrics } from './proxy-metrics.ts'
import type { ConnectionGovernor } from '../connection-governor.ts'
import { governHttpServer, type HttpListenerSettings } from '../http/http-listener.ts'

export interface ProxyServerOptions {
  host: string
  port: number
  /** PEM certificate chain and key: the proxy terminates TLS and serves https. */
  tls?: { cert: string | Buffer; key: string | Buffer }
  routes: { table(): RouteTable<ProxyRoute> }
  pools: OriginPools
  health: OriginHealthBoard
  metrics?: ProxyMetrics
  logger: Logger
  /** Waiting for an origin's headers, and for each chunk of its body, gives up after this long. */
  requestTimeoutMs: number
  connectTimeoutMs: number
  /** The client side: headers, keep-alive and inactivity timeouts and connection caps (`proxy.*`). */
  listener: Omit<HttpListenerSettings, 'requestTimeoutSeconds'>
  /** Bounds the proxy's client connections together with the engine's other listeners. */
  governor: ConnectionGovernor
}

export interface ProxyServer {
  /** http(s)://host:port as listening (the port chosen when 0 was asked). */
  url: string
  port: number
  close(): Promise<void>
}

/** What the proxy answers itself, in the shape of every Slipway error. */
interface ProxyError {
  status: number
  code: string
  /** Metric outcome. */
  outcome: string
  message: string
  details?: Record<string, unknown>
}

/**
 * The reverse proxy: its own listener (http, or https when it terminates TLS), every request routed
 * by the route table (core/proxy/route-selection.ts) to its origin through a pooled undici
 * connection. Bodies stream both ways with backpressure, never buffered: a 50 MB upload or download
 * holds a few chunks in memory at a time. An origin that cannot be reached, times out or fails TLS
 * gets the client a 502/504 with a JSON body naming the route and the error, and marks the origin
 * unhealthy.
 */
export async function startProxyServer(options: ProxyServerOptions): Promise<ProxyServer> {
  const proto = options.tls ? 'https' : 'http'
  const handle = (request: IncomingMessage, response: ServerResponse) => forward(request, response, proto, options)
  const server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handle) : http.createServer(handle)
  // A large upload takes as long as it keeps moving: no limit on the whole request, only on headers
  // and inactivity; and the client waits in silence for the origin, up to connect + request timeout.
  const originSilenceSeconds = (options.connectTimeoutMs + options.requestTimeoutMs) / 1000 + 2
  governHttpServer(
    server,
    'proxy',
    { ...options.listener, requestTimeoutSeconds: 0, idleTimeoutSeconds: Math.max(options.listener.idleTimeoutSeconds, originSilenceSeconds) },
    options.governor,
    options.logger,
  )

  server.listen({ host: options.host, port: options.port })
  try {
    await once(server, 'listening')
  } catch (error) {
    const code = (error as { code?: string }).code
    throw new Error(`the reverse proxy cannot listen on ${options.host}:${options.port} (${code ?? (error as Error).message}); set proxy.host / proxy.port (SLIPWAY_PROXY_HOST, SLIPWAY_PROXY_PORT), or proxy.enabled: false`)
  }
  const port = (server.address() as AddressInfo).port
  const hostForUrl = options.host.includes(':') ? `[${options.host}]` : options.host
  return {
    url: `${proto}://${hostForUrl}:${port}`,
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      // Requests in flight get a moment to finish (a long download does not hold up a shutdown).
      const grace = setTimeout(() => server.closeAllConnections(), 2_000)
      await closed
      clearTimeout(grace)
    },
  }
}

function forward(request: IncomingMessage, response: ServerResponse, proto: 'http' | 'https', options: ProxyServerOptions): void {
  const received = performance.now()
  const url = request.url ?? '/'
  if (url.charCodeAt(0) !== 47 /* / */) {
    return answerError(response, options, '-', { status: 400, code: 'BAD_REQUEST_TARGET', outcome: 'bad_request', message: `the proxy serves paths such as /shop/ (got "${url.slice(0, 200)}")` })
  }
  const queryAt = url.indexOf('?')
  const rawPath = queryAt === -1 ? url : url.slice(0, queryAt)
  const query = queryAt === -1 ? '' : url.slice(queryAt)
  // Routed and forwarded in its normal form: an origin must not resolve it to outside the route's base.
  const normalized = normalizeRequestPath(rawPath)
  if (!normalized.ok) {
    return answerError(response, options, '-', { status: 400, code: normalized.code, outcome: 'bad_request', message: normalized.message, details: { path: rawPath.slice(0, 1024) } })
  }
  const path = normalized.path
  const requestHost = request.headers.host
  const route = options.routes.table().select(requestHost, path)
  if (!route) {
    return answerError(response, options, '-', {
      status: 404,
      code: 'NO_PROXY_ROUTE',
      outcome: 'no_route',
      message: `no proxy route matches host "${requestHost ?? ''}" and path "${path.slice(0, 200)}"; see GET /api/v1/proxy/routes`,
      details: { host: requestHost ?? null, path: path.slice(0, 1024) },
    })
  }

  const target = options.pools.targetOf(route)
  const headers = upstreamRequestHeaders(request.rawHeaders, {
    clientAddress: request.socket.remoteAddress,
    proto,
    requestHost,
    upstreamHost: route.preserveHost && requestHost ? requestHost : target.origin.hostHeader,
  })
  const handler = new ForwardHandler(request, response, route, target, options, received)
  // A body is streamed only when the request has one: an empty GET must not become a chunked one.
  const contentLength = request.headers['content-length']
  const hasBody = request.headers['transfer-encoding'] !== undefined || (contentLength !== undefined && contentLength !== '0')
  try {
    target.pool.dispatch(
      {
        path: upstreamTarget(route, target.origin.basePath, path, query),
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: hasBody ? request : null,
        headersTimeout: options.requestTimeoutMs,
        bodyTimeout: options.requestTimeoutMs,
        ...(target.servername ? { servername: target.servername } : {}),
      },
      handler,
    )
  } catch (error) {
    // undici refuses what it cannot send (a malformed header value): the client's request is at fault.
    answerError(response, options, route.id, { status: 400, code: 'BAD_REQUEST', outcome: 'bad_request', message: `the request cannot be forwarded: ${(error as Error).message}` })
  }
}

/** Streams the origin's answer to the client, pausing the origin while the client is slower. */
class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  private clientGone = false
  private responded = false
  private readonly resume = () => this.controller?.resume()

  constructor(
    private readonly request: IncomingMessage,
    private readonly response: ServerResponse,
    private readonly route: ProxyRoute,
    private readonly target: OriginTarget,
    private readonly options: ProxyServerOptions,
    private readonly received: number,
  ) {
    const gone = () => {
      if (this.response.writableFinished) return
      this.clientGone = true
      this.controller?.abort(new ClientGoneError())
    }
    response.once('close', gone)
    // A client that aborts its upload: the body stream errors (undici sees it too).
    request.once('error', gone)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.clientGone) controller.abort(new ClientGoneError())
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, parsed: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    this.responded = true
    this.options.health.recordSuccess(this.route.id)
    this.options.metrics?.observeUpstream(this.route.id, (performance.now() - this.received) / 1000)
    this.options.metrics?.count(this.route.id, statusClass(statusCode))
    const raw = controller.rawHeaders
    const headers = downstreamResponseHeaders(Array.isArray(raw) ? raw : flatten(parsed))
    if (statusMessage) this.response.writeHead(statusCode, statusMessage, headers)
    else this.response.writeHead(statusCode, headers)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.response.write(chunk)) {
      controller.pause()
      this.response.once('drain', this.resume)
    }
  }

  onResponseEnd(): void {
    this.response.end()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.clientGone || error instanceof ClientGoneError) {
      if (!this.responded) this.options.metrics?.count(this.route.id, 'client_aborted')
      this.response.destroy()
      return
    }
    const failure = describeFailure(error, this.route, this.target, this.options)
    if (failure.originFault) {
      this.options.health.recordFailure(this.route.id, failure.reason)
    }
    if (this.responded || this.response.headersSent) {
      // Mid-body: the status is gone; cutting the connection is the only way to say the body is incomplete.
      this.options.metrics?.count(this.route.id, 'origin_aborted')
      this.options.logger.debug({ component: 'proxy', route: this.route.id, err: error }, 'origin failed mid-response')
      this.response.destroy(error)
      return
    }
    this.options.logger.debug({ component: 'proxy', route: this.route.id, origin: this.route.origin, code: failure.error.code }, failure.error.message)
    answerError(this.response, this.options, this.route.id, failure.error)
    // The client's body is no longer wanted: drain it so that the connection can be reused or closed.
    if (!this.request.complete) this.request.resume()
  }
}

class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection')
    this.name = 'ClientGoneError'
  }
}

/** Turns an undici/Node error into what the client is told and whether the origin is to blame. */
function describeFailure(error: Error, route: ProxyRoute, target: OriginTarget, options: ProxyServerOptions): { error: ProxyError; reason: string; originFault: boolean } {
  const code = (error as { code?: string }).code ?? ''
  const cause = (error as { cause?: { code?: string; message?: string } }).cause
  const routeText = `route "${route.id}" (${matchOf(route)})`
  const details = { route: route.id, match: matchOf(route), origin: route.origin }
  const origin = target.origin.base
  const seconds = (ms: number) => `${+(ms / 1000).toFixed(3)} s`
  const fail = (status: number, errorCode: string, outcome: string, reason: string, originFault = true) => ({
    error: { status, code: errorCode, outcome, message: `${routeText}: origin ${origin} ${reason}`, details: { ...details, error: reason } },
    reason,
    originFault,
  })
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return fail(504, 'ORIGIN_TIMEOUT', 'origin_timeout', `did not accept a connection within ${seconds(options.connectTimeoutMs)} (connect timeout)`)
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return fail(504, 'ORIGIN_TIMEOUT', 'origin_timeout', `did not answer within ${seconds(options.requestTimeoutMs)} (proxy.requestTimeoutSeconds)`)
  const tlsCode = [code, cause?.code ?? ''].find((candidate) => /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH)/.test(candidate))
  if (tlsCode) return fail(502, 'ORIGIN_TLS_ERROR', 'origin_tls_error', `failed the TLS handshake: ${error.message} (${tlsCode})${route.tlsVerify ? '; for a self-signed origin certificate set tls_verify: false on the route' : ''}`)
  const unreachable: Record<string, string> = {
    ECONNREFUSED: 'refused the connection (nothing listens there)',
    ENOTFOUND: 'has a host name that does not resolve',
    EAI_AGAIN: 'has a host name that could not be resolved now',
    EHOSTUNREACH: 'is unreachable (no route to host)',
    ENETUNREACH: 'is unreachable (network unreachable)',
    ECONNRESET: 'reset the connection',
    EPIPE: 'closed the connection while the request was sent',
    UND_ERR_SOCKET: 'closed the connection before answering',
    UND_ERR_CLOSED: 'connection was closed',
  }
  if (unreachable[code]) return fail(502, 'ORIGIN_UNREACHABLE', 'origin_unreachable', `${unreachable[code]} (${code})`)
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return { error: { status: 400, code: 'BAD_REQUEST_BODY', outcome: 'bad_request', message: 'the request body does not match its Content-Length' }, reason: error.message, originFault: false }
  }
  return fail(502, 'ORIGIN_ERROR', 'origin_error', `failed: ${error.message}${code ? ` (${code})` : ''}`)
}

function answerError(response: ServerResponse, options: ProxyServerOptions, route: string, error: ProxyError): void {
  options.metrics?.count(route, error.outcome)
  if (response.headersSent || response.destroyed) return
  const body = JSON.stringify({ statusCode: error.status, code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) })
  response.writeHead(error.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    via: VIA,
  })
  response.end(body)
}

function flatten(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = []
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    if (Array.isArray(value)) for (const item of value) out.push(name, item)
    else out.push(name, value)
  }
  return out
}
