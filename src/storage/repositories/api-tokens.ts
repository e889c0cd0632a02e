import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import { conflict } from '../../core/errors.ts'
import type { ApiTokenRow, Database } from '../database.ts'
import { inTransaction } from '../transactions.ts'

type Db = Kysely<Database>

/** Tokens are stored only as SHA-256: a copy of the database does not hand out API access. */
export const tokenDigest = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex')

/** How often a token's last use is written: a busy client costs one write a minute, not one per request. */
const LAST_USED_RESOLUTION_MS = 60_000

/** A token as it is listed: never the token, never its digest. */
export interface TokenInfo {
  name: string
  role: ApiTokenRow['role']
  tenant: string | null
  createdAt: string
  lastUsedAt: string | null
}

const toInfo = (row: Pick<ApiTokenRow, 'name' | 'role' | 'tenant' | 'created_at' | 'last_used_at'>): TokenInfo => ({
  name: row.name,
  role: row.role,
  tenant: row.tenant,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
})

export async function findTokenByDigest(db: Db, digest: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom('api_tokens').selectAll().where('token_sha256', '=', digest).executeTakeFirst()
}

export async function countTokens(db: Db): Promise<number> {
  const row = await db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()
  return Number(row.count)
}

/** Refuses (409 TOKEN_EXISTS) a name that is taken. */
export async function insertToken(db: Db, name: string, token: string, role: ApiTokenRow['role'], now: string, tenant: string | null = null): Promise<void> {
  await inTransaction(db, async (trx) => {
    if (await trx.selectFrom('api_tokens').select('name').where('name', '=', name).executeTakeFirst()) throw conflict('TOKEN_EXISTS', `a token named "${name}" already exists; revoke it first or choose another name`)
    await trx.insertInto('api_tokens').values({ name, token_sha256: tokenDigest(token), role, created_at: now, tenant }).execute()
  })
}

/**
 * The principal behind a presented token, read on every request (so a revoked token stops at once),
 * with its last use recorded at most once a minute.
 */
export async function verifyToken(db: Db, token: string, now: Date = new Date()): Promise<{ name: string; role: ApiTokenRow['role']; tenant: string | null } | undefined> {
  const row = await findTokenByDigest(db, tokenDigest(token))
  if (!row) return undefined
  if (row.last_used_at === null || now.getTime() - Date.parse(row.last_used_at) >= LAST_USED_RESOLUTION_MS) {
    await db.updateTable('api_tokens').set({ last_used_at: now.toISOString() }).where('id', '=', row.id).execute()
  }
  return { name: row.name, role: row.role, tenant: row.tenant }
}

/** Every token, or those of one tenant, by name. */
export async function listTokens(db: Db, tenant?: string): Promise<TokenInfo[]> {
  let query = db.selectFrom('api_tokens').select(['name', 'role', 'tenant', 'created_at', 'last_used_at'])
  if (tenant !== undefined) query = query.where('tenant', '=', tenant)
  return (await query.orderBy('name').execute()).map(toInfo)
}

export async function findTokenByName(db: Db, name: string): Promise<TokenInfo | undefined> {
  const row = await db.selectFrom('api_tokens').select(['name', 'role', 'tenant', 'created_at', 'last_used_at']).where('name', '=', name).executeTakeFirst()
  return row ? toInfo(row) : undefined
}

/** Revokes a token; returns whether it existed. */
export async function deleteToken(db: Db, name: string): Promise<boolean> {
  const result = await db.deleteFrom('api_tokens').where('name', '=', name).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}
