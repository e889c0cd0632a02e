import type { FastifyReply, FastifyRequest } from 'fastify'
import { SlipwayError } from '../../core/errors.ts'

/** The identity behind a bearer token. */
export interface Principal {
  name: string
  role: 'admin' | 'operator' | 'viewer'
}

/** Resolves a presented token to a principal, or undefined; implemented over the token store. */
export type TokenVerifier = (token: string) => Promise<Principal | undefined>

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
  }
}

/** An onRequest hook: the admin API answers nothing, not even a 404 shape, without a valid token. */
export function requireBearerToken(verify: TokenVerifier) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
    if (!match) {
      reply.header('WWW-Authenticate', 'Bearer realm="slipway"')
      throw new SlipwayError('unauthorized', 'TOKEN_REQUIRED', 'this API needs an "Authorization: Bearer <token>" header')
    }
    const principal = await verify(match[1]!)
    if (!principal) {
      reply.header('WWW-Authenticate', 'Bearer realm="slipway", error="invalid_token"')
      throw new SlipwayError('unauthorized', 'TOKEN_INVALID', 'the bearer token is not valid')
    }
    request.principal = principal
  }
}
