import type { AccessLevel } from './roles.ts'
import type { OwnedObject } from './tenancy.ts'

/**
 * What each route of the admin surface needs, in one table that is read as a whole: the access
 * level (which role), and whether tenant tokens may use it at all.
 *
 * - `scope: 'fleet'`: the route acts on what belongs to the whole fleet (content, DHCP, locks, DNS,
 *   the proxy, rollouts, the scheduler, flavors, chart deletion): tenant tokens get 403.
 * - `scope: 'tenant'`: tenant tokens may call it and see their own objects only; `owner` names the
 *   object the request is about, so that another tenant's answers 404 before the handler runs.
 *
 * A route not in the table (and not declaring `config.access` itself) gets the safest policy:
 * reads and changes for tenant-less admins only; test/transports/http/authorization.test.ts fails
 * until it is classified here.
 */
export interface RoutePolicy {
  /** `public`: no token (e.g. the UI login, which checks the token itself); still audited when it changes something. */
  access: AccessLevel | 'public'
  scope: 'fleet' | 'tenant'
  owner?: (params: Record<string, string>, query: Record<string, unknown>) => OwnedObject
}

type Table = Record<string, RoutePolicy>

const read = (scope: RoutePolicy['scope'] = 'fleet', owner?: RoutePolicy['owner']): RoutePolicy => ({ access: 'read', scope, ...(owner ? { owner } : {}) })
const operate = (scope: RoutePolicy['scope'] = 'fleet', owner?: RoutePolicy['owner']): RoutePolicy => ({ access: 'operate', scope, ...(owner ? { owner } : {}) })
const administer = (scope: RoutePolicy['scope'] = 'fleet', owner?: RoutePolicy['owner']): RoutePolicy => ({ access: 'administer', scope, ...(owner ? { owner } : {}) })

const cluster = (params: Record<string, string>): OwnedObject => ({ kind: 'cluster', name: params.name ?? '' })
const release = (params: Record<string, string>): OwnedObject => ({ kind: 'release', namespace: params.namespace ?? '', name: params.name ?? '' })
const machine = (params: Record<string, string>): OwnedObject => ({ kind: 'machine', uuid: params.uuid ?? '' })
const machineChange = (params: Record<string, string>): OwnedObject => ({ kind: 'machine', uuid: params.uuid ?? '', brief: true })
// optikon's DELETE /releases/{name} names the namespace in the query (default "default").
const optikonRelease = (params: Record<string, string>, query: Record<string, unknown>): OwnedObject => ({
  kind: 'release',
  namespace: typeof query.namespace === 'string' && query.namespace ? query.namespace : 'default',
  name: params.name ?? '',
})

/** The registry's routes, served under /api/v1 and, for optikon's users, at the root. */
const registry = (prefix: string): Table => ({
  [`GET ${prefix}/clusters`]: read('tenant'),
  [`POST ${prefix}/clusters`]: operate('tenant'),
  [`GET ${prefix}/clusters/:name`]: read('tenant', cluster),
  [`PUT ${prefix}/clusters/:name`]: operate('tenant', cluster),
  [`DELETE ${prefix}/clusters/:name`]: operate('tenant', cluster),
  [`GET ${prefix}/clusters/:name/health`]: read('tenant', cluster),
  [`GET ${prefix}/clusters/:name/profile`]: read('tenant', cluster),
  // A sweep checks, and answers about, every cluster.
  [`POST ${prefix}/clusters/health-sweep`]: operate(),
})

const content = (collection: string, item: string): Table => ({
  [`GET /api/v1/${collection}`]: read(),
  [`GET /api/v1/${item}`]: read(),
  [`POST /api/v1/${collection}`]: administer(),
  [`PUT /api/v1/${item}`]: administer(),
  [`DELETE /api/v1/${item}`]: administer(),
})

export const ROUTE_POLICIES: Readonly<Table> = {
  // Content (matchbox groups, profiles, templates) shapes what every machine boots: admins change it.
  ...content('groups', 'groups/:id'),
  ...content('profiles', 'profiles/:id'),
  'GET /api/v1/templates': read(),
  'GET /api/v1/templates/:kind/*': read(),
  'PUT /api/v1/templates/:kind/*': administer(),
  'DELETE /api/v1/templates/:kind/*': administer(),
  'GET /api/v1/selection': read(),

  'GET /api/v1/dhcp/leases': read(),
  'GET /api/v1/dhcp/reservations': read(),
  'PUT /api/v1/dhcp/reservations/:mac': operate(),
  'DELETE /api/v1/dhcp/reservations/:mac': operate(),

  // Machines belong to a tenant through their cluster.
  'GET /api/v1/machines': read('tenant'),
  'GET /api/v1/machines/:uuid': read('tenant', machine),
  'GET /api/v1/machines/:uuid/boot': read('tenant', machine),
  'PUT /api/v1/machines/:uuid/labels': operate('tenant', machineChange),
  'POST /api/v1/machines/:uuid/transitions': operate('tenant', machineChange),
  'GET /api/v1/discovery': read('tenant'),

  // Flavors are a shared catalog of cluster shapes: every tenant reads it, the fleet writes it.
  'GET /api/v1/flavors': read('tenant'),
  'POST /api/v1/flavors': operate(),
  'GET /api/v1/clusters/:name/certificates': read('tenant', cluster),
  'GET /api/v1/scheduler': read(),
  'GET /api/v1/scheduler/available': read(),
  'GET /api/v1/scheduler/ip-list/:role': read(),
  'GET /api/v1/scheduler/:role': read(),
  'POST /api/v1/scheduler/run': operate(),
  ...registry('/api/v1'),
  ...registry(''),

  // Charts are a shared catalog: everyone reads, operators add; removing one could break another
  // tenant's releases, so only the fleet removes.
  'GET /api/v1/charts': read('tenant'),
  'POST /api/v1/charts': operate('tenant'),
  'DELETE /api/v1/charts/:name/:version': operate(),
  'GET /charts/index.yaml': read('tenant'),
  'GET /charts/:file': read('tenant'),
  'GET /api/v1/releases': read('tenant'),
  'POST /api/v1/releases': operate('tenant'),
  'GET /api/v1/releases/:namespace/:name': read('tenant', release),
  'PUT /api/v1/releases/:namespace/:name': operate('tenant', release),
  'DELETE /api/v1/releases/:namespace/:name': operate('tenant', release),
  'POST /api/v1/releases/:namespace/:name/rollback': operate('tenant', release),
  'POST /api/v1/releases/:namespace/:name/pause': operate('tenant', release),
  'POST /api/v1/releases/:namespace/:name/resume': operate('tenant', release),
  'POST /api/v1/releases/:namespace/:name/retry': operate('tenant', release),
  // optikon's release routes; its PUT names the release in the form, checked by the handler.
  'GET /releases': read('tenant'),
  'POST /releases': operate('tenant'),
  'PUT /releases': operate('tenant'),
  'DELETE /releases/:name': operate('tenant', optikonRelease),

  'GET /api/v1/dns/locations': read(),
  'PUT /api/v1/dns/locations': operate(),
  // App names with the clusters behind them: every tenant's.
  'GET /api/v1/dns/names': read(),

  // Lock groups and rollouts span clusters (the default lock group is shared): the fleet's.
  'GET /api/v1/locks': read(),
  'GET /api/v1/locks/:group': read(),
  'PUT /api/v1/locks/:group': operate(),
  'DELETE /api/v1/locks/:group': operate(),
  'DELETE /api/v1/locks/:group/holders/:holder': operate(),
  'GET /api/v1/rollouts': read(),
  'GET /api/v1/rollouts/:id': read(),
  'POST /api/v1/rollouts': operate(),
  'POST /api/v1/rollouts/:id/pause': operate(),
  'POST /api/v1/rollouts/:id/resume': operate(),
  'POST /api/v1/rollouts/:id/cancel': operate(),
  'GET /lifecycle/ignition': read(),

  'GET /api/v1/proxy/routes': read(),
  'GET /api/v1/proxy/routes/:id': read(),
  'POST /api/v1/proxy/routes': operate(),
  'PUT /api/v1/proxy/routes/:id': operate(),
  'DELETE /api/v1/proxy/routes/:id': operate(),

  // mexosagent: provisions carry a tenant; /v1/proxy programs the shared proxy.
  'POST /v1/provision': operate('tenant'),
  'POST /v1/destroy': operate('tenant'),
  'POST /v1/proxy': operate(),

  // Tenant admins manage their own tenant's tokens and read their tenant's audit entries.
  'GET /api/v1/tokens': administer('tenant'),
  'POST /api/v1/tokens': administer('tenant'),
  'DELETE /api/v1/tokens/:name': administer('tenant', (params) => ({ kind: 'token', name: params.name ?? '' })),
  'GET /api/v1/audit': administer('tenant'),

  // Backups hold every secret the engine keeps (sealed) and the whole inventory.
  'GET /api/v1/backup': administer(),
  'GET /api/v1/inventory/export': administer(),
  'POST /api/v1/inventory/import': administer(),
  'POST /backup/db': administer(),

  // The web UI's login checks the token itself; attempts are audited.
  'POST /ui/login': { access: 'public', scope: 'tenant' },
  'POST /ui/logout': { access: 'public', scope: 'tenant' },
}

const isRead = (method: string) => method === 'GET' || method === 'HEAD'

/** What a route needs; `classified` false when it is in no table (and so gets the safest policy). */
export function policyOf(method: string, url: string): { policy: RoutePolicy; classified: boolean } {
  // HEAD routes are fastify's automatic twins of GET routes.
  const found = ROUTE_POLICIES[`${method === 'HEAD' ? 'GET' : method} ${url}`]
  if (found) return { policy: found, classified: true }
  return { policy: administer(), classified: false }
}

/** Whether a call changes something (and so is audited). */
export const isMutating = (method: string) => !isRead(method) && method !== 'OPTIONS'
