import Type, { type Static, type TSchema } from 'typebox'
import Value from 'typebox/value'
import { invalid, MAX_REPORTED_PROBLEMS } from '../errors.ts'
import { normalizeGroup, type Group } from './group.ts'
import type { Profile } from './profile.ts'

/**
 * The JSON documents of groups and profiles, exactly as matchbox writes them. The same schemas check
 * files loaded at start-up and bodies sent to the admin API, and they document the API in OpenAPI.
 */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$'
/** Template ids may name a file in a subfolder, never outside the folder. */
export const TEMPLATE_ID_PATTERN = '^(?!.*(^|/)\\.\\.?(/|$))[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$'
/** A file name a file system takes everywhere (255 bytes), subfolders included. */
export const TEMPLATE_ID_MAX_LENGTH = 255
/** Selector keys are query parameter names as iPXE and installers send them (`mac`, `uuid`, `os`, `rack`). */
export const SELECTOR_KEY_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9._/-]{0,127}$'
/** Text a person reads (names, selector values): no control characters (NUL, newlines that forge log lines). */
export const PLAIN_TEXT_PATTERN = '^[^\\u0000-\\u001f\\u007f]*$'

const Id = (description: string) => Type.String({ pattern: ID_PATTERN, description })

export const GroupDocument = Type.Object(
  {
    id: Id('Unique group id (letters, digits, ".", "_", "-").'),
    name: Type.Optional(Type.String({ maxLength: 1024, pattern: PLAIN_TEXT_PATTERN, description: 'Human-readable name.' })),
    profile: Id('Id of the profile machines in this group boot.'),
    selector: Type.Optional(
      Type.Record(Type.String({ pattern: SELECTOR_KEY_PATTERN }), Type.String({ maxLength: 256, pattern: PLAIN_TEXT_PATTERN }), {
        maxProperties: 64,
        // A key pattern alone only checks the keys that match it: every other key is refused.
        additionalProperties: false,
        description: 'Labels a machine must all carry; none makes this the default group.',
      }),
    ),
    metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Values templates can use.' })),
  },
  { additionalProperties: false },
)

export const BootDocument = Type.Object(
  {
    kernel: Type.String({ minLength: 1, maxLength: 4096 }),
    initrd: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { maxItems: 64 })),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 512 })),
  },
  { additionalProperties: false },
)

export const ProfileDocument = Type.Object(
  {
    id: Id('Unique profile id.'),
    name: Type.Optional(Type.String({ maxLength: 1024, pattern: PLAIN_TEXT_PATTERN })),
    ignition_id: Type.Optional(Type.String({ pattern: TEMPLATE_ID_PATTERN, maxLength: TEMPLATE_ID_MAX_LENGTH, description: 'Template in ignition/ (raw if it ends in .ign/.ignition).' })),
    generic_id: Type.Optional(Type.String({ pattern: TEMPLATE_ID_PATTERN, maxLength: TEMPLATE_ID_MAX_LENGTH, description: 'Template in generic/.' })),
    boot: Type.Optional(BootDocument),
  },
  { additionalProperties: false },
)

export type GroupDocument = Static<typeof GroupDocument>
export type ProfileDocument = Static<typeof ProfileDocument>

/**
 * Fields older matchbox versions wrote that Slipway has no use for: accepted and dropped, so that a
 * user's files still load (`cloud_id` was Cloud-Config, `cmdline` the pre-`args` kernel arguments).
 */
const LEGACY_PROFILE_FIELDS = ['cloud_id'] as const

export function parseGroupDocument(input: unknown, where: string): Group {
  const document = checkDocument(GroupDocument, input, where, 'INVALID_GROUP')
  return normalizeGroup({
    id: document.id,
    name: document.name ?? document.id,
    profile: document.profile,
    selector: document.selector ?? {},
    metadata: document.metadata ?? {},
  })
}

export function parseProfileDocument(input: unknown, where: string, options: { acceptLegacy?: boolean } = {}): Profile {
  let candidate = input
  if (options.acceptLegacy && isObject(input)) {
    const copy: Record<string, unknown> = { ...input }
    for (const field of LEGACY_PROFILE_FIELDS) delete copy[field]
    if (isObject(copy.boot) && 'cmdline' in copy.boot) {
      const { cmdline: _ignored, ...boot } = copy.boot
      copy.boot = boot
    }
    candidate = copy
  }
  const document = checkDocument(ProfileDocument, candidate, where, 'INVALID_PROFILE')
  return {
    id: document.id,
    name: document.name ?? document.id,
    ...(document.ignition_id ? { ignition_id: document.ignition_id } : {}),
    ...(document.generic_id ? { generic_id: document.generic_id } : {}),
    ...(document.boot ? { boot: { kernel: document.boot.kernel, initrd: document.boot.initrd ?? [], args: document.boot.args ?? [] } } : {}),
  }
}

/** Checks a document against its schema and reports every problem with its JSON path. */
export function checkDocument<T extends TSchema>(schema: T, input: unknown, where: string, code: string): Static<T> {
  if (Value.Check(schema, input)) return input as Static<T>
  // The first few problems and how many there are: a large document can fail thousands of times.
  const problems: string[] = []
  let count = 0
  for (const error of Value.Errors(schema, input)) {
    if (error.keyword === 'boolean') continue
    if (++count > MAX_REPORTED_PROBLEMS) continue
    const at = (error.instancePath ? error.instancePath.slice(1).replaceAll('/', '.') : '(document)').slice(0, 200)
    const params = error.params as { additionalProperties?: string[]; pattern?: string }
    if (error.keyword === 'additionalProperties') problems.push(`${at}: unknown field(s) ${(params.additionalProperties ?? []).join(', ').slice(0, 200)}`)
    else if (error.keyword === 'pattern') problems.push(`${at}: must match ${params.pattern}`)
    else problems.push(`${at}: ${error.message}`)
  }
  const more = count > problems.length ? ` (and ${count - problems.length} more)` : ''
  throw invalid(code, `${where}: ${problems.join('; ')}${more}`, { problems, count })
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function groupToDocument(group: Group): GroupDocument {
  return { id: group.id, name: group.name, profile: group.profile, selector: group.selector, metadata: group.metadata }
}
