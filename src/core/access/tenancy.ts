import { forbidden, invalid, notFound } from '../errors.ts'

/**
 * Tenants (mexosagent's: a tenant owns clusters). Clusters (registry entries, provisioned or added
 * by hand) and releases carry their tenant; a machine belongs to the tenant of the cluster it is a
 * member of, and a machine in no cluster belongs to the fleet. A token with a tenant sees and acts
 * on its tenant's objects only; another tenant's object answers exactly as if it did not exist. A
 * token without a tenant (the fleet's operators) sees everything; what it creates belongs to the
 * fleet unless it names a tenant.
 */
export const TENANT_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
const TENANT_RE = new RegExp(TENANT_PATTERN)

/** An object a route acts on, as named by the request. */
export type OwnedObject =
  | { kind: 'cluster'; name: string }
  | { kind: 'release'; namespace: string; name: string }
  /** brief: the routes whose own 404 is the short message (changes), not the one of a read. */
  | { kind: 'machine'; uuid: string; brief?: boolean }
  | { kind: 'token'; name: string }

/** Where tenants are recorded; storage implements it. `undefined`: no such object. */
export interface TenantDirectory {
  tenantOf(object: OwnedObject): Promise<string | null | undefined>
  /** Every cluster's tenant, by cluster name. */
  clusterTenants(): Promise<Map<string, string | null>>
  /** The tenant of every machine that is a member of a cluster, by uuid (others belong to the fleet). */
  machineTenants(): Promise<Map<string, string | null>>
  stampCluster(name: string, tenant: string | null): Promise<void>
}

/** The 404 each kind answers when absent: word for word what the services answer, so that nothing tells the two apart. */
export function absent(object: OwnedObject) {
  switch (object.kind) {
    case 'cluster':
      return notFound('CLUSTER_NOT_FOUND', `cluster "${object.name}" does not exist`)
    case 'release':
      return notFound('RELEASE_NOT_FOUND', `release ${object.namespace}/${object.name} does not exist`)
    case 'machine':
      return notFound('MACHINE_NOT_FOUND', object.brief ? `machine ${object.uuid} does not exist` : `machine ${object.uuid} does not exist; it appears once it has sent a discovery report`)
    case 'token':
      return notFound('TOKEN_NOT_FOUND', `token "${object.name}" does not exist`)
  }
}

export function checkTenantName(tenant: string, at = 'tenant'): string {
  if (!TENANT_RE.test(tenant)) throw invalid('INVALID_TENANT', `${at}: "${tenant}" is not a tenant name (lowercase letters, digits and "-", at most 63, like a DNS label)`)
  return tenant
}

/** What one request's principal may see: every filter is the identity for a fleet token, with no read. */
export class TenantView {
  constructor(
    /** null: the whole fleet. */
    readonly tenant: string | null,
    private readonly directory: TenantDirectory,
  ) {}

  get isFleet(): boolean {
    return this.tenant === null
  }

  /** Whether an object owned by `owner` is visible. */
  sees(owner: string | null | undefined): boolean {
    return this.tenant === null || owner === this.tenant
  }

  /** 404 (as if absent) when the object exists and belongs to another tenant; absent objects pass (the route answers its own 404). */
  async require(object: OwnedObject): Promise<void> {
    if (this.tenant === null) return
    const owner = await this.directory.tenantOf(object)
    if (owner !== undefined && owner !== this.tenant) throw absent(object)
  }

  async clusters<T extends { name: string }>(items: readonly T[]): Promise<T[]> {
    if (this.tenant === null) return [...items]
    const tenants = await this.directory.clusterTenants()
    return items.filter((item) => tenants.get(item.name) === this.tenant)
  }

  /** Machines in a cluster of the tenant; machines in no cluster are the fleet's. */
  async machines<T>(items: readonly T[], uuidOf: (item: T) => string): Promise<T[]> {
    if (this.tenant === null) return [...items]
    const tenants = await this.directory.machineTenants()
    return items.filter((item) => tenants.get(uuidOf(item)) === this.tenant)
  }

  /** Releases carry their tenant (absent on rows from before tenants: the fleet's). */
  releases<T extends { tenant?: string | null }>(items: readonly T[]): T[] {
    return this.tenant === null ? [...items] : items.filter((item) => item.tenant === this.tenant)
  }

  /**
   * The tenant an object created now belongs to: a tenant token's own (naming another is 403); a
   * fleet token's choice, else the fleet's (null).
   */
  ownerForCreate(requested: unknown): string | null {
    if (requested !== undefined && requested !== null && typeof requested !== 'string') throw invalid('INVALID_TENANT', 'tenant: a tenant name (string) or null')
    const named = typeof requested === 'string' ? checkTenantName(requested) : null
    if (this.tenant === null) return named
    if (named !== null && named !== this.tenant) throw forbidden('FORBIDDEN', `a token of tenant "${this.tenant}" creates objects of its own tenant only, not of "${named}"`)
    return this.tenant
  }

  /** Splits an object body into the tenant it asks for and the rest (what the services parse). */
  claim(body: unknown): { body: unknown; tenant: string | null } {
    if (body === null || typeof body !== 'object' || Array.isArray(body) || !('tenant' in body)) return { body, tenant: this.ownerForCreate(undefined) }
    const { tenant, ...rest } = body as Record<string, unknown>
    return { body: rest, tenant: this.ownerForCreate(tenant) }
  }

  stampCluster(name: string, tenant: string | null): Promise<void> {
    return tenant === null ? Promise.resolve() : this.directory.stampCluster(name, tenant)
  }
}
