import type { Template, TemplateKind } from '../../core/boot/template.ts'
import type { ContentSource, Db } from '../database.ts'

export interface StoredTemplate extends Template {
  source: ContentSource
  created_at: string
  updated_at: string
}

export async function listTemplates(db: Db, kind?: TemplateKind): Promise<StoredTemplate[]> {
  let query = db.selectFrom('templates').selectAll().orderBy('kind').orderBy('id')
  if (kind) query = query.where('kind', '=', kind)
  return query.execute()
}

export async function findTemplate(db: Db, kind: TemplateKind, id: string): Promise<StoredTemplate | undefined> {
  return db.selectFrom('templates').selectAll().where('kind', '=', kind).where('id', '=', id).executeTakeFirst()
}

export async function saveTemplate(db: Db, template: Template, source: ContentSource, now: string): Promise<void> {
  await db
    .insertInto('templates')
    .values({ ...template, source, created_at: now, updated_at: now })
    .onConflict((conflict) => conflict.columns(['kind', 'id']).doUpdateSet({ body: template.body, source, updated_at: now }))
    .execute()
}

export async function deleteTemplate(db: Db, kind: TemplateKind, id: string): Promise<boolean> {
  const result = await db.deleteFrom('templates').where('kind', '=', kind).where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}
