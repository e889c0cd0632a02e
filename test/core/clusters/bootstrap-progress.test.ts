import t from 'tap'
import { BootstrapProgressService, endpointAddresses, type BootstrapProgress, type BootstrapRepository } from '../../../src/core/clusters/bootstrap-progress.ts'

t.test('the endpoint answers the members whose API servers run; before any does, every installed one', async (t) => {
  const member = (ip: string | null, installed: boolean, phase: 'running' | 'done' | 'failed' | null) => ({ ip, installed, phase })
  t.same(endpointAddresses([member('10.0.0.3', true, 'running'), member('10.0.0.1', true, 'done'), member('10.0.0.2', true, 'failed')]), ['10.0.0.1'])
  t.same(endpointAddresses([member('10.0.0.2', true, null), member('10.0.0.1', true, 'running'), member('10.0.0.3', false, null)]), ['10.0.0.1', '10.0.0.2'], 'nobody done yet: every installed member')
  t.same(endpointAddresses([member(null, true, 'done'), member('10.0.0.2', false, 'done')]), [], 'no address, or not installed: not answered')
  const probed = (ip: string, answering: boolean | undefined) => ({ ...member(ip, true, 'done'), answering })
  t.same(endpointAddresses([probed('10.0.0.1', true), probed('10.0.0.2', false), probed('10.0.0.3', undefined)]), ['10.0.0.1', '10.0.0.3'], 'a member whose /readyz failed the last probe is left out; one not probed yet is in')
  t.same(endpointAddresses([probed('10.0.0.1', false), probed('10.0.0.2', false)]), ['10.0.0.1', '10.0.0.2'], 'every probe failed: the done members all the same, never an empty answer')
})

t.test('reports: attempts count the runs, the last output stays readable, a machine in no cluster is refused', async (t) => {
  const saved = new Map<string, BootstrapProgress>()
  const repository: BootstrapRepository = {
    findMember: async (uuid) => (uuid === 'm1' ? { cluster: 'a', hostname: 'a-cp-1' } : undefined),
    find: async (uuid) => saved.get(uuid),
    save: async (progress) => void saved.set(progress.uuid, progress),
    list: async () => [...saved.values()],
    transaction: (work) => work(repository),
  }
  const told: string[] = []
  const service = new BootstrapProgressService(repository, () => new Date('2027-01-01T00:00:00Z'), (progress) => told.push(progress.phase))
  await service.report('m1', { phase: 'running', command: 'init', message: 'kubeadm init' })
  await service.report('m1', { phase: 'failed', command: 'init', message: 'exit 3', log: 'the error' })
  await service.report('m1', { phase: 'waiting_for_endpoint', command: 'init', message: 'waiting' })
  t.match(saved.get('m1'), { phase: 'waiting_for_endpoint', attempts: 1, log: 'the error' })
  await service.report('m1', { phase: 'running', command: 'init', message: 'kubeadm init' })
  t.match(saved.get('m1'), { phase: 'running', attempts: 2, log: null }, 'a new run starts without the old output')
  t.same(told, ['running', 'failed', 'waiting_for_endpoint', 'running'])
  await t.rejects(service.report('m2', { phase: 'done', command: 'join', message: '' }), { code: 'NOT_A_CLUSTER_MEMBER' })
  await t.rejects(service.report('m1', { phase: 'done', command: 'join', message: 'x'.repeat(1001) }), { code: 'INVALID_BOOTSTRAP_REPORT' })
  await t.rejects(service.report('m1', { phase: 'done', command: 'join', message: '', extra: 1 }), { code: 'INVALID_BOOTSTRAP_REPORT' })
  t.equal(told.length, 4, 'refused reports tell nobody')
})
