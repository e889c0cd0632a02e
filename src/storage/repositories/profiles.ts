import type { BootSpec, Profile } from '../../core/selection/profile.ts'
import type { ContentSource, Db, ProfileRow } from '../database.ts'

export function profileFromRow(row: ProfileRow): Profile {
  return {
    id: row.id,
    name: row.name,
    ...(row.ignition_id ? { ignition_id: row.ignition_id } : {}),
    ...(row.generic_id ? { generic_id: row.generic_id } : {}),
    ...(row.boot ? { boot: JSON.parse(row.boot) as BootSpec } : {}),
  }
}

export async function listProfiles(db: Db): Promise<Profile[]> {
  const rows = await db.selectFrom('profiles').selectAll().orderBy('id').execute()
  return rows.map(profileFromRow)
}

export async function findProfile(db: Db, id: string): Promise<(Profile & { source: ContentSource }) | undefined> {
  const row = await db.selectFrom('profiles').selectAll().where('id', '=', id).executeTakeFirst()
  return row ? { ...profileFromRow(row), source: row.source } : undefined
}

export async function saveProfile(db: Db, profile: Profile, source: ContentSource, now: string): Promise<void> {
  const columns = {
    name: profile.name,
    ignition_id: profile.ignition_id ?? null,
    generic_id: profile.generic_id ?? null,
    boot: profile.boot ? JSON.stringify(profile.boot) : null,
    source,
    updated_at: now,
  }
  await db
    .insertInto('profiles')
    .values({ id: profile.id, ...columns, created_at: now })
    .onConflict((conflict) => conflict.column('id').doUpdateSet(columns))
    .execute()
}

export async function deleteProfile(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('profiles').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}
