import { createHash, randomBytes } from 'node:crypto'
import { conflict, invalid } from '../errors.ts'
import type { Principal, Role } from './roles.ts'
import { absent } from './tenancy.ts'

/** Tokens start with this, so that a leaked one is recognised by secret scanners and people. */
export const TOKEN_PREFIX = 'slw_'
/** The token auth.adminToken configures: registered again at every start, so it is changed there, not through the API. */
export const CONFIGURED_ADMIN_TOKEN = 'configured-admin'
/** The token the very first start makes when none is configured, shown once. */
export const GENERATED_ADMIN_TOKEN = 'generated-admin'
/** A configured admin token shorter than this is refused: it would be guessed. */
export const MIN_CONFIGURED_TOKEN_LENGTH = 16
/** How often a token's last use is written: a busy client costs one write a minute, not one per request. */
const LAST_USED_RESOLUTION_MS = 60_000

/** Tokens are kept only as SHA-256: a copy of the database does not hand out API access. */
export const tokenDigest = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex')

/** A token as it is listed: never the token, never its digest. */
export interface TokenInfo {
  name: string
  role: Role
  tenant: string | null
  createdAt: string
  lastUsedAt: string | null
}

/** The store port for API tokens; storage implements it. */
export interface TokenRepository {
  findByDigest(digest: string): Promise<TokenInfo | undefined>
  findByName(name: string): Promise<TokenInfo | undefined>
  list(tenant?: string): Promise<TokenInfo[]>
  count(): Promise<number>
  /** Refuses (409 TOKEN_EXISTS) a name that is taken. */
  insert(token: { name: string; digest: string; role: Role; tenant: string | null; createdAt: string }): Promise<void>
  /** Whether a token of that name existed. */
  delete(name: string): Promise<boolean>
  recordUse(name: string, at: string): Promise<void>
  /** Runs `work` atomically (replicas starting together on one database neither collide nor both generate). */
  transaction<T>(work: (repository: TokenRepository) => Promise<T>): Promise<T>
}

/**
 * API tokens: made with a role and an optional tenant, shown once, kept as SHA-256 only, read on
 * every request (so a revoked token stops at once). The admin token of `auth.adminToken` is registered
 * again at every start; without one, the very first start generates one.
 */
export class TokenService {
  constructor(
    private readonly repository: TokenRepository,
    private readonly clock: () => Date = () => new Date(),
    private readonly random: (bytes: number) => Buffer = randomBytes,
  ) {}

  /** The principal behind a presented token, or undefined; its last use recorded at most once a minute. */
  async verify(token: string): Promise<Principal | undefined> {
    const found = await this.repository.findByDigest(tokenDigest(token))
    if (!found) return undefined
    const now = this.clock()
    if (found.lastUsedAt === null || now.getTime() - Date.parse(found.lastUsedAt) >= LAST_USED_RESOLUTION_MS) await this.repository.recordUse(found.name, now.toISOString())
    return { name: found.name, role: found.role, tenant: found.tenant }
  }

  /** A new token; the answer is the only time it is shown. */
  async create(request: { name: string; role: Role; tenant: string | null }): Promise<{ info: TokenInfo; token: string }> {
    const token = `${TOKEN_PREFIX}${this.random(32).toString('base64url')}`
    await this.repository.insert({ name: request.name, digest: tokenDigest(token), role: request.role, tenant: request.tenant, createdAt: this.clock().toISOString() })
    return { info: (await this.repository.findByName(request.name))!, token }
  }

  list(tenant?: string): Promise<TokenInfo[]> {
    return this.repository.list(tenant)
  }

  /** Revokes a token; the configured one is changed in the configuration, not here. */
  async revoke(name: string): Promise<void> {
    if (name === CONFIGURED_ADMIN_TOKEN) {
      throw conflict('TOKEN_CONFIGURED', `token "${name}" comes from auth.adminToken and is registered again at every start; change or empty that setting instead`)
    }
    if (!(await this.repository.delete(name))) throw absent({ kind: 'token', name })
  }

  /**
   * At start: a configured admin token is registered (again, in case it changed); without one, the
   * very first start generates one and returns it, to be shown once.
   */
  ensureAdminToken(configured: string): Promise<string | undefined> {
    if (configured.length > 0 && configured.length < MIN_CONFIGURED_TOKEN_LENGTH) {
      throw invalid('ADMIN_TOKEN_TOO_SHORT', `auth.adminToken must be at least ${MIN_CONFIGURED_TOKEN_LENGTH} characters long`)
    }
    const createdAt = this.clock().toISOString()
    return this.repository.transaction(async (repository) => {
      if (configured) {
        await repository.delete(CONFIGURED_ADMIN_TOKEN)
        await repository.insert({ name: CONFIGURED_ADMIN_TOKEN, digest: tokenDigest(configured), role: 'admin', tenant: null, createdAt })
        return undefined
      }
      if ((await repository.count()) > 0) return undefined
      const token = this.random(32).toString('base64url')
      await repository.insert({ name: GENERATED_ADMIN_TOKEN, digest: tokenDigest(token), role: 'admin', tenant: null, createdAt })
      return token
    })
  }
}
