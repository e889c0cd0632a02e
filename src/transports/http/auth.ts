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

/**
 * The token a request presents: `Authorization: Bearer <token>`, or HTTP Basic with the token as the
 * password (any user name), which is all Helm and other repository clients can send
 * (`helm repo add --username slipway --password <token>`).
 */
function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (bearer) return bearer[1]
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)
  if (!basic) return undefined
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon === -1 ? undefined : decoded.slice(colon + 1) || undefined
}

/** An onRequest hook: the admin API answers nothing, not even a 404 shape, without a valid token. */
export function requireBearerToken(verify: TokenVerifier) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const token = presentedToken(request.headers.authorization)
    if (!token) {
      reply.header('WWW-Authenticate', 'Bearer realm="slipway"')
      throw new SlipwayError('unauthorized', 'TOKEN_REQUIRED', 'this API needs an "Authorization: Bearer <token>" header (Helm repository clients: HTTP Basic with the token as the password)')
    }
    const principal = await verify(token)
    if (!principal) {
      reply.header('WWW-Authenticate', 'Bearer realm="slipway", error="invalid_token"')
      throw new SlipwayError('unauthorized', 'TOKEN_INVALID', 'the bearer token is not valid')
    }
    request.principal = principal
  }
}
