import ssh2 from 'ssh2'
import type { Db } from './database.ts'
import type { SecretBox } from './secret-box.ts'

const NAME = 'engine-ssh-key'
const context = `engine_secrets:${NAME}`

export interface EngineSshKey {
  /** OpenSSH private key; kept in memory, sealed at rest. */
  privateKey: string
  /** `ssh-ed25519 AAAA... slipway-engine`, for machines' authorized keys. */
  publicKey: string
}

/**
 * The key the engine logs in to machines with for rolling updates: ed25519, generated on first use,
 * its private half sealed in the store (never returned by the API or logged).
 */
export async function loadEngineSshKey(store: Db, secrets: SecretBox, now: Date = new Date()): Promise<EngineSshKey> {
  const row = await store.selectFrom('engine_secrets').selectAll().where('name', '=', NAME).executeTakeFirst()
  if (row) return { privateKey: secrets.open(row.sealed, context), publicKey: row.public_part ?? '' }
  const generated = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'slipway-engine' })
  const key = { privateKey: generated.private, publicKey: generated.public.trim() }
  await store
    .insertInto('engine_secrets')
    .values({ name: NAME, public_part: key.publicKey, sealed: secrets.seal(key.privateKey, context), created_at: now.toISOString() })
    .onConflict((conflict) => conflict.column('name').doNothing())
    .execute()
  // Another start may have won the race: read back what is stored.
  return loadEngineSshKey(store, secrets, now)
}
