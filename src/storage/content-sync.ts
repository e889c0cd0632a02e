import type { FolderContent } from '../adapters/content/content-folders.ts'
import type { Db } from './database.ts'
import { saveGroup, deleteGroup } from './repositories/groups.ts'
import { saveProfile, deleteProfile } from './repositories/profiles.ts'
import { saveTemplate, deleteTemplate } from './repositories/templates.ts'
import { inTransaction } from './transactions.ts'

export interface SyncReport {
  imported: { groups: number; profiles: number; templates: number }
  /** Objects an API write took over: their files are not applied (the API change would be lost). */
  shadowed: string[]
  /** Objects imported from a file that no longer exists. */
  removed: string[]
}

/**
 * Makes the store reflect the content folders, in one transaction. Files are the source of truth for
 * what they define, unless an object was since written through the API: then the API version stays,
 * so that an operator's change survives a restart.
 */
export async function syncFolderContent(db: Db, content: FolderContent, now: string): Promise<SyncReport> {
  return inTransaction(db, async (trx) => {
    const report: SyncReport = { imported: { groups: 0, profiles: 0, templates: 0 }, shadowed: [], removed: [] }
    const sources = async (table: 'groups' | 'profiles') =>
      new Map((await trx.selectFrom(table).select(['id', 'source']).execute()).map((row) => [row.id, row.source]))
    const groupSources = await sources('groups')
    const profileSources = await sources('profiles')
    const templateSources = new Map(
      (await trx.selectFrom('templates').select(['kind', 'id', 'source']).execute()).map((row) => [`${row.kind}/${row.id}`, row.source]),
    )

    for (const profile of content.profiles) {
      if (profileSources.get(profile.id) === 'api') {
        report.shadowed.push(`profile ${profile.id}`)
      } else {
        await saveProfile(trx, profile, 'file', now)
        report.imported.profiles++
      }
    }
    for (const template of content.templates) {
      if (templateSources.get(`${template.kind}/${template.id}`) === 'api') {
        report.shadowed.push(`template ${template.kind}/${template.id}`)
      } else {
        await saveTemplate(trx, template, 'file', now)
        report.imported.templates++
      }
    }
    for (const group of content.groups) {
      if (groupSources.get(group.id) === 'api') {
        report.shadowed.push(`group ${group.id}`)
      } else {
        await saveGroup(trx, group, 'file', now)
        report.imported.groups++
      }
    }

    // Removal runs groups first: a profile is still referenced until its groups are gone.
    const groupIds = new Set(content.groups.map((group) => group.id))
    for (const [id, source] of groupSources) {
      if (source !== 'file' || groupIds.has(id)) continue
      await deleteGroup(trx, id)
      report.removed.push(`group ${id}`)
    }
    const profileIds = new Set(content.profiles.map((profile) => profile.id))
    for (const [id, source] of profileSources) {
      if (source !== 'file' || profileIds.has(id)) continue
      const stillUsed = await trx.selectFrom('groups').select('id').where('profile', '=', id).executeTakeFirst()
      if (stillUsed) {
        report.shadowed.push(`profile ${id} (file removed, still used by group ${stillUsed.id})`)
      } else {
        await deleteProfile(trx, id)
        report.removed.push(`profile ${id}`)
      }
    }
    const templateRefs = new Set(content.templates.map((template) => `${template.kind}/${template.id}`))
    for (const [ref, source] of templateSources) {
      if (source !== 'file' || templateRefs.has(ref)) continue
      const [kind, ...rest] = ref.split('/')
      await deleteTemplate(trx, kind as 'ignition' | 'generic' | 'ipxe', rest.join('/'))
      report.removed.push(`template ${ref}`)
    }
    return report
  })
}
