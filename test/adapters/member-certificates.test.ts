/**
 * The certificates the engine issues as each cluster's CA, read by the real `openssl` the way
 * `kubeadm certs check-expiration` and the API server read them: chain to the right CA, subject,
 * SANs, key usages, validity, and a private key that belongs to the certificate.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { DEFAULT_DNS_DOMAIN } from '../../src/core/clusters/cluster.ts'
import { certificatePlan, controlPlaneEndpointHost, firstAddressOf, type MemberIdentity } from '../../src/core/clusters/member-certificates.ts'
import { removeTree } from '../helpers/engine.ts'

const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-leaves-'))
t.teardown(() => removeTree(scratch))
let files = 0
const pemFile = (text: string) => {
  const file = path.join(scratch, `${files++}.pem`)
  writeFileSync(file, text)
  return file
}
const openssl = (args: string[], input?: string) => execFileSync('openssl', args, { encoding: 'utf8', ...(input === undefined ? {} : { input }) })

const now = new Date('2026-12-07T12:00:00Z')
const member = (role: MemberIdentity['role'], hostname: string, ip: string): MemberIdentity => ({
  cluster: 'alpha',
  role,
  hostname,
  ip,
  endpointHost: controlPlaneEndpointHost('alpha', 'slipway.test'),
  apiServerPort: 6443,
  serviceIp: firstAddressOf('10.96.0.0/12'),
  dnsDomain: DEFAULT_DNS_DOMAIN,
})

/** kubeadm's table: name -> [CA file, subject, extended usages, SANs]. */
const EXPECTED: Record<string, [string, RegExp, string[], string[]]> = {
  apiserver: ['ca', /^subject=CN\s*=\s*kube-apiserver$/m, ['TLS Web Server Authentication'], ['DNS:alpha-cp-1', 'DNS:api.alpha.slipway.test', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local', 'IP Address:10.96.0.1', 'IP Address:10.3.0.11']],
  'apiserver-kubelet-client': ['ca', /^subject=O\s*=\s*kubeadm:cluster-admins, CN\s*=\s*kube-apiserver-kubelet-client$/m, ['TLS Web Client Authentication'], []],
  'front-proxy-client': ['front-proxy-ca', /^subject=CN\s*=\s*front-proxy-client$/m, ['TLS Web Client Authentication'], []],
  'etcd-server': ['etcd-ca', /^subject=CN\s*=\s*alpha-cp-1$/m, ['TLS Web Server Authentication', 'TLS Web Client Authentication'], ['DNS:alpha-cp-1', 'DNS:localhost', 'IP Address:10.3.0.11', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']],
  'etcd-peer': ['etcd-ca', /^subject=CN\s*=\s*alpha-cp-1$/m, ['TLS Web Server Authentication', 'TLS Web Client Authentication'], ['DNS:alpha-cp-1', 'DNS:localhost', 'IP Address:10.3.0.11', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']],
  'etcd-healthcheck-client': ['etcd-ca', /^subject=CN\s*=\s*kube-etcd-healthcheck-client$/m, ['TLS Web Client Authentication'], []],
  'apiserver-etcd-client': ['etcd-ca', /^subject=CN\s*=\s*kube-apiserver-etcd-client$/m, ['TLS Web Client Authentication'], []],
  'admin.conf': ['ca', /^subject=O\s*=\s*kubeadm:cluster-admins, CN\s*=\s*kubernetes-admin$/m, ['TLS Web Client Authentication'], []],
  'super-admin.conf': ['ca', /^subject=O\s*=\s*system:masters, CN\s*=\s*kubernetes-super-admin$/m, ['TLS Web Client Authentication'], []],
  'controller-manager.conf': ['ca', /^subject=CN\s*=\s*system:kube-controller-manager$/m, ['TLS Web Client Authentication'], []],
  'scheduler.conf': ['ca', /^subject=CN\s*=\s*system:kube-scheduler$/m, ['TLS Web Client Authentication'], []],
  'kubelet.conf': ['ca', /^subject=O\s*=\s*system:nodes, CN\s*=\s*system:node:alpha-cp-1$/m, ['TLS Web Client Authentication'], []],
}

t.test('a control-plane member gets kubeadm’s whole set, each certificate as kubeadm and the API server expect it', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('alpha', now)
  const caFiles: Record<string, string> = { ca: pemFile(pki.kubernetesCa.certificatePem), 'etcd-ca': pemFile(pki.etcdCa.certificatePem), 'front-proxy-ca': pemFile(pki.frontProxyCa.certificatePem) }
  const issued = await x509ClusterPkiIssuer.issueLeaves(pki, certificatePlan(member('control-plane', 'alpha-cp-1', '10.3.0.11')), now)
  t.same(issued.map((certificate) => certificate.name).sort(), Object.keys(EXPECTED).sort(), 'kubeadm’s names, nothing more or less')
  const caPublicKeys = [pki.kubernetesCa, pki.etcdCa, pki.frontProxyCa].map((ca) => openssl(['pkey', '-in', pemFile(ca.privateKeyPem), '-pubout']))
  for (const certificate of issued) {
    const [ca, subject, usages, sans] = EXPECTED[certificate.name]!
    const file = pemFile(certificate.certificatePem)
    t.equal(openssl(['verify', '-CAfile', caFiles[ca]!, '-purpose', usages.includes('TLS Web Server Authentication') ? 'sslserver' : 'sslclient', file]).trim(), `${file}: OK`, `${certificate.name}: openssl verifies it against ${ca} for its purpose`)
    for (const other of Object.keys(caFiles).filter((name) => name !== ca)) {
      t.throws(() => execFileSync('openssl', ['verify', '-CAfile', caFiles[other]!, file], { stdio: 'pipe' }), `${certificate.name}: not valid under ${other}`)
    }
    const text = openssl(['x509', '-in', file, '-noout', '-subject', '-nameopt', 'sep_comma_plus_space', '-ext', 'basicConstraints,keyUsage,extendedKeyUsage,subjectAltName'])
    t.match(text, subject, `${certificate.name}: subject`)
    t.match(text, /CA:FALSE/, `${certificate.name}: not a CA`)
    t.match(text, /Key Usage: critical\s+Digital Signature\n/, `${certificate.name}: digital signature only`)
    const extended = /Extended Key Usage:\s*\n\s*(.*)\n/.exec(text)?.[1]?.split(', ') ?? []
    t.same(extended.sort(), [...usages].sort(), `${certificate.name}: extended key usages`)
    const altNames = /Subject Alternative Name:\s*\n\s*(.*)\n/.exec(text)?.[1]?.split(', ') ?? []
    t.same(altNames.sort(), [...sans].sort(), `${certificate.name}: SANs`)
    const dates = openssl(['x509', '-in', file, '-noout', '-startdate', '-enddate'])
    const notBefore = Date.parse(/notBefore=(.*)/.exec(dates)![1]!)
    const notAfter = Date.parse(/notAfter=(.*)/.exec(dates)![1]!)
    t.ok(notBefore <= now.getTime() && notBefore > now.getTime() - 10 * 60_000, `${certificate.name}: valid from a few minutes before issue (clock lag)`)
    t.equal(Math.round((notAfter - now.getTime()) / 86_400_000), 365, `${certificate.name}: valid one year, as kubeadm’s`)
    t.equal(new Date(notAfter).toISOString(), certificate.notAfter, `${certificate.name}: the recorded expiry is the certificate’s`)
    const keyPublic = openssl(['pkey', '-in', pemFile(certificate.privateKeyPem), '-pubout'])
    t.equal(keyPublic, openssl(['x509', '-in', file, '-noout', '-pubkey']), `${certificate.name}: the key belongs to the certificate`)
    t.notOk(caPublicKeys.includes(keyPublic), `${certificate.name}: its key is no CA’s`)
  }
})

t.test('a node gets only its kubelet’s client certificate; every key is fresh', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('alpha', now)
  const plan = certificatePlan(member('node', 'alpha-node-1', '10.3.0.14'))
  t.same(plan.map((request) => request.name), ['kubelet.conf'])
  const [kubelet] = await x509ClusterPkiIssuer.issueLeaves(pki, plan, now)
  t.match(openssl(['x509', '-in', pemFile(kubelet!.certificatePem), '-noout', '-subject', '-nameopt', 'sep_comma_plus_space']), /O\s*=\s*system:nodes, CN\s*=\s*system:node:alpha-node-1/)
  const [again] = await x509ClusterPkiIssuer.issueLeaves(pki, plan, now)
  t.not(again!.privateKeyPem, kubelet!.privateKeyPem, 'a renewal is a new key, not a re-signed old one')
})

t.test('the engine renews its own admin certificate under the same CA', async (t) => {
  const pki = await x509ClusterPkiIssuer.issue('alpha', now)
  const later = new Date(now.getTime() + 340 * 86_400_000)
  const renewed = await x509ClusterPkiIssuer.renewAdmin(pki, 'alpha', later)
  const file = pemFile(renewed.certificatePem)
  t.match(openssl(['verify', '-attime', String(Math.floor(later.getTime() / 1000)), '-CAfile', pemFile(pki.kubernetesCa.certificatePem), file]), /: OK/, 'valid at the time of renewal')
  t.match(openssl(['x509', '-in', file, '-noout', '-subject', '-nameopt', 'sep_comma_plus_space']), /O\s*=\s*system:masters, CN\s*=\s*slipway-admin@alpha/)
  t.ok(Date.parse(x509ClusterPkiIssuer.notAfter(renewed.certificatePem)) > Date.parse(x509ClusterPkiIssuer.notAfter(pki.admin.certificatePem)), 'the renewed one outlives the old one')
})

t.test('the service IP is the first address of the service subnet', async (t) => {
  t.equal(firstAddressOf('10.96.0.0/12'), '10.96.0.1')
  t.equal(firstAddressOf('172.20.5.0/24'), '172.20.5.1')
  t.equal(firstAddressOf('10.96.7.9/16'), '10.96.0.1', 'host bits are cleared first')
  t.throws(() => firstAddressOf('10.96.0.0/31'))
  t.throws(() => firstAddressOf('fd00::/64'))
})
