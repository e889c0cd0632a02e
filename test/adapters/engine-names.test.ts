/**
 * The engine's clients reach a provisioned cluster by its endpoint name (`api.<cluster>.<zone>`),
 * resolved from the engine's own answers rather than the host's resolver, which knows nothing of the
 * zone: the registry's client (client-node with the shared pool) and the drainer (client-node with the
 * kubeconfig the engine writes), against a TLS API server double whose certificate carries only the
 * endpoint name, with a control-plane member that is down listed first.
 */
import { lookup as systemLookup } from 'node:dns/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { KubernetesClusterApi } from '../../src/adapters/kubernetes/cluster-api-client.ts'
import { lookupThrough } from '../../src/adapters/kubernetes/engine-names.ts'
import { KubernetesNodeDrainer } from '../../src/adapters/kubernetes/kubernetes-node-drainer.ts'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { adminKubeconfig } from '../../src/core/clusters/cluster-pki.ts'
import { FakeKubeApiserver } from '../fakes/kube-apiserver.ts'
import { issueCertificate } from '../helpers/test-pki.ts'

const ENDPOINT = 'api.edge.apps.slipway.internal'
/** 127.0.0.2 has no listener: a member that is down (refused). The one that serves is second. */
const MEMBERS = ['127.0.0.2', '127.0.0.1']
const asked: string[] = []
const names = async (hostname: string) => {
  asked.push(hostname)
  return hostname === ENDPOINT ? MEMBERS : hostname === 'api.empty.apps.slipway.internal' ? [] : undefined
}
const lookup = lookupThrough(names)
const lookupAll = (hostname: string) =>
  new Promise<{ address: string; family: number }[]>((resolve, reject) =>
    lookup(hostname, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses as unknown as { address: string; family: number }[]))),
  )

t.test('the lookup: engine names from the engine, every other name from the system', async (t) => {
  t.same(await lookupAll(ENDPOINT), MEMBERS.map((address) => ({ address, family: 4 })), 'every member, in order, when asked for all')
  const one = await promisify((callback: (error: Error | null, address: string, family: number) => void) => lookup(ENDPOINT, {}, callback as never))()
  t.equal(one, '127.0.0.2', 'the first one otherwise')
  t.same((await lookupAll('localhost')).map((entry) => entry.family === 4 || entry.family === 6), (await systemLookup('localhost', { all: true })).map(() => true), 'localhost through the system resolver')
  await t.rejects(lookupAll('api.empty.apps.slipway.internal'), { code: 'ENOTFOUND', message: /no control-plane member answers/ }, 'an endpoint with no member installed yet is not found, with the reason')
  await t.rejects(systemLookup(ENDPOINT), 'the system resolver does not know the endpoint')
})

t.test('the registry client and the drainer reach the API server by its endpoint name, past a member that is down', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('edge', new Date())
  // The API server's certificate names the endpoint only: connecting by an address would fail verification.
  const serving = await issueCertificate(pki, { subject: 'CN=kube-apiserver', dnsNames: [ENDPOINT], ips: [], usage: 'server' })
  const api = await FakeKubeApiserver.start({ tls: { ...serving, clientCaPem: pki.kubernetesCa.certificatePem } })
  t.teardown(() => api.close())
  api.addNode('edge-cp-1')
  const server = `https://${ENDPOINT}:${new URL(api.url).port}`
  const connection = { name: 'edge', server, caBundle: pki.kubernetesCa.certificatePem, credential: { type: 'client_certificate' as const, certificatePem: pki.admin.certificatePem, keyPem: pki.admin.privateKeyPem } }

  const registry = new KubernetesClusterApi({ keepAliveMs: 1_000, lookup })
  t.teardown(() => registry.close())
  const sample = await registry.probe(connection, 5_000)
  t.equal(sample.failure, undefined, JSON.stringify(sample.failure))
  t.match(sample, { apiReady: true, nodes: { total: 1 } }, 'the registry probed the cluster through its endpoint')

  const withoutEngineNames = new KubernetesClusterApi({ keepAliveMs: 1_000 })
  t.teardown(() => withoutEngineNames.close())
  t.match((await withoutEngineNames.probe(connection, 5_000)).failure, { kind: 'connection', message: /ENOTFOUND|not found/i }, 'without the engine’s names the endpoint cannot be reached (the check is not vacuous)')

  const drainer = new KubernetesNodeDrainer(adminKubeconfig('edge', pki, server), { lookup })
  t.teardown(() => drainer.close())
  await drainer.cordon('edge-cp-1')
  t.ok(api.requestsTo('PATCH', /\/nodes\/edge-cp-1$/).length >= 1, 'the drainer cordoned the node through the endpoint')
  t.ok(asked.filter((name) => name === ENDPOINT).length >= 2, 'both clients asked the engine for the endpoint')
})
