import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkTemplate } from '../../core/content/content-service.ts'
import { parseGroupDocument, parseProfileDocument } from '../../core/selection/documents.ts'
import type { Group } from '../../core/selection/group.ts'
import type { Profile } from '../../core/selection/profile.ts'
import type { Template, TemplateKind } from '../../core/boot/template.ts'

/** Folders in matchbox's layout: `<profilesDir>/groups/*.json`, `<profilesDir>/profiles/*.json`, templates. */
export interface ContentFolders {
  profilesDir: string
  ignitionDir: string
  ipxeDir: string
  genericDir: string
}

/** The iPXE scripts shipped with Slipway, used when the configured ipxe folder does not define them. */
export const BUILTIN_IPXE_DIR = fileURLToPath(new URL('../../../ipxe', import.meta.url))
const REQUIRED_IPXE_TEMPLATES = ['boot.ipxe', 'profile.ipxe']

export interface FolderContent {
  groups: Group[]
  profiles: Profile[]
  templates: Template[]
}

export class ContentFolderError extends Error {
  constructor(readonly problems: string[]) {
    super(`content folders have ${problems.length} problem(s):\n  - ${problems.join('\n  - ')}`)
    this.name = 'ContentFolderError'
  }
}

/**
 * Reads every group, profile and template from disk and reports all problems at once: a half-loaded
 * catalog would boot machines into the default group, so start-up refuses instead.
 */
export async function readContentFolders(folders: ContentFolders): Promise<FolderContent> {
  const problems: string[] = []
  const groups = await readDocuments(path.join(folders.profilesDir, 'groups'), problems, (json, where) => parseGroupDocument(json, where))
  const profiles = await readDocuments(path.join(folders.profilesDir, 'profiles'), problems, (json, where) =>
    parseProfileDocument(json, where, { acceptLegacy: true }),
  )
  const templates: Template[] = []
  for (const [kind, dir] of [['ignition', folders.ignitionDir], ['ipxe', folders.ipxeDir], ['generic', folders.genericDir]] as const) {
    for (const file of await listFiles(dir)) {
      const template: Template = { kind, id: path.relative(dir, file).split(path.sep).join('/'), body: await fs.readFile(file, 'utf8') }
      try {
        checkTemplate(template)
        templates.push(template)
      } catch (error) {
        problems.push(`${file}: ${(error as Error).message}`)
      }
    }
  }
  for (const id of REQUIRED_IPXE_TEMPLATES) {
    if (!templates.some((template) => template.kind === 'ipxe' && template.id === id)) {
      templates.push({ kind: 'ipxe', id, body: await fs.readFile(path.join(BUILTIN_IPXE_DIR, id), 'utf8') })
    }
  }
  reportDuplicates(groups, 'group', problems)
  reportDuplicates(profiles, 'profile', problems)
  const profileIds = new Set(profiles.map((entry) => entry.value.id))
  for (const { value: group, file } of groups) {
    if (!profileIds.has(group.profile)) problems.push(`${file}: group "${group.id}" names profile "${group.profile}", which no file defines`)
  }
  if (problems.length > 0) throw new ContentFolderError(problems)
  return { groups: groups.map((entry) => entry.value), profiles: profiles.map((entry) => entry.value), templates }
}

async function readDocuments<T>(dir: string, problems: string[], parse: (json: unknown, where: string) => T) {
  const entries: { value: T; file: string }[] = []
  // matchbox reads only the top level of groups/ and profiles/; so does Slipway.
  for (const file of (await listFiles(dir, false)).filter((name) => name.endsWith('.json'))) {
    try {
      entries.push({ value: parse(JSON.parse(await fs.readFile(file, 'utf8')), file), file })
    } catch (error) {
      problems.push(error instanceof SyntaxError ? `${file}: not valid JSON: ${error.message}` : (error as Error).message)
    }
  }
  return entries
}

function reportDuplicates(entries: { value: { id: string }; file: string }[], what: string, problems: string[]) {
  const seen = new Map<string, string>()
  for (const { value, file } of entries) {
    const first = seen.get(value.id)
    if (first) problems.push(`${file}: ${what} id "${value.id}" is already defined in ${first}`)
    else seen.set(value.id, file)
  }
}

/** Regular files under `dir` (recursively), sorted; a missing folder is simply empty. */
async function listFiles(dir: string, recursive = true): Promise<string[]> {
  let entries
  try {
    entries = await fs.readdir(dir, { withFileTypes: true })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const files: string[] = []
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name.startsWith('.')) continue
    const full = path.join(dir, entry.name)
    if (entry.isFile()) files.push(full)
    else if (entry.isDirectory() && recursive) files.push(...(await listFiles(full)))
  }
  return files
}

export type { TemplateKind }
