import type { Db } from '../database.ts'

/**
 * The SSH host key of each machine, pinned on first use by rolling updates: a later connection to a
 * machine that shows another key is refused (adapters/ssh/ssh-machine-shell.ts).
 */
export async function findHostKey(db: Db, uuid: string): Promise<string | undefined> {
  return (await db.selectFrom('machine_host_keys').select('host_key').where('uuid', '=', uuid).executeTakeFirst())?.host_key
}

/** Pins a machine's host key unless one is pinned already (the first one seen wins). */
export async function pinHostKey(db: Db, uuid: string, hostKey: string, at: Date): Promise<void> {
  await db
    .insertInto('machine_host_keys')
    .values({ uuid, host_key: hostKey, pinned_at: at.toISOString() })
    .onConflict((conflict) => conflict.column('uuid').doNothing())
    .execute()
}
