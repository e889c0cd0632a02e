import type { Group } from '../selection/group.ts'
import { GroupIndex } from '../selection/group-index.ts'
import type { Profile } from '../selection/profile.ts'
import { compileTemplate, templateRef, type CompiledTemplate, type Template, type TemplateKind } from '../render/template.ts'

/**
 * An immutable snapshot of everything that decides what a machine boots. Machine-facing requests
 * read a snapshot, never the database: a write builds a new one, so a request sees one consistent
 * version and the hot path does no I/O.
 */
export class Catalog {
  readonly groups: GroupIndex
  private readonly profiles: ReadonlyMap<string, Profile>
  private readonly templates: ReadonlyMap<string, Template>
  private readonly compiledTemplates = new Map<string, CompiledTemplate>()
  /**
   * Rendered (and, for Ignition, validated) outputs of this snapshot, keyed by what they were rendered
   * from. A new snapshot starts empty, so a change of group, profile or template is never served stale.
   */
  readonly renderCache = new BoundedCache<string, unknown>(10_000)

  constructor(groups: readonly Group[], profiles: readonly Profile[], templates: readonly Template[]) {
    this.groups = new GroupIndex(groups)
    this.profiles = new Map(profiles.map((profile) => [profile.id, profile]))
    this.templates = new Map(templates.map((template) => [templateRef(template.kind, template.id), template]))
  }

  profile(id: string): Profile | undefined {
    return this.profiles.get(id)
  }

  template(kind: TemplateKind, id: string): Template | undefined {
    return this.templates.get(templateRef(kind, id))
  }

  /** Compiles on first use: start-up stays fast with thousands of templates. */
  compiled(kind: TemplateKind, id: string, body: string): CompiledTemplate {
    const ref = templateRef(kind, id)
    let compiled = this.compiledTemplates.get(ref)
    if (!compiled) {
      compiled = compileTemplate(ref, body)
      this.compiledTemplates.set(ref, compiled)
    }
    return compiled
  }
}

/** The port through which the core reads the current catalog; storage keeps it fresh. */
export interface CatalogSource {
  current(): Catalog
}

/** A Map that forgets its oldest entries past `capacity`: memory stays flat under many machines. */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, V>()
  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    return this.entries.get(key)
  }

  set(key: K, value: V): void {
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next()
      if (!oldest.done) this.entries.delete(oldest.value)
    }
    this.entries.set(key, value)
  }
}
