/**
 * The engine's rules over a cluster's etcd, on in-memory members: who leads, when a restarted member
 * counts as back (healthy, caught up with the leader, every other member healthy), and membership
 * changes that refuse to break the quorum (checked before the gateway is asked); then the engine's
 * access to etcd: the control-plane members' client URLs, its own client certificate kept in memory
 * and issued again before it expires (or when the cluster's etcd CA changed), and an operator's
 * short-lived one, with the real X.509 issuer.
 */
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import type { ClusterPki } from '../../../src/core/clusters/cluster-pki.ts'
import { EtcdAccess } from '../../../src/core/clusters/etcd-access.ts'
import { checkAddition, checkRemoval, EtcdQuorum, leaderOf, majorityOf, memberNotBack, type EtcdLook, type EtcdMemberView } from '../../../src/core/clusters/etcd-quorum.ts'
import type { PlacedMember } from '../../../src/core/clusters/schedule-plan.ts'
import { FixedEtcdGateway } from '../../fakes/etcd-gateway.ts'
import { ManualClock } from '../../fakes/manual-clock.ts'

const member = (name: string, id: string, status: Partial<EtcdMemberView['status']> = {}): EtcdMemberView => ({
  id,
  name,
  peerUrls: [`https://${name}:2380`],
  clientUrls: [`https://${name}:2379`],
  learner: false,
  status: { reachable: true, healthy: true, raftIndex: 1000, raftAppliedIndex: 1000, raftTerm: 2, leaderId: '1', version: '3.4.23', errors: [], ...status },
})
const down = (name: string, id: string) => member(name, id, { reachable: false, healthy: false, raftIndex: null, raftAppliedIndex: null, raftTerm: null, leaderId: null, version: null, errors: ['connect ECONNREFUSED'] })
const look = (members: EtcdMemberView[]): EtcdLook => ({ cluster: 'q', at: '2026-11-21T10:00:00.000Z', members, leader: leaderOf(members) })
const three = () => [member('q-cp-1', '1'), member('q-cp-2', '2'), member('q-cp-3', '3')]

t.test('the leader is the member that names itself; the highest term wins over a deposed one', async (t) => {
  t.equal(leaderOf(three())?.name, 'q-cp-1')
  t.equal(leaderOf([member('a', '1', { leaderId: '2' }), member('b', '2', { leaderId: '1' })]), undefined, 'nobody names itself: no leader')
  const split = [member('a', '1', { leaderId: '1', raftTerm: 2 }), member('b', '2', { leaderId: '2', raftTerm: 3 }), member('c', '3', { leaderId: '2', raftTerm: 3 })]
  t.equal(leaderOf(split)?.name, 'b')
  t.same([1, 2, 3, 4, 5].map(majorityOf), [1, 2, 2, 3, 3])
})

t.test('a restarted member counts as back once it is healthy, caught up, and every other member not taken down is healthy', async (t) => {
  t.equal(memberNotBack(look(three()), 'q-cp-2'), undefined)
  t.match(memberNotBack(look(three()), 'q-cp-9'), { condition: 'no_member', message: 'etcd has no member named q-cp-9 (members: q-cp-1, q-cp-2, q-cp-3)' })
  t.match(memberNotBack(look([member('q-cp-1', '1'), down('q-cp-2', '2'), member('q-cp-3', '3')]), 'q-cp-2'), { condition: 'member_unhealthy', message: 'its etcd member is not healthy (connect ECONNREFUSED)' })
  const leaderless = three().map((each) => ({ ...each, status: { ...each.status, leaderId: null } }))
  t.match(memberNotBack(look(leaderless), 'q-cp-2'), { condition: 'no_leader' })
  const behind = [member('q-cp-1', '1', { raftIndex: 5000 }), member('q-cp-2', '2', { raftAppliedIndex: 4899 }), member('q-cp-3', '3')]
  t.match(memberNotBack(look(behind), 'q-cp-2'), { condition: 'behind', message: "its etcd member has not caught up: applied index 4899, the leader's commit index 5000 (at most 100 behind counts)" })
  behind[1]!.status.raftAppliedIndex = 4900
  t.equal(memberNotBack(look(behind), 'q-cp-2'), undefined, '100 behind is within the bound')
  const other = [member('q-cp-1', '1'), member('q-cp-2', '2'), down('q-cp-3', '3')]
  t.match(memberNotBack(look(other), 'q-cp-2'), { condition: 'other_unhealthy', message: 'another etcd member is not healthy: q-cp-3 (connect ECONNREFUSED)' })
  t.equal(memberNotBack(look(other), 'q-cp-2', new Set(['q-cp-3'])), undefined, 'unless the run took it down itself')
  const learner = [...three(), { ...down('q-cp-4', '4'), learner: true }]
  t.equal(memberNotBack(look(learner), 'q-cp-2'), undefined, 'a learner counts for nothing')
})

t.test('a removal must leave a healthy majority of the remaining members; an addition one of the grown cluster', async (t) => {
  const oneDown = [member('q-cp-1', '1'), member('q-cp-2', '2'), down('q-cp-3', '3')]
  t.equal(checkRemoval(three(), '2').name, 'q-cp-2', 'three healthy: one may go')
  t.equal(checkRemoval(oneDown, '3').name, 'q-cp-3', 'the dead member may go: two healthy of two remain')
  t.throws(() => checkRemoval(oneDown, '1'), { code: 'ETCD_QUORUM_AT_RISK', message: 'removing q-cp-1 would leave 1 healthy of 2 voting members, fewer than the 2 a quorum needs; not healthy: q-cp-3 (connect ECONNREFUSED)' })
  t.throws(() => checkRemoval(three(), '9'), { code: 'ETCD_MEMBER_NOT_FOUND' })
  t.throws(() => checkRemoval([member('q-cp-1', '1')], '1'), { code: 'ETCD_LAST_MEMBER' })

  t.doesNotThrow(() => checkAddition(three(), ['https://10.0.0.14:2380']), '3 healthy of 4: the quorum of 3 holds while the new one starts')
  t.doesNotThrow(() => checkAddition([member('q-cp-1', '1'), member('q-cp-2', '2')], ['https://10.0.0.14:2380']), 'a replacement after a removal: 2 healthy of 3')
  t.throws(() => checkAddition(oneDown, ['https://10.0.0.14:2380']), { code: 'ETCD_QUORUM_AT_RISK', message: /makes 4 voting members, whose quorum is 3, and only 2 are healthy/ })
  t.throws(() => checkAddition(three(), ['https://q-cp-2:2380']), { code: 'ETCD_PEER_URL_TAKEN' })
  for (const urls of [[], ['http://10.0.0.14:2380'], ['https://10.0.0.14'], ['https://10.0.0.14:2380/x']]) {
    t.throws(() => checkAddition(three(), urls), { code: 'INVALID_ETCD_PEER_URLS' }, JSON.stringify(urls))
  }
})

t.test('EtcdQuorum asks the gateway only once the check passed', async (t) => {
  const calls: string[] = []
  const gateway = new FixedEtcdGateway({ q: ['q-cp-1', 'q-cp-2', 'q-cp-3'] }, calls)
  const quorum = new EtcdQuorum(gateway, new ManualClock().now)
  const added = await quorum.addMember('q', ['https://10.0.0.14:2380'])
  t.match(added, { name: '', peerUrls: ['https://10.0.0.14:2380'], clientUrls: [] })
  t.match((await quorum.look('q')).members.at(-1), { status: { reachable: false, healthy: false, errors: ['not started: it has no client URL yet'] } })
  t.match(await quorum.removeMember('q', added.id), { id: added.id })
  gateway.down('q', 'q-cp-3')
  const before = calls.length
  await t.rejects(quorum.removeMember('q', gateway.idOf('q', 'q-cp-1')), { code: 'ETCD_QUORUM_AT_RISK' })
  await t.rejects(quorum.addMember('q', ['https://10.0.0.15:2380']), { code: 'ETCD_QUORUM_AT_RISK' })
  t.same(calls.slice(before), ['members q', 'members q'], 'looked, refused, never changed')
  t.same(calls.filter((call) => !call.startsWith('members')), ['addMember q https://10.0.0.14:2380', `removeMember q ${added.id}`])
})

t.test("EtcdAccess: the members' client URLs, the engine's certificate in memory and issued again before it expires, an operator's for a day", async (t) => {
  const clock = new ManualClock()
  let pki: ClusterPki = await x509ClusterPkiIssuer.issue('q', clock.now())
  const placed = (role: PlacedMember['role'], ordinal: number, ip: string): PlacedMember => ({ cluster: 'q', machineUuid: `m-${role}-${ordinal}`, role, ordinal, hostname: `q-${role === 'node' ? 'node' : 'cp'}-${ordinal}`, ip })
  let members = [placed('control-plane', 1, '10.0.0.11'), placed('control-plane', 2, '10.0.0.12'), placed('control-plane', 3, ''), placed('node', 1, '10.0.0.21')]
  let issued = 0
  const access = new EtcdAccess(
    {
      findCluster: async (name) => (name === 'q' ? ({ name } as never) : undefined),
      clusterNameTaken: async (name) => name === 'q' || name === 'by-hand',
      listPlacedMembers: async () => members,
      findCertificates: async () => ({ etcdCa: pki.etcdCa.certificatePem }) as never,
      findClusterPki: async () => pki,
    },
    { issueLeaves: (...args) => (issued++, x509ClusterPkiIssuer.issueLeaves(...args)) },
    clock.now,
  )
  const first = await access.connection('q')
  t.same(first.endpoints, ['https://10.0.0.11:2379', 'https://10.0.0.12:2379'], 'control-plane members with an address, on 2379')
  t.equal(first.caPem, pki.etcdCa.certificatePem)
  const certificate = new X509Certificate(first.client.certificatePem)
  t.ok(certificate.verify(new X509Certificate(pki.etcdCa.certificatePem).publicKey), 'signed by the etcd CA')
  t.match(certificate.subject, /CN=slipway-engine@q/)
  t.equal(Date.parse(certificate.validTo) - clock.now().getTime(), 24 * 3600_000, 'valid a day')
  t.match(certificate.toLegacyObject(), { ext_key_usage: ['1.3.6.1.5.5.7.3.2'] }, 'client authentication only')

  clock.advance(11 * 3600_000)
  t.equal((await access.connection('q')).client.certificatePem, first.client.certificatePem, 'kept while more than half its life is left')
  clock.advance(2 * 3600_000)
  t.not((await access.connection('q')).client.certificatePem, first.client.certificatePem, 'issued again past half its life')
  t.equal(issued, 2)
  pki = await x509ClusterPkiIssuer.issue('q', clock.now())
  t.equal((await access.connection('q')).caPem, pki.etcdCa.certificatePem, 'a new etcd CA (the cluster made again) brings a new certificate')
  t.equal(issued, 3)

  const operator = await access.issueClientCertificate('q', 'operator:alice')
  t.match(new X509Certificate(operator.certificatePem).subject, /^CN=operator:alice$/)
  t.equal(Date.parse(operator.notAfter) - clock.now().getTime(), 24 * 3600_000)
  t.equal(issued, 4, 'an operator certificate is its own, never the cached one')
  await t.rejects(access.issueClientCertificate('q', 'x, O=system:masters'), { code: 'INVALID_COMMON_NAME' }, 'nothing can be added to the subject')
  await t.rejects(access.connection('nope'), { code: 'CLUSTER_NOT_FOUND' })
  await t.rejects(access.connection('by-hand'), { code: 'ETCD_NOT_PROVISIONED', message: /registered by hand/ })
  members = [placed('node', 1, '10.0.0.21')]
  await t.rejects(access.connection('q'), { code: 'ETCD_NOT_PROVISIONED', message: /no control-plane member placed yet/ })
})
