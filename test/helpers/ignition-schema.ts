import { readFileSync } from 'node:fs'
import path from 'node:path'
import AjvModule, { type ValidateFunction } from 'ajv-draft-04'
import { REPO_ROOT } from './engine.ts'

/**
 * The official Ignition JSON schemas (3.3, 3.4, 3.5), read from the shared reference folder beside the
 * project: an oracle independent of the engine's own validator. Specs 3.0-3.2 only lack keys that 3.3
 * added, so 3.3's schema is a superset oracle for them.
 */
const SCHEMA_DIR = path.join(REPO_ROOT, '..', 'shared', 'reference', 'ignition-schema')
const Ajv = AjvModule.default
const ajv = new Ajv({ allErrors: true, strict: false })
export const OFFICIAL_SCHEMA_VERSIONS = ['3.3', '3.4', '3.5'] as const
const validators = new Map<string, ValidateFunction>(
  OFFICIAL_SCHEMA_VERSIONS.map((version) => [
    version,
    ajv.compile(JSON.parse(readFileSync(path.join(SCHEMA_DIR, `v${version.replace('.', '_')}.json`), 'utf8')) as object),
  ]),
)

/** The schema of the spec a config declares (3.5's when it declares nothing usable). */
export function officialSchemaFor(config: unknown): ValidateFunction {
  const declared = (config as { ignition?: { version?: unknown } })?.ignition?.version
  const minor = typeof declared === 'string' ? /^3\.(\d)\./.exec(declared)?.[1] : undefined
  return validators.get(`3.${Math.max(3, Math.min(5, Number(minor ?? 5)))}`)!
}

export function validateWithOfficialSchema(config: unknown): { ok: boolean; errors: string[] } {
  const validate = officialSchemaFor(config)
  const ok = validate(config) === true
  return { ok, errors: (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message}`) }
}
