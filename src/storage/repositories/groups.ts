import type { Group } from '../../core/selection/group.ts'
import type { ContentSource, Db, GroupRow } from '../database.ts'

export function groupFromRow(row: GroupRow): Group {
  return {
    id: row.id,
    name: row.name,
    profile: row.profile,
    selector: JSON.parse(row.selector) as Record<string, string>,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
  }
}

export async function listGroups(db: Db): Promise<Group[]> {
  const rows = await db.selectFrom('groups').selectAll().orderBy('id').execute()
  return rows.map(groupFromRow)
}

export async function findGroup(db: Db, id: string): Promise<(Group & { source: ContentSource }) | undefined> {
  const row = await db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst()
  return row ? { ...groupFromRow(row), source: row.source } : undefined
}

export async function groupsUsingProfile(db: Db, profileId: string): Promise<string[]> {
  const rows = await db.selectFrom('groups').select('id').where('profile', '=', profileId).orderBy('id').execute()
  return rows.map((row) => row.id)
}

/** Inserts or replaces a group; `created_at` survives replacement. */
export async function saveGroup(db: Db, group: Group, source: ContentSource, now: string): Promise<void> {
  const columns = {
    name: group.name,
    profile: group.profile,
    selector: JSON.stringify(group.selector),
    metadata: JSON.stringify(group.metadata),
    source,
    updated_at: now,
  }
  await db
    .insertInto('groups')
    .values({ id: group.id, ...columns, created_at: now })
    .onConflict((conflict) => conflict.column('id').doUpdateSet(columns))
    .execute()
}

export async function deleteGroup(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('groups').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}
