/**
 * A subset of Kubernetes' structured-merge-diff (sigs.k8s.io/structured-merge-diff), for the cluster
 * TEST DOUBLE's server-side apply and managedFields (test/fakes/kube-cluster.ts). Without the OpenAPI
 * schemas, list and map semantics come from a small table of well-known fields:
 *
 * - maps merge field by field; `selector` (LabelSelector, Service selector) is an atomic map;
 * - associative lists merge item by item on their keys: containers, initContainers,
 *   ephemeralContainers, env, volumes, imagePullSecrets (name), volumeMounts (mountPath), container
 *   ports (containerPort, protocol), Service spec.ports (port, protocol), conditions (type),
 *   ownerReferences (uid), topologySpreadConstraints, hostAliases; a missing `protocol` key counts as
 *   TCP, its schema default;
 * - metadata.finalizers is a set (`v:` elements); every other list is atomic (replaced whole).
 *
 * Field sets are kept as sets of paths of FieldsV1 elements (`f:name`, `k:{"name":"web"}`, `v:"x"`),
 * serialised to and from the managedFields FieldsV1 tree (`".": {}` marks a member with children).
 */

export type PathElement = string
export type FieldPath = readonly PathElement[]
type Json = unknown

export const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)
export const clone = <T>(value: T): T => structuredClone(value)

export function deepEqual(a: Json, b: Json): boolean {
  if (a === b) return true
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => deepEqual(item, b[index]))
  if (isObject(a)) {
    if (!isObject(b)) return false
    const keys = Object.keys(a)
    return keys.length === Object.keys(b).length && keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && deepEqual(a[key], b[key]))
  }
  return false
}

const SEPARATOR = '\u0000'
const pathKey = (path: FieldPath) => path.join(SEPARATOR)

export class FieldSet {
  private readonly members = new Map<string, FieldPath>()

  constructor(paths: Iterable<FieldPath> = []) {
    for (const path of paths) this.add(path)
  }

  add(path: FieldPath): void {
    this.members.set(pathKey(path), [...path])
  }
  has(path: FieldPath): boolean {
    return this.members.has(pathKey(path))
  }
  delete(path: FieldPath): void {
    this.members.delete(pathKey(path))
  }
  get size(): number {
    return this.members.size
  }
  paths(): FieldPath[] {
    return [...this.members.values()]
  }
  /** Some member is `path` or lies below it. */
  hasAtOrBelow(path: FieldPath): boolean {
    const prefix = pathKey(path)
    for (const key of this.members.keys()) if (key === prefix || key.startsWith(prefix + SEPARATOR)) return true
    return false
  }
  difference(other: FieldSet): FieldSet {
    return new FieldSet(this.paths().filter((path) => !other.has(path)))
  }

  /** The FieldsV1 tree of managedFields. */
  toFieldsV1(): Record<string, unknown> {
    const root: Record<string, unknown> = {}
    for (const path of [...this.members.values()].sort((a, b) => (pathKey(a) < pathKey(b) ? -1 : 1))) {
      let node = root
      for (const element of path) node = (node[element] ??= {}) as Record<string, unknown>
      node['.'] = {}
    }
    // A member without children is written `{}`; one with children keeps its `".": {}`.
    const strip = (node: Record<string, unknown>): Record<string, unknown> => {
      const children = Object.entries(node).filter(([key]) => key !== '.')
      if (children.length === 0) return {}
      const result: Record<string, unknown> = '.' in node ? { '.': {} } : {}
      for (const [key, child] of children) result[key] = strip(child as Record<string, unknown>)
      return result
    }
    return strip(root)
  }

  static fromFieldsV1(tree: unknown): FieldSet {
    const set = new FieldSet()
    const walk = (node: unknown, path: PathElement[]) => {
      if (!isObject(node)) return
      const children = Object.keys(node).filter((key) => key !== '.')
      if (path.length > 0 && (children.length === 0 || '.' in node)) set.add(path)
      for (const key of children) walk(node[key], [...path, key])
    }
    walk(tree, [])
    return set
  }
}

// ----- the schema table -----

type ListKind = { type: 'map'; keys: string[] } | { type: 'set' } | { type: 'atomic' }

const CONTAINER_LISTS = new Set(['f:containers', 'f:initContainers', 'f:ephemeralContainers'])
const BY_NAME = new Set(['f:containers', 'f:initContainers', 'f:ephemeralContainers', 'f:env', 'f:volumes', 'f:imagePullSecrets', 'f:resourceClaims'])

export function listKind(path: FieldPath): ListKind {
  const last = path[path.length - 1]
  if (last === undefined) return { type: 'atomic' }
  if (BY_NAME.has(last)) return { type: 'map', keys: ['name'] }
  if (path.length === 2 && path[0] === 'f:metadata') {
    if (last === 'f:finalizers') return { type: 'set' }
    if (last === 'f:ownerReferences') return { type: 'map', keys: ['uid'] }
  }
  switch (last) {
    case 'f:volumeMounts':
      return { type: 'map', keys: ['mountPath'] }
    case 'f:volumeDevices':
      return { type: 'map', keys: ['devicePath'] }
    case 'f:conditions':
      return { type: 'map', keys: ['type'] }
    case 'f:hostAliases':
      return { type: 'map', keys: ['ip'] }
    case 'f:topologySpreadConstraints':
      return { type: 'map', keys: ['topologyKey', 'whenUnsatisfiable'] }
    case 'f:ports': {
      const parent = path[path.length - 2] ?? ''
      const grandparent = path[path.length - 3] ?? ''
      if (parent.startsWith('k:') && CONTAINER_LISTS.has(grandparent)) return { type: 'map', keys: ['containerPort', 'protocol'] }
      if (path.length === 2 && path[0] === 'f:spec') return { type: 'map', keys: ['port', 'protocol'] }
      return { type: 'atomic' }
    }
    default:
      return { type: 'atomic' }
  }
}

/** Maps replaced whole rather than merged key by key. */
const isAtomicMap = (path: FieldPath) => path[path.length - 1] === 'f:selector'

/** The key of an associative-list item: its key fields, protocol defaulted, in key order. */
function itemKey(item: Json, keys: string[]): Record<string, unknown> | undefined {
  if (!isObject(item)) return undefined
  const key: Record<string, unknown> = {}
  for (const name of [...keys].sort()) {
    const value = item[name] ?? (name === 'protocol' ? 'TCP' : undefined)
    if (value !== undefined) key[name] = value
  }
  return Object.keys(key).length > 0 ? key : undefined
}

const keyElement = (key: Record<string, unknown>) => `k:${JSON.stringify(key)}`
const sameKey = (item: Json, key: Record<string, unknown>, keys: string[]) => deepEqual(itemKey(item, keys), key)

// ----- field sets of values -----

/**
 * The fields a configuration sets, as apply records them: leaves (scalars, atomic lists and maps, empty
 * maps), associative-list items (with their fields) and set values; plain maps only through their fields.
 * With `withMaps`, maps themselves are members too (what an update that creates them records).
 */
export function fieldSetOf(value: Json, withMaps = false): FieldSet {
  const set = new FieldSet()
  const walk = (node: Json, path: FieldPath) => {
    if (isObject(node) && !isAtomicMap(path)) {
      const entries = Object.entries(node).filter(([, child]) => child !== null && child !== undefined)
      if (path.length > 0 && (entries.length === 0 || withMaps)) set.add(path)
      for (const [key, child] of entries) walk(child, [...path, `f:${key}`])
      return
    }
    if (Array.isArray(node)) {
      const kind = listKind(path)
      if (kind.type === 'map') {
        for (const item of node) {
          const key = itemKey(item, kind.keys)
          if (!key) continue
          const itemPath = [...path, keyElement(key)]
          set.add(itemPath)
          walk(item, itemPath)
        }
        // An empty associative list is still a value its writer set.
        if (node.length === 0) set.add(path)
        return
      }
      if (kind.type === 'set') {
        for (const item of node) set.add([...path, `v:${JSON.stringify(item)}`])
        if (node.length === 0) set.add(path)
        return
      }
    }
    if (path.length > 0) set.add(path)
  }
  walk(value, [])
  return set
}

/** The fields whose value an update changed or created (maps it created included). */
export function changedFieldSet(before: Json, after: Json): FieldSet {
  const set = new FieldSet()
  const walk = (next: Json, previous: Json, path: FieldPath) => {
    if (isObject(next) && !isAtomicMap(path)) {
      if (path.length > 0 && !isObject(previous)) set.add(path)
      const old = isObject(previous) ? previous : {}
      for (const [key, child] of Object.entries(next)) if (child !== null && child !== undefined) walk(child, old[key], [...path, `f:${key}`])
      return
    }
    if (Array.isArray(next)) {
      const kind = listKind(path)
      const old = Array.isArray(previous) ? previous : []
      if (kind.type === 'map') {
        for (const item of next) {
          const key = itemKey(item, kind.keys)
          if (!key) continue
          const itemPath = [...path, keyElement(key)]
          const oldItem = old.find((candidate) => sameKey(candidate, key, kind.keys))
          if (oldItem === undefined) set.add(itemPath)
          walk(item, oldItem, itemPath)
        }
        return
      }
      if (kind.type === 'set') {
        for (const item of next) if (!old.some((candidate) => deepEqual(candidate, item))) set.add([...path, `v:${JSON.stringify(item)}`])
        return
      }
    }
    if (path.length > 0 && !deepEqual(next, previous)) set.add(path)
  }
  walk(after, before, [])
  return set
}

// ----- reading, merging and removing by path -----

function step(node: Json, element: PathElement, parentPath: FieldPath): Json {
  if (element.startsWith('f:')) return isObject(node) ? node[element.slice(2)] : undefined
  if (!Array.isArray(node)) return undefined
  if (element.startsWith('k:')) {
    const kind = listKind(parentPath)
    const key = JSON.parse(element.slice(2)) as Record<string, unknown>
    return kind.type === 'map' ? node.find((item) => sameKey(item, key, kind.keys)) : undefined
  }
  if (element.startsWith('v:')) {
    const value: unknown = JSON.parse(element.slice(2))
    return node.find((item) => deepEqual(item, value))
  }
  return undefined
}

export function valueAt(root: Json, path: FieldPath): Json {
  let node = root
  for (let index = 0; index < path.length && node !== undefined; index++) node = step(node, path[index]!, path.slice(0, index))
  return node
}

/** Removes the field, item or set value at `path`; maps and lists the removal empties go too. */
export function removeAt(root: Record<string, unknown>, path: FieldPath, keep: (path: FieldPath) => boolean = () => false): void {
  if (path.length === 0) return
  const parentPath = path.slice(0, -1)
  const parent = valueAt(root, parentPath)
  const element = path[path.length - 1]!
  if (element.startsWith('f:') && isObject(parent)) delete parent[element.slice(2)]
  else if (Array.isArray(parent)) {
    const target = step(parent, element, parentPath)
    const index = parent.indexOf(target)
    if (index >= 0) parent.splice(index, 1)
  } else return
  const emptied = isObject(parent) ? Object.keys(parent).length === 0 : Array.isArray(parent) && parent.length === 0
  // Go's omitempty drops empty maps and lists; a top-level field (spec, metadata) is kept.
  if (emptied && parentPath.length > 1 && !keep(parentPath)) removeAt(root, parentPath, keep)
}

/** Merges an applied configuration into the live object (maps by key, associative lists by item key). */
export function mergeApplied(live: Json, applied: Json, path: FieldPath = []): Json {
  if (isObject(applied) && !isAtomicMap(path)) {
    const result: Record<string, unknown> = isObject(live) ? { ...live } : {}
    for (const [key, value] of Object.entries(applied)) {
      if (value === null || value === undefined) continue
      result[key] = mergeApplied(result[key], value, [...path, `f:${key}`])
    }
    return result
  }
  if (Array.isArray(applied) && Array.isArray(live)) {
    const kind = listKind(path)
    if (kind.type === 'map') {
      const result = live.map((item) => clone(item))
      for (const item of applied) {
        const key = itemKey(item, kind.keys)
        const index = key ? result.findIndex((candidate) => sameKey(candidate, key, kind.keys)) : -1
        if (index >= 0 && key) result[index] = mergeApplied(result[index], item, [...path, keyElement(key)])
        else result.push(clone(item))
      }
      return result
    }
    if (kind.type === 'set') {
      const result = live.map((item) => clone(item))
      for (const item of applied) if (!result.some((candidate) => deepEqual(candidate, item))) result.push(clone(item))
      return result
    }
  }
  return clone(applied)
}

/**
 * A strategic merge patch, as kubectl and client-go send them: a JSON merge patch, except that the
 * associative lists above merge item by item (an item `{"$patch": "delete", <key>}` removes one),
 * `$patch: replace` in a map replaces it, and `$deleteFromPrimitiveList/<field>` removes values.
 */
export function strategicMerge(target: Json, patch: Json, path: FieldPath = []): Json {
  if (!isObject(patch)) return clone(patch)
  if (patch.$patch === 'replace') {
    const { $patch: _directive, ...rest } = patch
    return clone(rest)
  }
  if (patch.$patch === 'delete') return undefined
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length)
      const current = result[field]
      if (Array.isArray(current) && Array.isArray(value)) result[field] = current.filter((item) => !value.some((v) => deepEqual(v, item)))
      continue
    }
    const childPath = [...path, `f:${key}`]
    if (value === null) {
      delete result[key]
      continue
    }
    const kind = listKind(childPath)
    if (Array.isArray(value) && kind.type === 'map' && Array.isArray(result[key])) {
      const list = (result[key] as unknown[]).map((item) => clone(item))
      for (const item of value) {
        const itemKeyValue = itemKey(item, kind.keys)
        const index = itemKeyValue ? list.findIndex((candidate) => sameKey(candidate, itemKeyValue, kind.keys)) : -1
        if (isObject(item) && item.$patch === 'delete') {
          if (index >= 0) list.splice(index, 1)
        } else if (index >= 0 && itemKeyValue) list[index] = strategicMerge(list[index], item, [...childPath, keyElement(itemKeyValue)])
        else list.push(strategicMerge(undefined, item, childPath))
      }
      result[key] = list
      continue
    }
    const merged = strategicMerge(result[key], value, childPath)
    if (merged === undefined) delete result[key]
    else result[key] = merged
  }
  return result
}

/** A path as structured-merge-diff prints it in conflicts: `.spec.template.spec.containers[name="web"].image`. */
export function pathString(path: FieldPath): string {
  return path
    .map((element) => {
      if (element.startsWith('f:')) return `.${element.slice(2)}`
      if (element.startsWith('k:')) {
        const key = JSON.parse(element.slice(2)) as Record<string, unknown>
        return `[${Object.entries(key)
          .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
          .join(',')}]`
      }
      if (element.startsWith('v:')) return `[=${element.slice(2)}]`
      return element
    })
    .join('')
}
