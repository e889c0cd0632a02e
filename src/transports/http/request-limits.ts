import http from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { SlipwayError } from '../../core/errors.ts'
import type { ErrorBody } from './errors.ts'

/**
 * How deep a JSON body may nest. The deepest document the API takes (an Ignition config inside a
 * template body, an inventory export) nests about 10 deep; 64 leaves room and stops a 50,000-deep
 * body before anything recursive (validation, serialisation) walks it.
 */
export const MAX_JSON_DEPTH = 64

/**
 * The nesting depth of a JSON text, read in one pass without parsing (brackets inside strings do not
 * count): cheap enough to run on every body before JSON.parse, and never recursive.
 */
export function jsonDepth(text: string, stopAbove = Number.POSITIVE_INFINITY): number {
  let depth = 0
  let deepest = 0
  let inString = false
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index)
    if (inString) {
      if (char === 0x5c) index++ // a backslash escapes the next character
      else if (char === 0x22) inString = false
      continue
    }
    if (char === 0x22) inString = true
    else if (char === 0x7b || char === 0x5b) {
      if (++depth > deepest) {
        deepest = depth
        if (deepest > stopAbove) return deepest
      }
    } else if (char === 0x7d || char === 0x5d) depth--
  }
  return deepest
}

/**
 * Bodies past the framework's own checks, on every route: JSON no deeper than MAX_JSON_DEPTH (400
 * TOO_DEEP), parsed by fastify's own safe parser (prototype poisoning refused); a Content-Encoding
 * the engine does not decode is refused (415) instead of being read as plain text.
 */
export function installRequestLimits(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string
    if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      done(new SlipwayError('invalid', 'TOO_DEEP', `the JSON body nests deeper than ${MAX_JSON_DEPTH} levels; no document of this API does`), undefined)
      return
    }
    parseJson(request, text, done)
  })
  // preParsing: after access control, so that a request without a token still hears only 401.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const encoding = request.headers['content-encoding']
    if (encoding === undefined || /^\s*identity\s*$/i.test(encoding)) return done(null, payload)
    done(new SlipwayError('unsupported', 'UNSUPPORTED_CONTENT_ENCODING', `Content-Encoding "${encoding.slice(0, 40)}" is not accepted: send the body uncompressed (chart archives as application/gzip bodies)`))
  })
}

/** The answer fastify gives for a URL it cannot decode (`%zz`) or a parameter over its length limit, in the engine's error shape. */
export function frameworkErrorAnswer(error: Error & { code?: string }, _request: FastifyRequest, reply: FastifyReply): void {
  const body: ErrorBody =
    error.code === 'FST_ERR_BAD_URL'
      ? { statusCode: 400, code: 'BAD_URL', message: 'the request path is not valid percent-encoding' }
      : { statusCode: 400, code: 'BAD_REQUEST', message: error.message }
  void reply.status(400).type('application/json').send(body)
}

const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'REQUEST_TIMEOUT', message: 'the request was not received in time' },
  HPE_HEADER_OVERFLOW: { status: 431, code: 'HEADERS_TOO_LARGE', message: 'the request headers are larger than this server accepts' },
}

/**
 * Node's HTTP parser refusing a request (a malformed request line or header, a header too large, a
 * request that took too long): answered in the engine's error shape with a code, then the
 * connection is closed, as Node does itself.
 */
export function clientErrorAnswer(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const known = CLIENT_ERRORS[error.code ?? '']
  const body: ErrorBody = known
    ? { statusCode: known.status, code: known.code, message: known.message }
    : { statusCode: 400, code: 'MALFORMED_REQUEST', message: `the request is not valid HTTP/1.1 (${(error.code ?? 'parse error').replace(/^HPE_/, '').toLowerCase()})` }
  const text = JSON.stringify(body)
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${body.statusCode} ${http.STATUS_CODES[body.statusCode]}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${text}`)
  }
  socket.destroy()
}
