import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { ApiTokenRow, Database } from '../database.ts'

type Db = Kysely<Database>

/** Tokens are stored only as SHA-256: a copy of the database does not hand out API access. */
export const tokenDigest = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex')

export async function findTokenByDigest(db: Db, digest: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom('api_tokens').selectAll().where('token_sha256', '=', digest).executeTakeFirst()
}

export async function countTokens(db: Db): Promise<number> {
  const row = await db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()
  return Number(row.count)
}

export async function insertToken(db: Db, name: string, token: string, role: ApiTokenRow['role'], now: string): Promise<void> {
  await db.insertInto('api_tokens').values({ name, token_sha256: tokenDigest(token), role, created_at: now }).execute()
}
