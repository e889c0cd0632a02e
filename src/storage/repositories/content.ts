import type { ContentRepository } from '../../core/content/content-service.ts'
import type { Db } from '../database.ts'
import * as groups from './groups.ts'
import * as profiles from './profiles.ts'
import * as templates from './templates.ts'
import { inTransaction } from '../transactions.ts'

/** The core's content port over kysely: each method is one repository function. */
export function contentRepository(db: Db, clock: () => Date = () => new Date()): ContentRepository {
  const now = () => clock().toISOString()
  return {
    listGroups: () => groups.listGroups(db),
    findGroup: (id) => groups.findGroup(db, id),
    saveGroup: (group, source) => groups.saveGroup(db, group, source, now()),
    deleteGroup: (id) => groups.deleteGroup(db, id),
    groupsUsingProfile: (id) => groups.groupsUsingProfile(db, id),
    listProfiles: () => profiles.listProfiles(db),
    findProfile: (id) => profiles.findProfile(db, id),
    saveProfile: (profile, source) => profiles.saveProfile(db, profile, source, now()),
    deleteProfile: (id) => profiles.deleteProfile(db, id),
    listTemplates: (kind) => templates.listTemplates(db, kind),
    findTemplate: (kind, id) => templates.findTemplate(db, kind, id),
    saveTemplate: (template, source) => templates.saveTemplate(db, template, source, now()),
    deleteTemplate: (kind, id) => templates.deleteTemplate(db, kind, id),
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(contentRepository(trx, clock))),
  }
}
