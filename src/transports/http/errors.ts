import type { FastifyError, FastifyInstance } from 'fastify'
import { MAX_REPORTED_PROBLEMS, SlipwayError, type ErrorKind } from '../../core/errors.ts'

const STATUS_OF_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  too_large: 413,
  unsupported: 415,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
  rate_limited: 429,
  // The engine's own content is broken: a 5xx makes Ignition retry until an operator fixes it.
  configuration: 500,
  // Not the engine's fault and not the caller's: the BMC (or other system driven) said no or nothing.
  upstream: 502,
  upstream_timeout: 504,
}

/** What every error response looks like, on every route. */
export interface ErrorBody {
  statusCode: number
  code: string
  message: string
  details?: Record<string, unknown>
}

/**
 * One error handler for the whole app: domain errors keep their code and message, framework errors
 * get stable codes, and anything unexpected is logged in full but answered without internals.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | SlipwayError | Error, request, reply) => {
    if (error instanceof SlipwayError) {
      const statusCode = STATUS_OF_KIND[error.kind]
      // `unavailable` is an expected "not yet" (e.g. a machine waiting to be scheduled), not a fault.
      if (error.kind === 'unavailable' || error.kind === 'rate_limited') {
        request.log.debug({ code: error.code }, error.message)
        const retryAfter = error.details?.retryAfterSeconds
        if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter))
      } else if (statusCode >= 500) request.log.error({ code: error.code, details: error.details }, error.message)
      const body: ErrorBody = { statusCode, code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) }
      return reply.status(statusCode).type('application/json').send(body)
    }
    const fastifyError = error as FastifyError
    if (fastifyError.validation) {
      // A bounded answer: a large body can fail a schema thousands of times, and the answer must not outgrow it.
      const problems = fastifyError.validation.slice(0, MAX_REPORTED_PROBLEMS).map((issue) => {
        const at = `${fastifyError.validationContext ?? 'request'}${issue.instancePath.replaceAll('/', '.')}`.slice(0, 200)
        const extra = issue.keyword === 'additionalProperties' ? ` "${String((issue.params as { additionalProperty: string }).additionalProperty).slice(0, 100)}"` : ''
        return `${at}${extra}: ${issue.message}`
      })
      const count = fastifyError.validation.length
      const more = count > problems.length ? ` (and ${count - problems.length} more)` : ''
      return reply.status(400).send({ statusCode: 400, code: 'VALIDATION_FAILED', message: `${problems.join('; ')}${more}`, details: { problems, count } } satisfies ErrorBody)
    }
    if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const message = `request body is larger than this endpoint accepts (${request.routeOptions.bodyLimit} bytes)`
      return reply.status(413).send({ statusCode: 413, code: 'BODY_TOO_LARGE', message } satisfies ErrorBody)
    }
    const known = FRAMEWORK_ERRORS[fastifyError.code ?? '']
    if (known) {
      return reply.status(known.status).send({ statusCode: known.status, code: known.code, message: known.message(fastifyError) } satisfies ErrorBody)
    }
    if (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
      return reply.status(fastifyError.statusCode).send({ statusCode: fastifyError.statusCode, code: 'BAD_REQUEST', message: fastifyError.message } satisfies ErrorBody)
    }
    request.log.error({ err: error }, 'unexpected error')
    return reply.status(500).send({ statusCode: 500, code: 'INTERNAL', message: `internal error; see the engine log for request ${request.id}` } satisfies ErrorBody)
  })

  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = { statusCode: 404, code: 'ROUTE_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }
    return reply.status(404).send(body)
  })
}

const FRAMEWORK_ERRORS: Record<string, { status: number; code: string; message: (error: FastifyError) => string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'MALFORMED_JSON', message: (error) => `request body is not valid JSON: ${error.message}` },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'MALFORMED_JSON', message: () => 'request body is empty but Content-Type is application/json' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: (error) => error.message },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'BAD_CONTENT_LENGTH', message: () => 'Content-Length does not match the body' },
}
