import t from 'tap'
import { initializesCluster, kubeadmDocuments, type BootstrapRecord } from '../../../src/core/clusters/kubeadm-config.ts'

const cp = (uuid: string, ordinal: number) => ({ machineUuid: uuid, role: 'control-plane' as const, ordinal })
const node = (uuid: string, ordinal: number) => ({ machineUuid: uuid, role: 'node' as const, ordinal })

t.test('one member creates the cluster; a replaced first member joins the cluster that exists', async (t) => {
  const members = [cp('a', 1), cp('b', 2), cp('c', 3), node('n', 1)]
  const none = new Map<string, BootstrapRecord>()
  t.same(members.map((member) => initializesCluster(member, members, none)), [true, false, false, false], 'a new cluster: the first control-plane member inits')
  // a (cp-1) was replaced by d under ordinal 1 after b and c had joined and finished.
  const replaced = [cp('d', 1), cp('b', 2), cp('c', 3)]
  const done = new Map<string, BootstrapRecord>([['b', { command: 'join', phase: 'done' }], ['c', { command: 'join', phase: 'done' }]])
  t.notOk(initializesCluster(cp('d', 1), replaced, done), 'the replacement joins: a second init would start another cluster')
  // Once a member has reported, its command stays what it ran: its config never changes under it.
  const ran = new Map<string, BootstrapRecord>([['a', { command: 'init', phase: 'done' }], ['b', { command: 'join', phase: 'done' }]])
  t.ok(initializesCluster(cp('a', 1), members, ran), 'the member that inited keeps init after others finish joining')
  t.notOk(initializesCluster(cp('b', 2), members, ran))
  t.notOk(initializesCluster(node('n', 1), members, new Map([['n', { command: 'init', phase: 'failed' }]])), 'a node never inits')
})

t.test('init and join documents', async (t) => {
  const base = {
    cluster: 'alpha',
    hostname: 'alpha-cp-1',
    ip: '10.0.0.1',
    endpoint: { host: 'api.alpha.z', port: 6443 },
    kubernetesVersion: 'v1.31.8',
    networking: { serviceSubnet: '10.96.0.0/12', podSubnet: '10.244.0.0/16', dnsDomain: 'cluster.local' },
    controlPlaneVip: null,
    imageRepository: 'registry.k8s.io',
    bootstrapToken: 'abcdef.0123456789abcdef',
    caCertHash: `sha256:${'0'.repeat(64)}`,
  }
  const init = kubeadmDocuments({ ...base, role: 'control-plane', initializes: true })
  t.equal(init.command, 'init')
  t.same(init.documents.map((document) => document.kind), ['InitConfiguration', 'ClusterConfiguration', 'KubeletConfiguration'])
  const join = kubeadmDocuments({ ...base, role: 'control-plane', initializes: false })
  t.equal(join.command, 'join')
  t.match(join.documents[0], { kind: 'JoinConfiguration', controlPlane: { localAPIEndpoint: { advertiseAddress: '10.0.0.1', bindPort: 6443 } } })
  const nodeJoin = kubeadmDocuments({ ...base, hostname: 'alpha-node-1', role: 'node', initializes: false })
  t.notOk('controlPlane' in nodeJoin.documents[0]!, 'a node runs no control plane')
  t.notOk(JSON.stringify(join.documents).includes('DirAvailable'), 'without a VIP nothing is in the manifests folder before a join')

  // With kube-vip: the VIP is a SAN, a joining control-plane member already has kube-vip's manifest, a node has none.
  const withVip = { ...base, controlPlaneVip: '10.0.0.250', imageRepository: 'mirror.lab:5000/k8s' }
  t.match(kubeadmDocuments({ ...withVip, role: 'control-plane', initializes: true }).documents[1], { imageRepository: 'mirror.lab:5000/k8s', apiServer: { certSANs: ['api.alpha.z', '10.0.0.250'] }, controlPlaneEndpoint: 'api.alpha.z:6443' })
  t.match(kubeadmDocuments({ ...withVip, role: 'control-plane', initializes: false }).documents[0], { nodeRegistration: { ignorePreflightErrors: ['FileAvailable--etc-kubernetes-kubelet.conf', 'FileAvailable--etc-kubernetes-pki-ca.crt', 'DirAvailable--etc-kubernetes-manifests'] } })
  t.notOk(JSON.stringify(kubeadmDocuments({ ...withVip, hostname: 'alpha-node-1', role: 'node', initializes: false }).documents).includes('DirAvailable'))
})
