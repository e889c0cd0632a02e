import { readFileSync } from 'node:fs'
import path from 'node:path'
import Ajv04 from 'ajv-draft-04'
import { REPO_ROOT } from './engine.ts'

/**
 * The official Ignition JSON schemas, read from the shared reference folder: an oracle independent of
 * the engine's own validator.
 */
const SCHEMA_DIR = path.join(REPO_ROOT, '..', 'shared', 'reference', 'ignition-schema')
const ajv = new Ajv04({ allErrors: true, strict: false })
const validators = new Map<string, ReturnType<typeof ajv.compile>>()

export function validateWithOfficialSchema(config: { ignition?: { version?: string } }): { ok: boolean; errors: string[] } {
  const version = config.ignition?.version ?? ''
  const match = /^3\.(\d+)\.0$/.exec(version)
  if (!match) return { ok: false, errors: [`no official schema for version "${version}"`] }
  const file = path.join(SCHEMA_DIR, `v3_${match[1]}.json`)
  let validate = validators.get(file)
  if (!validate) {
    validate = ajv.compile(JSON.parse(readFileSync(file, 'utf8')))
    validators.set(file, validate)
  }
  const ok = validate(config) as boolean
  return { ok, errors: (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message}`) }
}
