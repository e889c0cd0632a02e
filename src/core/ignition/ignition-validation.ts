import { IGNITION_SPEC } from './ignition-spec.ts'
import { Findings, type Obj, type ValidationFinding } from './findings.ts'
import { checkVersion, walk } from './ignition-structure.ts'
import { Semantics } from './ignition-semantics.ts'

/**
 * Slipway's own Ignition validator, modelled on `ignition-validate`: every config the engine serves
 * goes through it, because a config Ignition rejects leaves a machine stuck in the initramfs.
 *
 * Two passes: a structural walk of the declared spec version (types, required keys, keys from a later
 * spec, unknown keys) that also yields a pruned copy holding only well-typed, known values; then the
 * semantic rules Ignition applies in its `Validate()` methods, run over that copy so a type error is
 * never reported a second time as a nonsense semantic error.
 */

export type { ValidationFinding } from './findings.ts'

export interface ValidationReport {
  ok: boolean
  /** The spec version the config was validated against; absent when it declared no supported version. */
  version?: string
  errors: ValidationFinding[]
  warnings: ValidationFinding[]
}

export { SUPPORTED_IGNITION_VERSIONS } from './ignition-structure.ts'

export function validateIgnition(config: unknown): ValidationReport {
  const f = new Findings()
  const minor = checkVersion(config, f)
  if (minor === undefined) return { ok: false, errors: f.errors, warnings: f.warnings }
  const pruned = walk(IGNITION_SPEC, config, '', minor, f) as Obj
  new Semantics(minor, f).run(pruned)
  return { ok: f.errors.length === 0, version: `3.${minor}.0`, errors: f.errors, warnings: f.warnings }
}
