import type { TokenInfo, TokenRepository } from '../../core/access/token-service.ts'
import { conflict } from '../../core/errors.ts'
import type { ApiTokenRow, Db } from '../database.ts'
import { inTransaction } from '../transactions.ts'

const toInfo = (row: Pick<ApiTokenRow, 'name' | 'role' | 'tenant' | 'created_at' | 'last_used_at'>): TokenInfo => ({
  name: row.name,
  role: row.role,
  tenant: row.tenant,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
})

const LISTED = ['name', 'role', 'tenant', 'created_at', 'last_used_at'] as const

/** The core's token port over kysely (core/access/token-service.ts holds the rules). */
export function apiTokenRepository(db: Db): TokenRepository {
  return {
    findByDigest: async (digest) => {
      const row = await db.selectFrom('api_tokens').select(LISTED).where('token_sha256', '=', digest).executeTakeFirst()
      return row && toInfo(row)
    },
    findByName: async (name) => {
      const row = await db.selectFrom('api_tokens').select(LISTED).where('name', '=', name).executeTakeFirst()
      return row && toInfo(row)
    },
    list: async (tenant) => {
      let query = db.selectFrom('api_tokens').select(LISTED)
      if (tenant !== undefined) query = query.where('tenant', '=', tenant)
      return (await query.orderBy('name').execute()).map(toInfo)
    },
    count: async () => Number((await db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()).count),
    insert: (token) =>
      inTransaction(db, async (trx) => {
        if (await trx.selectFrom('api_tokens').select('name').where('name', '=', token.name).executeTakeFirst()) throw conflict('TOKEN_EXISTS', `a token named "${token.name}" already exists; revoke it first or choose another name`)
        await trx.insertInto('api_tokens').values({ name: token.name, token_sha256: token.digest, role: token.role, created_at: token.createdAt, tenant: token.tenant }).execute()
      }),
    delete: async (name) => Number((await db.deleteFrom('api_tokens').where('name', '=', name).executeTakeFirst()).numDeletedRows) > 0,
    recordUse: async (name, at) => {
      await db.updateTable('api_tokens').set({ last_used_at: at }).where('name', '=', name).execute()
    },
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(apiTokenRepository(trx))),
  }
}
