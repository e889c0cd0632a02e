import t from 'tap'
import { OriginHealthBoard, type OriginProbe } from '../../src/core/proxy/origin-health.ts'
import { parseRouteDocument, type ProxyRoute } from '../../src/core/proxy/proxy-route.ts'
import { checkOrigins } from '../../src/jobs/proxy-health-loop.ts'
import { sleep } from '../helpers/wait.ts'

const route = (id: string, document: Record<string, unknown>): ProxyRoute => ({ id, ...parseRouteDocument(document).spec, createdAt: 't', updatedAt: 't' })

t.test('one probe per origin, certificate policy and health path; bounded concurrency; stale answers dropped', async (t) => {
  const routes = [
    route('a', { match: '/a/', origin: 'http://10.0.0.1:80' }),
    route('b', { match: '/b/', origin: 'http://10.0.0.1' }), // the same origin, written differently
    route('c', { match: '/c/', origin: 'http://10.0.0.1', health_check_path: '/healthz' }),
    route('d', { match: '/d/', origin: 'http://10.0.0.2' }),
    route('gone', { match: '/gone/', origin: 'http://10.0.0.3' }),
  ]
  let running = 0
  let most = 0
  const asked: string[] = []
  const probe: OriginProbe = {
    probe: async (target) => {
      asked.push(`${target.origin}${target.healthCheckPath ?? ''}`)
      most = Math.max(most, ++running)
      await sleep(10)
      running--
      return target.origin.endsWith('.2') ? { ok: false, error: 'refused' } : { ok: true }
    },
  }
  const board = new OriginHealthBoard()
  const report = await checkOrigins(routes, probe, board, { timeoutMs: 100, concurrency: 2, stillCurrent: (candidate) => candidate.id !== 'gone' })
  t.same(asked.sort(), ['http://10.0.0.1', 'http://10.0.0.1/healthz', 'http://10.0.0.2', 'http://10.0.0.3'])
  t.equal(most, 2, 'at most `concurrency` probes at once')
  t.match(report, { routes: 5, probes: 4, healthy: 3, unhealthy: 1 })
  t.same(['a', 'b', 'c', 'd', 'gone'].map((id) => board.get(id).status), ['healthy', 'healthy', 'healthy', 'unhealthy', 'unknown'])
  t.equal(board.get('d').lastError, 'refused')
})
