import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import type { Db } from '../../src/storage/database.ts'
import { auth } from './engine.ts'

/**
 * Objects that the sample route parameters name, for sweeps over every route: a call let through
 * would change one of them and so show in `snapshot`.
 */
export const SEEDED_MACHINE_UUID = '4c4c4544-0042-3510-8050-b4c04f4e3432'
const SAMPLE_PARAMS: Record<string, string> = {
  name: 'seeded',
  namespace: 'shop',
  id: 'seeded',
  uuid: SEEDED_MACHINE_UUID,
  mac: '52:54:00:00:00:01',
  group: 'seeded',
  holder: 'holder-1',
  kind: 'ignition',
  '*': 'seeded.ign',
  version: '1.0.0',
  role: 'node',
  file: 'web-1.0.0.tgz',
  credential: 'x',
}

/** A route pattern with its parameters filled in with the seeded objects' names. */
export const concrete = (url: string) => url.replace(/:([A-Za-z]+)/g, (_match, param: string) => SAMPLE_PARAMS[param] ?? 'x').replace('*', SAMPLE_PARAMS['*']!)

/** Every row of every table (the audit log aside, which grows by design; job leases, renewed on a timer; and a token's last use), hashed. */
export async function snapshot(store: Db): Promise<Record<string, string>> {
  const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%' and name not like 'audit_%' and name <> 'job_leases' order by name`.execute(store)
  const digests: Record<string, string> = {}
  for (const { name } of tables.rows) {
    const rows = (await sql.raw<Record<string, unknown>>(`select * from "${name}" order by rowid`).execute(store)).rows.map((row) => {
      const { last_used_at: _lastUsed, ...rest } = row
      return rest
    })
    digests[name] = `${rows.length}:${createHash('sha256').update(JSON.stringify(rows)).digest('hex').slice(0, 16)}`
  }
  return digests
}

export async function createToken(app: FastifyInstance, name: string, role: string, tenant?: string): Promise<string> {
  const created = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth, payload: { name, role, ...(tenant ? { tenant } : {}) } })
  if (created.statusCode !== 201) throw new Error(`token ${name}: ${created.body}`)
  return (created.json() as { token: string }).token
}

export interface SweepTokens {
  viewer: string
  operator: string
  admin: string
  tenantAdmin: string
}

/** Seeds one object of every kind a route parameter names, and a token of every role; throws if a seed fails. */
export async function seedRouteObjects(app: FastifyInstance): Promise<SweepTokens> {
  const seed = async (method: 'POST' | 'PUT', url: string, payload: unknown, headers: Record<string, string> = auth) => {
    const answer = await app.inject({ method, url, headers, payload: payload as object })
    if (answer.statusCode >= 300) throw new Error(`seed ${method} ${url}: ${answer.statusCode} ${answer.body.slice(0, 200)}`)
  }
  await seed('POST', '/discovery', {
    'boot-info': { uuid: SEEDED_MACHINE_UUID, mac: '52:54:00:00:00:01', 'random-id': 'r1' },
    interfaces: [{ name: 'eth0', mac: '52:54:00:00:00:01', ipv4: '10.0.0.11', cidrv4: '10.0.0.11/24' }],
    disks: [{ path: '/dev/vda', 'size-bytes': 10737418240 }],
  }, {})
  await seed('POST', '/api/v1/flavors', { name: 'seeded', control_plane_count: 1, nodes_max: 2 })
  await seed('POST', '/api/v1/clusters', { name: 'seeded', labels: { app: 'shop' }, server: 'https://127.0.0.1:9', credentials: { token: 'seeded-cluster-credential-0123456789' } })
  await seed('PUT', '/api/v1/locks/seeded', { slots: 2 })
  await seed('POST', '/api/v1/proxy/routes', { id: 'seeded', match: '/seeded/', origin: 'http://127.0.0.1:9' })
  await seed('PUT', '/api/v1/dns/locations', [{ subnet: '10.0.0.0/8', site: 'par1', latitude: 48.85, longitude: 2.35 }])
  await seed('PUT', '/api/v1/dhcp/reservations/52:54:00:00:00:01', { ip: '10.0.0.50' })
  await seed('POST', '/api/v1/groups', { id: 'seeded', name: 'seeded', profile: 'discovery', selector: { mac: '52:54:00:00:00:02' } })
  const tokens = {
    viewer: await createToken(app, 'viewer-1', 'viewer'),
    operator: await createToken(app, 'operator-1', 'operator'),
    admin: await createToken(app, 'admin-1', 'admin'),
    tenantAdmin: await createToken(app, 'tenant-admin-1', 'admin', 'acme'),
  }
  await createToken(app, 'seeded', 'viewer')
  return tokens
}
