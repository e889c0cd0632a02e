import type { Group } from '../selection/group.ts'
import { GroupIndex } from '../selection/group-index.ts'
import type { Profile } from '../selection/profile.ts'
import { compileTemplate, templateRef, type CompiledTemplate, type Template, type TemplateKind } from './template.ts'

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
  /** Renders by key, bounded in entries and in bytes (keys hold the raw query, which a client chooses). */
  readonly renderCache = new BoundedCache<string, unknown>(10_000, RENDER_CACHE_BYTES, (key, value) => key.length + renderedLength(value))

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

  /**
   * `{{scripts.<name>}}` in Ignition templates: the text of each shell script in generic/ (`<name>.sh`,
   * `-` read as `_`), so that a role config writes a script the operator can read and change as a file
   * rather than one percent-encoded inside JSON. Read lazily: only a template that asks pays.
   */
  scripts(): Record<string, string> {
    const scripts: Record<string, string> = {}
    for (const template of this.templates.values()) {
      if (template.kind !== 'generic' || !template.id.endsWith('.sh')) continue
      Object.defineProperty(scripts, template.id.slice(0, -3).replace(/[^A-Za-z0-9]/g, '_'), { enumerable: true, get: () => template.body })
    }
    return scripts
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
  private readonly entries = new Map<K, { value: V; size: number }>()
  private bytes = 0
  constructor(
    private readonly capacity: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
    private readonly sizeOf: (key: K, value: V) => number = () => 0,
  ) {}

  get(key: K): V | undefined {
    return this.entries.get(key)?.value
  }

  /** Adds an entry, evicting the oldest ones until both bounds hold (an entry larger than the byte bound is not kept). */
  set(key: K, value: V): void {
    const size = this.sizeOf(key, value)
    if (size > this.maxBytes) return
    this.delete(key)
    while (this.entries.size > 0 && (this.entries.size >= this.capacity || this.bytes + size > this.maxBytes)) this.delete(this.entries.keys().next().value!)
    this.entries.set(key, { value, size })
    this.bytes += size
  }

  private delete(key: K): void {
    const entry = this.entries.get(key)
    if (!entry) return
    this.entries.delete(key)
    this.bytes -= entry.size
  }
}

/** Renders kept per catalog snapshot at most: 64 MiB of text. */
const RENDER_CACHE_BYTES = 64 * 1024 * 1024

/** The text length of a cached render (a script, or an Ignition config's body, with its secret flag). */
function renderedLength(value: unknown): number {
  const rendered = (value as { value?: unknown }).value
  if (typeof rendered === 'string') return rendered.length
  const body = (rendered as { body?: unknown } | undefined)?.body
  return typeof body === 'string' ? body.length : 0
}
