import type { Selectable } from 'kysely'
import { conflict } from '../../core/errors.ts'
import type { ProxyRoute } from '../../core/proxy/proxy-route.ts'
import type { ProxyRouteRepository } from '../../core/proxy/proxy-route-service.ts'
import type { Db, ProxyRoutesTable } from '../database.ts'
import { inTransaction, uniqueViolation } from '../transactions.ts'

const toRoute = (row: Selectable<ProxyRoutesTable>): ProxyRoute => ({
  id: row.id,
  kind: row.kind,
  host: row.host,
  pathPrefix: row.path_prefix,
  origin: row.origin,
  stripPrefix: row.strip_prefix === 1,
  preserveHost: row.preserve_host === 1,
  tlsVerify: row.tls_verify === 1,
  healthCheckPath: row.health_check_path,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
})

const columns = (route: ProxyRoute) => ({
  kind: route.kind,
  host: route.host,
  path_prefix: route.pathPrefix,
  origin: route.origin,
  strip_prefix: route.stripPrefix ? 1 : 0,
  preserve_host: route.preserveHost ? 1 : 0,
  tls_verify: route.tlsVerify ? 1 : 0,
  health_check_path: route.healthCheckPath,
  updated_at: route.updatedAt,
})

/** The core's proxy route port over kysely. The unique index is the last word on duplicates. */
export function proxyRouteRepository(db: Db): ProxyRouteRepository {
  return {
    list: async () => (await db.selectFrom('proxy_routes').selectAll().orderBy('id').execute()).map(toRoute),
    insert: async (route) => {
      try {
        await db.insertInto('proxy_routes').values({ id: route.id, created_at: route.createdAt, ...columns(route) }).execute()
      } catch (error) {
        throw duplicate(error, route) ?? error
      }
    },
    update: async (route) => {
      try {
        await db.updateTable('proxy_routes').set(columns(route)).where('id', '=', route.id).execute()
      } catch (error) {
        throw duplicate(error, route) ?? error
      }
    },
    delete: async (id) => Number((await db.deleteFrom('proxy_routes').where('id', '=', id).executeTakeFirst()).numDeletedRows) > 0,
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(proxyRouteRepository(trx))),
  }
}

function duplicate(error: unknown, route: ProxyRoute) {
  const violation = uniqueViolation(error)
  if (violation === 'primary-key') return conflict('PROXY_ROUTE_EXISTS', `a proxy route with id "${route.id}" already exists`, { id: route.id })
  if (violation === 'unique') return conflict('PROXY_ROUTE_EXISTS', `another route already matches ${route.host}${route.pathPrefix}`, { id: route.id })
  return undefined
}
