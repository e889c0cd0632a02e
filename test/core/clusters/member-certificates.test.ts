import t from 'tap'
import { pkiForRole, type ClusterPki } from '../../../src/core/clusters/cluster-pki.ts'
import { certificatePlan, memberCertificates, renewalDue, type MemberIdentity } from '../../../src/core/clusters/member-certificates.ts'

const identity = (role: MemberIdentity['role']): MemberIdentity => ({
  cluster: 'alpha',
  role,
  hostname: `alpha-${role === 'node' ? 'node' : 'cp'}-1`,
  ip: '10.3.0.11',
  endpointHost: 'api.alpha.z.test',
  apiServerPort: 6443,
  serviceIp: '10.96.0.1',
  dnsDomain: 'cluster.local',
})

t.test("a control-plane member's plan is kubeadm's external-CA set; a node's is its kubelet's", async (t) => {
  const plan = certificatePlan(identity('control-plane'))
  t.same(plan.filter((request) => request.kind === 'certificate').map((request) => [request.file, request.authority]), [
    ['apiserver', 'kubernetes'],
    ['apiserver-kubelet-client', 'kubernetes'],
    ['front-proxy-client', 'front-proxy'],
    ['etcd/server', 'etcd'],
    ['etcd/peer', 'etcd'],
    ['etcd/healthcheck-client', 'etcd'],
    ['apiserver-etcd-client', 'etcd'],
  ])
  t.same(plan.filter((request) => request.kind === 'kubeconfig').map((request) => [request.file, request.server]), [
    ['admin.conf', 'https://api.alpha.z.test:6443'],
    ['super-admin.conf', 'https://api.alpha.z.test:6443'],
    ['controller-manager.conf', 'https://10.3.0.11:6443'],
    ['scheduler.conf', 'https://10.3.0.11:6443'],
    ['kubelet.conf', 'https://api.alpha.z.test:6443'],
  ], 'users and the kubelet through the endpoint; controller-manager and scheduler to their own API server')
  t.same(certificatePlan(identity('node')).map((request) => [request.file, request.commonName, request.organizations]), [['kubelet.conf', 'system:node:alpha-node-1', ['system:nodes']]])
})

t.test('renewal is due with less than 30 days left', async (t) => {
  const now = new Date('2027-06-01T00:00:00Z')
  t.notOk(renewalDue('2027-07-02T00:00:00Z', now))
  t.ok(renewalDue('2027-06-30T00:00:00Z', now))
  t.ok(renewalDue('2027-05-01T00:00:00Z', now), 'already expired')
  const set = memberCertificates(
    [
      { name: 'a', file: 'a', kind: 'certificate', certificatePem: '', privateKeyPem: '', notAfter: '2028-01-02T00:00:00.000Z' },
      { name: 'b', file: 'b', kind: 'certificate', certificatePem: '', privateKeyPem: '', notAfter: '2028-01-01T00:00:00.000Z' },
    ],
    now,
  )
  t.equal(set.notAfter, '2028-01-01T00:00:00.000Z', 'a set expires with its earliest certificate')
})

t.test('what templates get: no CA key for any role, each file under the name a template can write', async (t) => {
  const pair = (name: string) => ({ certificatePem: `${name}-cert`, privateKeyPem: `${name}-ca-key` })
  const pki: ClusterPki = {
    kubernetesCa: pair('k8s'),
    etcdCa: pair('etcd'),
    frontProxyCa: pair('fp'),
    serviceAccount: { publicKeyPem: 'sa-pub', privateKeyPem: 'sa-key' },
    admin: pair('admin'),
    bootstrapToken: 'abcdef.0123456789abcdef',
    kubernetesCaCertHash: 'sha256:00',
  }
  const issue = (role: MemberIdentity['role']) =>
    memberCertificates(
      certificatePlan(identity(role)).map((request) => ({ name: request.name, file: request.file, kind: request.kind, ...(request.server ? { server: request.server } : {}), certificatePem: `${request.name}-cert`, privateKeyPem: `${request.name}-key`, notAfter: '2028-01-01T00:00:00.000Z' })),
      new Date(),
    )
  for (const role of ['control-plane', 'node'] as const) {
    const fields = pkiForRole(pki, { cluster: 'alpha', role, certificates: issue(role) })
    const values = Object.values(fields).join('\n')
    for (const caKey of ['k8s-ca-key', 'etcd-ca-key', 'fp-ca-key', 'admin-ca-key']) {
      t.notOk(values.includes(caKey) || values.includes(Buffer.from(caKey).toString('base64')), `${role}: no ${caKey}`)
    }
    t.ok(fields.kubelet_conf?.includes('server: https://api.alpha.z.test:6443'), `${role}: kubelet.conf through the endpoint`)
  }
  const controlPlane = pkiForRole(pki, { cluster: 'alpha', role: 'control-plane', certificates: issue('control-plane') })
  t.same(Object.keys(controlPlane).sort(), [
    'admin_conf', 'apiserver_crt', 'apiserver_etcd_client_crt', 'apiserver_etcd_client_key', 'apiserver_key', 'apiserver_kubelet_client_crt', 'apiserver_kubelet_client_key',
    'bootstrap_token', 'ca_cert_hash', 'ca_crt', 'controller_manager_conf', 'etcd_ca_crt', 'etcd_healthcheck_client_crt', 'etcd_healthcheck_client_key', 'etcd_peer_crt', 'etcd_peer_key',
    'etcd_server_crt', 'etcd_server_key', 'front_proxy_ca_crt', 'front_proxy_client_crt', 'front_proxy_client_key', 'kubelet_conf', 'sa_key', 'sa_pub', 'scheduler_conf', 'super_admin_conf',
  ])
  t.same(Object.keys(pkiForRole(pki, { cluster: 'alpha', role: 'node', certificates: issue('node') })).sort(), ['bootstrap_token', 'ca_cert_hash', 'ca_crt', 'kubelet_conf'])
})
