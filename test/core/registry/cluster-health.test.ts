import t from 'tap'
import { classifyHealth, type HealthSample } from '../../../src/core/registry/cluster-health.ts'

const ok = (overrides: Partial<HealthSample> = {}): HealthSample => ({ apiReady: true, kubernetesVersion: 'v1.31.4', nodes: { ready: 3, total: 3, notReady: [] }, pods: { running: 40, total: 42 }, durationMs: 12, ...overrides })

t.test('Healthy, Degraded and Unreachable, with the reason', async (t) => {
  t.same(classifyHealth(ok()), { status: 'Healthy', reason: 'AllReady', message: '3/3 nodes Ready, 40/42 pods running' })
  t.match(classifyHealth(ok({ nodes: { ready: 1, total: 3, notReady: ['b', 'c'] } })), { status: 'Degraded', reason: 'NodesNotReady', message: '2 of 3 nodes not Ready (b, c), 40/42 pods running' })
  const many = Array.from({ length: 9 }, (_, index) => `n${index}`)
  t.match(classifyHealth(ok({ nodes: { ready: 0, total: 9, notReady: many } })).message, /\(n0, n1, n2, n3, n4 and 4 more\)/)
  t.match(classifyHealth(ok({ nodes: { ready: 0, total: 0, notReady: [] } })), { status: 'Degraded', reason: 'NoNodes' })
  t.match(classifyHealth(ok({ apiReady: false, apiMessage: '[-]etcd failed' })), { status: 'Degraded', reason: 'APIServerNotReady', message: /etcd failed/ })
  for (const [kind, reason] of [
    ['timeout', 'Timeout'],
    ['connection', 'ConnectionFailed'],
    ['tls', 'TLSError'],
    ['unauthorized', 'Unauthorized'],
  ] as const) {
    t.match(classifyHealth({ apiReady: false, failure: { kind, message: 'x' }, durationMs: 1 }), { status: 'Unreachable', reason }, kind)
  }
  t.match(classifyHealth({ apiReady: false, failure: { kind: 'unauthorized', message: '401 Unauthorized' }, durationMs: 1 }).message, /rejected the engine's credentials: 401/)
  t.match(classifyHealth(ok({ failure: { kind: 'forbidden', message: '403 Forbidden: nodes is forbidden' } })), { status: 'Degraded', reason: 'Forbidden' }, 'answers, but the credentials may not see enough')
  t.match(classifyHealth(ok({ failure: { kind: 'server_error', message: '500: etcdserver: request timed out' } })), { status: 'Degraded', reason: 'ServerError' })
})
