/**
 * The etcd adapter against a TLS double of an etcd member's client port (test/fakes/etcd-server-double.ts,
 * mutual TLS under a real cluster's etcd CA): etcd 3.4's answers are read (uint64 as strings, zero
 * values left out), and whatever else comes back (not JSON, wrong types, too large, an error that is
 * not etcd's, no answer in time, a certificate from another CA, a member advertising http) is a clear
 * error with a stable code, a member reported unreachable with the reason, never a crash. The real
 * etcd is in test/e2e/etcd-quorum.test.ts.
 */
import t from 'tap'
import { EtcdJsonGateway } from '../../src/adapters/etcd/etcd-json-gateway.ts'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import type { ClusterPki } from '../../src/core/clusters/cluster-pki.ts'
import type { EtcdConnection } from '../../src/core/clusters/etcd-access.ts'
import type { CertificateRequest } from '../../src/core/clusters/member-certificates.ts'
import { etcdAnswers, EtcdServerDouble, type DoubleAnswer } from '../fakes/etcd-server-double.ts'

const now = new Date()
const request = (usage: 'server' | 'client'): CertificateRequest => ({
  name: `etcd-${usage}`,
  file: `etcd/${usage}`,
  kind: 'certificate',
  authority: 'etcd',
  commonName: usage === 'server' ? 'q-cp-1' : 'slipway-engine@q',
  organizations: [],
  usages: [usage],
  dnsNames: [],
  ipAddresses: usage === 'server' ? ['127.0.0.1'] : [],
})
const leafOf = async (pki: ClusterPki, usage: 'server' | 'client') => (await x509ClusterPkiIssuer.issueLeaves(pki, [request(usage)], now))[0]!

t.test('etcd answers and everything else a member may send', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('q', now)
  const serving = await leafOf(pki, 'server')
  const client = await leafOf(pki, 'client')
  let script: (request: string, body: string) => DoubleAnswer = () => ({ status: 404, body: '{}' })
  const double = await EtcdServerDouble.start({ serving, clientCa: pki.etcdCa.certificatePem, answer: (name, body) => script(name, body) })
  t.teardown(() => double.close())
  const connection = (endpoints = [double.url]): EtcdConnection => ({ endpoints, caPem: pki.etcdCa.certificatePem, client })
  const gateway = new EtcdJsonGateway(async () => connection(), { requestTimeoutMs: 500 })
  t.teardown(() => gateway.close())
  const self = [{ id: '432035989910364508', name: 'q-cp-1', clientUrl: double.url }]
  const etcd = (status: string, health = etcdAnswers.health(true), list = etcdAnswers.memberList(self)) => (name: string): DoubleAnswer =>
    name === 'POST /v3/cluster/member/list' ? { status: 200, body: list } : name === 'POST /v3/maintenance/status' ? { status: 200, body: status } : name === 'GET /health' ? { status: health.includes('true') ? 200 : 503, body: health } : { status: 404, body: '{}' }

  script = etcd(etcdAnswers.status({ leader: '432035989910364508', raftIndex: '9007', raftAppliedIndex: '9005' }))
  t.match(await gateway.members('q'), [
    {
      id: '432035989910364508',
      name: 'q-cp-1',
      peerUrls: [double.url.replace(/:\d+$/, ':2380')],
      clientUrls: [double.url],
      learner: false,
      status: { reachable: true, healthy: true, raftIndex: 9007, raftAppliedIndex: 9005, raftTerm: 2, leaderId: '432035989910364508', version: '3.4.23', errors: [] },
    },
  ], "etcd 3.4's answers: uint64 strings read, the leader known, no errors")
  t.same(double.requests.slice(0, 3).sort(), ['GET /health', 'POST /v3/cluster/member/list', 'POST /v3/maintenance/status'])

  // No leader: etcd leaves `leader` out, says so in `errors`, and /health answers 503 false.
  script = etcd(etcdAnswers.status({ errors: ['etcdserver: no leader'] }), etcdAnswers.health(false))
  t.match((await gateway.members('q'))[0]!.status, { reachable: true, healthy: false, leaderId: null, errors: ['etcdserver: no leader', 'its /health answers false'] })

  const broken = async (what: string, answer: DoubleAnswer, expected: { code: string; kind?: string; message?: RegExp }) => {
    script = () => answer
    await t.rejects(gateway.members('q'), expected, what)
  }
  await broken('not JSON', { status: 200, body: '<html>proxy error</html>' }, { code: 'ETCD_BAD_ANSWER', message: /\/v3\/cluster\/member\/list did not answer as etcd does: HTTP 200 with something other than JSON: "<html>proxy error<\/html>"/ })
  await broken('wrong types', { status: 200, body: '{"members":[{"ID":12}]}' }, { code: 'ETCD_BAD_ANSWER', message: /\/members\/0\/ID/ })
  await broken('no members field', { status: 200, body: '{"header":{}}' }, { code: 'ETCD_BAD_ANSWER', message: /members/ })
  await broken('an ID that is not a uint64', { status: 200, body: '{"members":[{"ID":"-1"}]}' }, { code: 'ETCD_BAD_ANSWER' })
  await broken('too large', { status: 200, body: `{"members":[],"x":"${'a'.repeat(1_200_000)}"}` }, { code: 'ETCD_BAD_ANSWER', message: /more than 1048576 bytes/ })
  await broken('an error that is not etcd’s', { status: 500, body: 'oops' }, { code: 'ETCD_BAD_ANSWER', message: /HTTP 500 with something other than JSON/ })
  await broken('an error JSON without etcd’s fields', { status: 502, body: '{"oops":true}' }, { code: 'ETCD_BAD_ANSWER', message: /HTTP 502 without etcd's error message/ })
  await broken('etcd’s own error', { status: 503, body: etcdAnswers.error('etcdserver: request timed out', 14) }, { code: 'ETCD_REFUSED', kind: 'upstream', message: /refused \/v3\/cluster\/member\/list: etcdserver: request timed out/ })
  const started = Date.now()
  await broken('no answer in time', 'hang', { code: 'ETCD_UNREACHABLE', kind: 'upstream_timeout', message: /no answer in time/ })
  t.ok(Date.now() - started < 2_000, 'given up at the request timeout')

  // The list is fine, the member's own status is not: the member is reported, with why.
  script = etcd('{"raftIndex": 12}')
  t.match((await gateway.members('q'))[0]!.status, { reachable: false, healthy: false, errors: [/maintenance\/status did not answer as etcd does: \/raftIndex/] })
  script = etcd(etcdAnswers.status({ leader: '1' }), 'not json')
  t.match((await gateway.members('q'))[0]!.status, { reachable: true, healthy: false, errors: [/its \/health could not be asked: .*something other than JSON/] })
  // A member advertising plain http is not sent the engine's certificate.
  script = etcd(etcdAnswers.status(), etcdAnswers.health(true), etcdAnswers.memberList([{ id: '7', name: 'q-cp-2', clientUrl: 'http://127.0.0.1:2379' }]))
  const before = double.requests.length
  t.match((await gateway.members('q'))[0]!.status, { reachable: false, errors: ['no https client URL (http://127.0.0.1:2379)'] })
  t.same(double.requests.slice(before), ['POST /v3/cluster/member/list'], 'asked nothing of it')

  // Membership changes: etcd's answers, its NotFound, and its refusal, in its own words.
  script = (name, body) =>
    name === 'POST /v3/cluster/member/add'
      ? { status: 200, body: JSON.stringify({ header: {}, member: { ID: '3621957824192991646', peerURLs: JSON.parse(body).peerURLs }, members: [] }) }
      : name === 'POST /v3/cluster/member/remove' && JSON.parse(body).ID === '404'
        ? { status: 404, body: etcdAnswers.error('etcdserver: member not found', 5) }
        : name === 'POST /v3/cluster/member/remove'
          ? { status: 500, body: etcdAnswers.error('etcdserver: re-configuration failed due to not enough started members', 2) }
          : { status: 404, body: '{}' }
  t.same(await gateway.addMember('q', ['https://10.0.0.14:2380']), { id: '3621957824192991646', name: '', peerUrls: ['https://10.0.0.14:2380'], clientUrls: [], learner: false })
  await t.rejects(gateway.removeMember('q', '404'), { code: 'ETCD_MEMBER_NOT_FOUND', kind: 'not_found' })
  await t.rejects(gateway.removeMember('q', '5'), { code: 'ETCD_REFUSED', message: /not enough started members/ })
})

t.test('nothing listening, a member under another CA, a certificate etcd does not trust: ETCD_UNREACHABLE saying why; a change goes to the next member only when the first was never reached', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('q', now)
  const other = await x509ClusterPkiIssuer.issue('other', now)
  const client = await leafOf(pki, 'client')
  const impostor = await EtcdServerDouble.start({ serving: await leafOf(other, 'server'), clientCa: pki.etcdCa.certificatePem, answer: () => ({ status: 200, body: etcdAnswers.memberList([]) }) })
  t.teardown(() => impostor.close())
  const closed = 'https://127.0.0.1:9'
  const gatewayTo = (endpoints: string[], certificate = client) => new EtcdJsonGateway(async () => ({ endpoints, caPem: pki.etcdCa.certificatePem, client: certificate }), { requestTimeoutMs: 500 })

  await t.rejects(gatewayTo([closed]).members('q'), { code: 'ETCD_UNREACHABLE', kind: 'upstream', message: /no etcd member of cluster "q" answered: https:\/\/127\.0\.0\.1:9\/v3\/cluster\/member\/list: ECONNREFUSED/ })
  await t.rejects(gatewayTo([impostor.url]).members('q'), { code: 'ETCD_UNREACHABLE', message: /certificate|UNABLE_TO_VERIFY/i }, "a server whose certificate is not under the cluster's etcd CA is not believed")
  t.same(impostor.requests, [], 'and was sent nothing')

  const trusting = await EtcdServerDouble.start({ serving: await leafOf(pki, 'server'), clientCa: pki.etcdCa.certificatePem, answer: () => ({ status: 200, body: JSON.stringify({ header: {}, members: [] }) }) })
  t.teardown(() => trusting.close())
  await t.rejects(gatewayTo([trusting.url], await leafOf(other, 'client')).members('q'), { code: 'ETCD_UNREACHABLE' }, 'a client certificate from another CA is refused by the member')
  t.same(trusting.requests, [])

  await gatewayTo([closed, trusting.url]).removeMember('q', '12')
  t.same(trusting.requests, ['POST /v3/cluster/member/remove'], 'the first endpoint refused the connection: the change went to the second')
})
