import type { AccessLevel } from './roles.ts'
import type { OwnedObject } from './tenancy.ts'

/**
 * What a route needs, declared by the route itself where it is registered (`config.access`); the
 * HTTP layer decides every request on the policy of the route the router matched, and refuses to
 * start with a route that declares none.
 *
 * - `public`: no credential. Booting machines (firmware has none), health, metrics, the API docs and
 *   the web UI's shells; `audited` for the few that change something (the UI login).
 * - `machine`: a machine credential, each machine its own (from its Ignition); the route acts for that
 *   machine only. `credentialIn` says where the request carries it.
 * - `read` / `operate` / `administer`: an API token whose role holds the level (roles.ts).
 *   `scope: 'fleet'`: the route acts on what belongs to the whole fleet (content, DHCP, locks, DNS,
 *   the proxy, rollouts, the scheduler, flavors, chart deletion): tenant tokens get 403.
 *   `scope: 'tenant'`: tenant tokens may call it and see their own objects only; `owner` names the
 *   object the request is about, so that another tenant's answers 404 before the handler runs.
 */
export type RoutePolicy = PublicPolicy | MachinePolicy | TokenPolicy

export interface PublicPolicy {
  access: 'public'
  audited?: boolean
}

export interface MachinePolicy {
  access: 'machine'
  /** `authorization`: `Bearer <credential>`; `path`: the route's `:credential` parameter (FleetLock base URLs). */
  credentialIn: 'authorization' | 'path'
}

export interface TokenPolicy {
  access: AccessLevel
  scope: 'fleet' | 'tenant'
  owner?: (params: Record<string, string>, query: Record<string, unknown>) => OwnedObject
}

type Owner = TokenPolicy['owner']
const tokenPolicy = (access: AccessLevel, scope: TokenPolicy['scope'], owner?: Owner): TokenPolicy => ({ access, scope, ...(owner ? { owner } : {}) })

/** Declarations, one per route: `{ config: { access: read('tenant', clusterOwner) } }`. */
export const publicAccess = (options: { audited?: boolean } = {}): PublicPolicy => ({ access: 'public', ...options })
export const machineAccess = (credentialIn: MachinePolicy['credentialIn']): MachinePolicy => ({ access: 'machine', credentialIn })
export const read = (scope: TokenPolicy['scope'] = 'fleet', owner?: Owner) => tokenPolicy('read', scope, owner)
export const operate = (scope: TokenPolicy['scope'] = 'fleet', owner?: Owner) => tokenPolicy('operate', scope, owner)
export const administer = (scope: TokenPolicy['scope'] = 'fleet', owner?: Owner) => tokenPolicy('administer', scope, owner)

/** The objects routes name in their parameters. */
export const clusterOwner = (params: Record<string, string>): OwnedObject => ({ kind: 'cluster', name: params.name ?? '' })
export const releaseOwner = (params: Record<string, string>): OwnedObject => ({ kind: 'release', namespace: params.namespace ?? '', name: params.name ?? '' })
// The handlers read a uuid in any case (RFC 4122): so must the tenant check, or `/machines/<UPPER>` would pass it.
export const machineOwner = (params: Record<string, string>): OwnedObject => ({ kind: 'machine', uuid: (params.uuid ?? '').toLowerCase() })
/** Changes answer the short "does not exist" of the machine services, not the read's longer one. */
export const machineChangeOwner = (params: Record<string, string>): OwnedObject => ({ kind: 'machine', uuid: (params.uuid ?? '').toLowerCase(), brief: true })
export const tokenOwner = (params: Record<string, string>): OwnedObject => ({ kind: 'token', name: params.name ?? '' })
/** optikon's DELETE /releases/{name} names the namespace in the query (default "default"). */
export const optikonReleaseOwner = (params: Record<string, string>, query: Record<string, unknown>): OwnedObject => ({
  kind: 'release',
  namespace: typeof query.namespace === 'string' && query.namespace ? query.namespace : 'default',
  name: params.name ?? '',
})

/** Whether a call changes something (and so is audited when it needs a token). */
export const isMutating = (method: string) => method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS'

/** Whether calls of a route under this policy go to the audit log. */
export const isAudited = (method: string, policy: RoutePolicy): boolean =>
  isMutating(method) && (policy.access === 'public' ? policy.audited === true : policy.access !== 'machine')
