import t from 'tap'
import { conflict } from '../../../src/core/errors.ts'
import { OriginHealthBoard, type HealthChange } from '../../../src/core/proxy/origin-health.ts'
import type { ProxyRoute } from '../../../src/core/proxy/proxy-route.ts'
import { ProxyRouteService, type ProxyRouteRepository } from '../../../src/core/proxy/proxy-route-service.ts'

/** An in-memory store with the same uniqueness rules as the table; a transaction works on a copy. */
function memoryRepository(rows: ProxyRoute[] = []): ProxyRouteRepository & { rows: ProxyRoute[] } {
  const build = (state: { rows: ProxyRoute[] }): ProxyRouteRepository & { rows: ProxyRoute[] } => ({
    get rows() {
      return state.rows
    },
    list: async () => [...state.rows].sort((a, b) => (a.id < b.id ? -1 : 1)),
    insert: async (route) => {
      if (state.rows.some((row) => row.id === route.id || (row.host === route.host && row.pathPrefix === route.pathPrefix))) throw conflict('PROXY_ROUTE_EXISTS', 'taken')
      state.rows = [...state.rows, route]
    },
    update: async (route) => {
      state.rows = state.rows.map((row) => (row.id === route.id ? route : row))
    },
    delete: async (id) => {
      const before = state.rows.length
      state.rows = state.rows.filter((row) => row.id !== id)
      return state.rows.length < before
    },
    transaction: async (work) => {
      const copy = { rows: [...state.rows] }
      const result = await work(build(copy))
      state.rows = copy.rows
      return result
    },
  })
  return build({ rows })
}

const clock = () => new Date('2026-11-21T10:00:00.000Z')

t.test('create, replace, remove; the table follows every change', async (t) => {
  const repository = memoryRepository()
  const published: number[] = []
  const service = new ProxyRouteService(repository, new OriginHealthBoard(), { clock, changed: (routes) => published.push(routes.length) })
  await service.load()
  const shop = await service.create({ match: '/shop', origin: 'http://10.0.0.5:8080' })
  t.match(shop, { id: 'shop', kind: 'path', pathPrefix: '/shop/', createdAt: '2026-11-21T10:00:00.000Z', health: { status: 'unknown' } })
  t.equal((await service.create({ match: 'shop.example.com/api/', origin: 'http://10.0.0.6' })).id, 'shop.example.com-api')
  t.equal((await service.create({ match: '/shop/v2/', origin: 'http://10.0.0.7' })).id, 'shop-v2')
  t.equal((await service.create({ match: '/', origin: 'http://10.0.0.8' })).id, 'root')
  t.equal(service.table().select('shop.example.com', '/api/x')?.id, 'shop.example.com-api')
  t.equal(service.table().select('other', '/shop/v2/x')?.id, 'shop-v2')

  const replaced = await service.replace('shop', { match: '/store/', origin: 'http://10.0.0.5:8080', strip_prefix: true })
  t.match(replaced, { id: 'shop', pathPrefix: '/store/', stripPrefix: true })
  t.equal(service.table().select(undefined, '/shop/x')?.id, 'root', 'the old prefix is gone from the table')
  await service.remove('shop')
  t.equal(service.list().length, 3)
  t.same(published, [0, 1, 2, 3, 4, 4, 3], 'told after load and after every write')
})

t.test('bad input and conflicts change nothing; mexosagent batches are all or nothing', async (t) => {
  const repository = memoryRepository()
  const service = new ProxyRouteService(repository, new OriginHealthBoard(), { clock })
  await service.load()
  await service.create({ id: 'a', match: '/a/', origin: 'http://x' })
  await t.rejects(service.create({ match: '/a', origin: 'http://y' }), { code: 'PROXY_ROUTE_EXISTS', message: 'route "a" already matches /a/; change or delete it instead' })
  await t.rejects(service.replace('missing', { match: '/m/', origin: 'http://x' }), { code: 'PROXY_ROUTE_NOT_FOUND' })
  await t.rejects(service.remove('missing'), { code: 'PROXY_ROUTE_NOT_FOUND' })
  await t.rejects(service.mexosagent({ message: 'add', proxies: [{ path: '/b/', origin: 'http://x' }, { path: '/a/', origin: 'http://x' }] }), { code: 'PROXY_ROUTE_EXISTS' })
  await t.rejects(service.mexosagent({ message: 'delete', proxies: [{ path: '/a/' }, { path: '/zzz/' }] }), { code: 'PROXY_ROUTE_NOT_FOUND' })
  await t.rejects(service.mexosagent({ message: 'add', proxies: [{ path: '/c/', origin: 'http://x' }, { path: '/c', origin: 'http://y' }] }), { code: 'PROXY_ROUTE_EXISTS' }, 'duplicates within one batch')
  await t.rejects(service.mexosagent({ message: 'add' }), { code: 'INVALID_PROXY_REQUEST' })
  t.same(repository.rows.map((route) => route.id), ['a'])
  const added = await service.mexosagent({ message: 'add', proxies: [{ path: '/b', origin: 'http://x', name: 'bee' }] })
  t.match(added.routes, [{ id: 'bee', pathPrefix: '/b/', stripPrefix: true, preserveHost: true }])
  t.same((await service.mexosagent({ message: 'delete', proxies: [{ path: '/b/' }, { path: '/b' }] })).routes.map((route) => route.id), ['bee'], 'one route named twice is deleted once')
})

t.test('origin health: transitions are reported once, a changed origin starts over', async (t) => {
  let now = 1_000
  const changes: HealthChange[] = []
  const board = new OriginHealthBoard(() => now, (change) => changes.push(change))
  const service = new ProxyRouteService(memoryRepository(), board, { clock })
  await service.load()
  await service.create({ id: 'a', match: '/a/', origin: 'http://x' })
  board.recordFailure('a', 'connection refused')
  now += 1000
  board.recordFailure('a', 'still refused')
  t.match(service.get('a').health, { status: 'unhealthy', since: new Date(1000).toISOString(), lastError: 'still refused', checkedAtMs: 2000 })
  board.recordSuccess('a')
  board.recordSuccess('a')
  t.same(changes.map((change) => `${change.from}->${change.to}`), ['unknown->unhealthy', 'unhealthy->healthy'])
  await service.replace('a', { match: '/a/', origin: 'http://y' })
  t.equal(service.get('a').health.status, 'unknown', 'another origin is not known yet')
  board.recordSuccess('ghost')
  board.retain(['a'])
  t.equal(board.get('ghost').status, 'unknown')
})
