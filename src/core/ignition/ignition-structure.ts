import { LATEST_MINOR, type ObjectSpec, type SpecMinor, type SpecNode } from './ignition-spec.ts'
import { isObj, type Findings, type Obj } from './findings.ts'

/**
 * The first validation pass: check the declared spec version, then walk the config against that
 * version of the spec. The walk reports wrong types, missing required keys, keys from a later spec and
 * unknown keys, and returns a pruned copy holding only well-typed, known values (rejected ones replaced
 * by INVALID) for the semantic pass to run over.
 */

export const SUPPORTED_IGNITION_VERSIONS: readonly string[] = Array.from({ length: LATEST_MINOR + 1 }, (_, m) => `3.${m}.0`)

// ---------------------------------------------------------------------------------------------------
// Version

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$/

export function checkVersion(config: unknown, f: Findings): SpecMinor | undefined {
  if (!isObj(config)) {
    f.error('', `an Ignition config must be a JSON object, got ${typeName(config)}`)
    return undefined
  }
  if (config['ignition'] === undefined && config['ignitionVersion'] !== undefined) {
    f.error('ignitionVersion', 'Ignition spec 1 configs are not supported; translate the config to spec 3 (e.g. with Butane)')
    return undefined
  }
  const ign = config['ignition']
  if (ign !== undefined && !isObj(ign)) {
    f.error('ignition', `expected object, got ${typeName(ign)}`)
    return undefined
  }
  const version = ign?.['version']
  if (version === undefined || version === null) {
    f.error('ignition.version', 'ignition.version is required')
    return undefined
  }
  if (typeof version !== 'string') {
    f.error('ignition.version', `expected string, got ${typeName(version)}`)
    return undefined
  }
  const supported = `supported versions: ${SUPPORTED_IGNITION_VERSIONS.join(', ')}`
  const m = SEMVER.exec(version)
  if (!m) {
    f.error('ignition.version', `invalid config version ${JSON.stringify(version)} (couldn't parse); ${supported}`)
    return undefined
  }
  const [major, minor, patch, pre, build] = [Number(m[1]), Number(m[2]), Number(m[3]), m[4], m[5]]
  if (major < 3) {
    f.error(
      'ignition.version',
      `Ignition spec ${major} configs (version ${version}) are not supported; translate the config to spec 3 with ` +
        `ign-converter or regenerate it with Butane (${supported})`,
    )
    return undefined
  }
  if (pre !== undefined) {
    f.error('ignition.version', `pre-release config version ${version} is not supported; ${supported}`)
    return undefined
  }
  if (major !== 3 || patch !== 0 || build !== undefined || minor > LATEST_MINOR) {
    f.error('ignition.version', `unsupported config version ${version}; ${supported}`)
    return undefined
  }
  return minor as SpecMinor
}

// ---------------------------------------------------------------------------------------------------
// Structure

export function walk(spec: SpecNode, value: unknown, path: string, minor: SpecMinor, f: Findings): unknown {
  if (spec.type === 'object') return walkObject(spec, value, path, minor, f)
  if (spec.type === 'array') {
    if (!Array.isArray(value)) return mismatch('array', value, path, f)
    return value.map((item, i) => walk(spec.items, item, `${path}[${i}]`, minor, f))
  }
  if (value === null) {
    const nullable = typeof spec.nullable === 'function' ? spec.nullable(minor) : spec.nullable === true
    return nullable ? null : mismatch(spec.type, value, path, f)
  }
  const ok =
    spec.type === 'string' ? typeof value === 'string' : spec.type === 'boolean' ? typeof value === 'boolean' : Number.isInteger(value)
  return ok ? value : mismatch(spec.type, value, path, f)
}

function walkObject(spec: ObjectSpec, value: unknown, path: string, minor: SpecMinor, f: Findings): Obj | typeof INVALID {
  if (!isObj(value)) return mismatch('object', value, path, f)
  const out: Obj = {}
  for (const [key, child] of Object.entries(value)) {
    const childPath = join(path, key)
    const prop = Object.hasOwn(spec.props, key) ? spec.props[key] : undefined
    if (!prop) {
      const hint = Object.keys(spec.props).find((k) => k.toLowerCase() === key.toLowerCase())
      f.warn(childPath, `Unused key ${key}` + (hint ? `; did you mean ${hint}?` : ''))
      continue
    }
    if (prop.since > minor) {
      f.error(childPath, `${key} is not supported in spec 3.${minor}.0; it was introduced in spec 3.${prop.since}.0`)
      continue
    }
    out[key] = walk(prop.node, child, childPath, minor, f)
  }
  for (const [key, prop] of Object.entries(spec.props)) {
    if (prop.required && prop.since <= minor && value[key] === undefined) f.error(join(path, key), `${key} is required`)
  }
  return out
}

/**
 * Stands in for a value the structural pass rejected, so the semantic pass can tell "absent" from
 * "present but wrong" and does not follow "expected string" with "source is required".
 */
export const INVALID: unique symbol = Symbol('invalid')

function mismatch(expected: string, value: unknown, path: string, f: Findings): typeof INVALID {
  f.error(path, `expected ${expected}, got ${typeName(value)}`)
  return INVALID
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number'
  return typeof v
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}
