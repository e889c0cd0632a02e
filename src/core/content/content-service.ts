import { conflict, invalid, notFound, type SlipwayError } from '../errors.ts'
import { checkTemplateSyntax, templateRef, type Template, type TemplateKind } from '../boot/template.ts'
import { finalizeIgnition, isButane, isRawIgnition } from '../boot/ignition-output.ts'
import { parseGroupDocument, parseProfileDocument } from '../selection/documents.ts'
import type { Group } from '../selection/group.ts'
import type { Profile } from '../selection/profile.ts'

export type ContentSource = 'file' | 'api'
export type Sourced<T> = T & { source: ContentSource }
export interface TemplateRecord extends Sourced<Template> {
  created_at: string
  updated_at: string
}

/** The store port for groups, profiles and templates; storage implements it. */
export interface ContentRepository {
  listGroups(): Promise<Group[]>
  findGroup(id: string): Promise<Sourced<Group> | undefined>
  saveGroup(group: Group, source: ContentSource): Promise<void>
  deleteGroup(id: string): Promise<boolean>
  groupsUsingProfile(profileId: string): Promise<string[]>
  listProfiles(): Promise<Profile[]>
  findProfile(id: string): Promise<Sourced<Profile> | undefined>
  saveProfile(profile: Profile, source: ContentSource): Promise<void>
  deleteProfile(id: string): Promise<boolean>
  listTemplates(kind?: TemplateKind): Promise<TemplateRecord[]>
  findTemplate(kind: TemplateKind, id: string): Promise<TemplateRecord | undefined>
  saveTemplate(template: Template, source: ContentSource): Promise<void>
  deleteTemplate(kind: TemplateKind, id: string): Promise<boolean>
  /** Runs `work` atomically: all of its writes land or none do. */
  transaction<T>(work: (repository: ContentRepository) => Promise<T>): Promise<T>
}

/**
 * Managing groups, profiles and templates through the API. Every write is checked the same way a
 * file is checked at start-up, and `afterChange` lets the boot path pick up the new catalog at once.
 */
export class ContentService {
  constructor(
    private readonly repository: ContentRepository,
    private readonly afterChange: () => Promise<void>,
  ) {}

  listGroups() {
    return this.repository.listGroups()
  }

  async getGroup(id: string): Promise<Sourced<Group>> {
    const group = await this.repository.findGroup(id)
    if (!group) throw notFound('GROUP_NOT_FOUND', `group "${id}" does not exist`)
    return group
  }

  /** `mode: 'create'` refuses an existing id; `'replace'` writes it whole (PUT semantics). */
  async putGroup(input: unknown, mode: 'create' | 'replace', expectedId?: string): Promise<Group> {
    const group = parseGroupDocument(input, 'group')
    checkIdMatches(group.id, expectedId)
    await this.repository.transaction(async (repository) => {
      if (mode === 'create' && (await repository.findGroup(group.id))) {
        throw conflict('GROUP_EXISTS', `group "${group.id}" already exists; use PUT /api/v1/groups/${group.id} to replace it`)
      }
      if (!(await repository.findProfile(group.profile))) {
        throw invalid('UNKNOWN_PROFILE', `group "${group.id}" names profile "${group.profile}", which does not exist; create the profile first`)
      }
      await repository.saveGroup(group, 'api')
    })
    await this.afterChange()
    return group
  }

  async deleteGroup(id: string): Promise<void> {
    if (!(await this.repository.deleteGroup(id))) throw notFound('GROUP_NOT_FOUND', `group "${id}" does not exist`)
    await this.afterChange()
  }

  listProfiles() {
    return this.repository.listProfiles()
  }

  async getProfile(id: string): Promise<Sourced<Profile>> {
    const profile = await this.repository.findProfile(id)
    if (!profile) throw notFound('PROFILE_NOT_FOUND', `profile "${id}" does not exist`)
    return profile
  }

  async putProfile(input: unknown, mode: 'create' | 'replace', expectedId?: string): Promise<Profile> {
    const profile = parseProfileDocument(input, 'profile')
    checkIdMatches(profile.id, expectedId)
    await this.repository.transaction(async (repository) => {
      if (mode === 'create' && (await repository.findProfile(profile.id))) {
        throw conflict('PROFILE_EXISTS', `profile "${profile.id}" already exists; use PUT /api/v1/profiles/${profile.id} to replace it`)
      }
      await repository.saveProfile(profile, 'api')
    })
    await this.afterChange()
    return profile
  }

  async deleteProfile(id: string): Promise<void> {
    await this.repository.transaction(async (repository) => {
      const users = await repository.groupsUsingProfile(id)
      if (users.length > 0) {
        throw conflict('PROFILE_IN_USE', `profile "${id}" is used by group(s) ${users.join(', ')}; change or delete them first`, { groups: users })
      }
      if (!(await repository.deleteProfile(id))) throw notFound('PROFILE_NOT_FOUND', `profile "${id}" does not exist`)
    })
    await this.afterChange()
  }

  listTemplates(kind?: TemplateKind) {
    return this.repository.listTemplates(kind)
  }

  async getTemplate(kind: TemplateKind, id: string): Promise<TemplateRecord> {
    const template = await this.repository.findTemplate(kind, id)
    if (!template) throw notFound('TEMPLATE_NOT_FOUND', `template ${templateRef(kind, id)} does not exist`)
    return template
  }

  async putTemplate(template: Template): Promise<{ created: boolean }> {
    checkTemplate(template)
    const created = await this.repository.transaction(async (repository) => {
      const existing = await repository.findTemplate(template.kind, template.id)
      await repository.saveTemplate(template, 'api')
      return !existing
    })
    await this.afterChange()
    return { created }
  }

  async deleteTemplate(kind: TemplateKind, id: string): Promise<void> {
    if (!(await this.repository.deleteTemplate(kind, id))) {
      throw notFound('TEMPLATE_NOT_FOUND', `template ${templateRef(kind, id)} does not exist`)
    }
    await this.afterChange()
  }
}

/** A PUT names the object twice, in the URL and in the body: both must agree. */
function checkIdMatches(bodyId: string, urlId: string | undefined): void {
  if (urlId !== undefined && bodyId !== urlId) {
    throw invalid('ID_MISMATCH', `the body's id "${bodyId}" differs from the id in the URL "${urlId}"`)
  }
}

/**
 * Catches what can be caught before a machine asks: handlebars syntax, and for raw Ignition the whole
 * validation, since its contents are final. Templated Ignition is validated on every render.
 */
export function checkTemplate(template: Template): void {
  const name = templateRef(template.kind, template.id)
  if (template.kind === 'ignition' && isButane(template.id)) return
  if (template.kind === 'ignition' && isRawIgnition(template.id)) {
    try {
      finalizeIgnition(name, template.body)
    } catch (error) {
      const failure = error as SlipwayError
      throw invalid(failure.code, failure.message, failure.details)
    }
    return
  }
  try {
    checkTemplateSyntax(name, template.body)
  } catch (error) {
    throw invalid('TEMPLATE_SYNTAX', (error as Error).message, { template: name })
  }
}
