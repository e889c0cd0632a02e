/**
 * Cluster PKI end to end on a real SQLite file: the CAs and admin certificate are checked by the real
 * `openssl` CLI (chain, key match, kubeadm's CA hash), the role templates hand each role only what it
 * needs, nothing private is ever answered by the admin API or stored in clear, and a restart with the
 * wrong key fails loudly instead of serving garbage.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import YAML from 'yaml'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { validateWithOfficialSchema } from '../../helpers/ignition-schema.ts'
import { asMachine, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'
import { until } from '../../helpers/wait.ts'

const uuidOf = (n: number) => `6a1e0000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:0e:${n.toString(16).padStart(2, '0')}`
const ipOf = (n: number) => `10.3.0.${10 + n}`
const machineOf = (n: number) => ({ uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) })

const admin = (app: FastifyInstance, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

async function discover(app: FastifyInstance, n: number) {
  const response = await app.inject({
    method: 'POST',
    url: '/discovery',
    payload: {
      'boot-info': { uuid: uuidOf(n), mac: macOf(n) },
      interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n), cidrv4: `${ipOf(n)}/24` }],
      disks: [{ path: '/dev/vda', 'size-bytes': 20e9 }],
      cpu: { cores: 2 },
      memory: { 'total-bytes': 4e9 },
    },
  })
  if (response.statusCode !== 200) throw new Error(response.body)
}

/** Every private key an Ignition config writes: PEM blocks, and the client keys inside kubeconfigs. */
function privateKeysIn(config: { storage: { files: { path: string; contents: { source: string } }[] } }): { at: string; key: string }[] {
  const found: { at: string; key: string }[] = []
  for (const file of config.storage.files) {
    if (!file.contents.source.startsWith('data:')) continue
    const text = fileIn(config, file.path)!.text
    for (const block of text.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g) ?? []) found.push({ at: file.path, key: block })
    for (const match of text.matchAll(/client-key-data: (\S+)/g)) found.push({ at: file.path, key: Buffer.from(match[1]!, 'base64').toString('utf8') })
  }
  return found
}

/** The server, CA and client certificate of a kubeconfig an Ignition config writes. */
function kubeconfigIn(config: Parameters<typeof fileIn>[0], at: string) {
  const document = YAML.parse(fileIn(config, at)!.text)
  const decode = (value: string) => Buffer.from(value, 'base64').toString('utf8')
  return {
    server: document.clusters[0].cluster.server as string,
    ca: decode(document.clusters[0].cluster['certificate-authority-data']),
    certificate: decode(document.users[0].user['client-certificate-data']),
  }
}

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { encoding: 'utf8', ...(input === undefined ? {} : { input }) })
}

/** The file an Ignition config writes at `at`, decoded from its data URL. */
function fileIn(config: { storage: { files: { path: string; mode?: number; contents: { source: string } }[] } }, at: string) {
  const file = config.storage.files.find((candidate) => candidate.path === at)
  if (!file) return undefined
  return { mode: file.mode, text: decodeURIComponent(file.contents.source.replace(/^data:,/, '')) }
}

const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-pki-'))
t.teardown(() => removeTree(scratch))
const pem = (name: string, text: string) => {
  const file = path.join(scratch, name)
  writeFileSync(file, text)
  return file
}

t.test('a cluster gets its PKI; roles get what they need; nothing private leaks', async (t) => {
  const started = await startTestEngine()
  let closed = false
  t.teardown(async () => {
    if (!closed) await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  const app = started.engine.app
  t.equal((await admin(app, 'POST', '/api/v1/flavors', { name: 'three', control_plane_count: 3, nodes_min: 0, nodes_max: 2 })).statusCode, 201)
  t.equal((await admin(app, 'POST', '/api/v1/clusters', { name: 'alpha', flavor: 'three' })).statusCode, 201)
  t.equal((await admin(app, 'POST', '/api/v1/clusters', { name: 'beta', flavor: 'three' })).statusCode, 201)
  const keyFile = path.join(started.dataDir, 'secrets.key')
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'the secrets key file was created on first start, readable by the engine only')

  // The public certificates, checked by openssl.
  const certificates = await admin(app, 'GET', '/api/v1/clusters/alpha/certificates')
  t.equal(certificates.statusCode, 200, certificates.body)
  const certs = certificates.json()
  t.notMatch(certificates.body, /PRIVATE KEY/, 'the certificates route returns no key')
  const ca = pem('ca.crt', certs.kubernetes_ca)
  t.match(openssl(['x509', '-in', ca, '-noout', '-subject', '-ext', 'basicConstraints,keyUsage']), /CN\s*=\s*kubernetes[\s\S]*CA:TRUE[\s\S]*Certificate Sign/, 'the Kubernetes CA is a CA (CN=kubernetes, CA:TRUE, keyCertSign)')
  t.match(openssl(['x509', '-in', pem('etcd.crt', certs.etcd_ca), '-noout', '-subject']), /CN\s*=\s*etcd-ca/)
  t.match(openssl(['x509', '-in', pem('fp.crt', certs.front_proxy_ca), '-noout', '-subject']), /CN\s*=\s*front-proxy-ca/)
  const adminCert = pem('admin.crt', certs.admin)
  t.match(openssl(['verify', '-CAfile', ca, adminCert]), /admin\.crt: OK/, 'openssl verifies the admin certificate against the Kubernetes CA')
  t.match(openssl(['x509', '-in', adminCert, '-noout', '-subject', '-ext', 'extendedKeyUsage']), /O\s*=\s*system:masters[\s\S]*TLS Web Client Authentication/, 'the admin certificate is a system:masters client certificate')
  // kubeadm's hash: SHA-256 over the DER SubjectPublicKeyInfo of the CA.
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: openssl(['x509', '-in', ca, '-noout', '-pubkey']) })
  const exactHash = execFileSync('openssl', ['dgst', '-sha256', '-r'], { input: der }).toString().split(' ')[0]
  t.equal(certs.kubernetes_ca_cert_hash, `sha256:${exactHash}`, "kubeadm's --discovery-token-ca-cert-hash matches the CA's public key")
  const beta = (await admin(app, 'GET', '/api/v1/clusters/beta/certificates')).json()
  t.not(beta.kubernetes_ca, certs.kubernetes_ca, 'every cluster has its own CA')

  // Schedule alpha: 3 control-plane members and 2 nodes.
  for (const n of [1, 2, 3, 4, 5]) await discover(app, n)
  const run = await admin(app, 'POST', '/api/v1/scheduler/run')
  t.equal(run.json().assignments.length, 5, run.body)

  // No file of any member holds a CA private key: every key found (PEM, or base64 inside a
  // kubeconfig) is compared by its public key with the three CA certificates.
  const caPublicKeys = new Map([certs.kubernetes_ca, certs.etcd_ca, certs.front_proxy_ca].map((certificate: string, index) => [openssl(['x509', '-noout', '-pubkey'], certificate), ['kubernetes', 'etcd', 'front-proxy'][index]!]))
  const configs = new Map<number, ReturnType<typeof JSON.parse>>()
  let keysChecked = 0
  for (const n of [1, 2, 3, 4, 5]) {
    const response = await takeSlotAndFetchConfig(app, machineOf(n))
    t.equal(response.statusCode, 200, response.body)
    const config = response.json()
    configs.set(n, config)
    t.same(validateWithOfficialSchema(config), { ok: true, errors: [] }, `machine ${n}: valid against the official Ignition schema`)
    for (const { at, key } of privateKeysIn(config)) {
      keysChecked++
      const publicKey = openssl(['pkey', '-pubout'], key)
      t.notOk(caPublicKeys.has(publicKey), `machine ${n}: ${at} holds no CA key (${caPublicKeys.get(publicKey) ?? 'not a CA'})`)
    }
  }
  // Per control-plane member: 7 leaf keys, 5 kubeconfigs and sa.key; per node: its kubelet's.
  t.equal(keysChecked, 3 * 13 + 2, `${keysChecked} private keys found and checked across the 5 machines`)

  const cpConfig = configs.get(1)!
  t.equal(fileIn(cpConfig, '/etc/kubernetes/pki/ca.crt')?.text, certs.kubernetes_ca, 'the control plane trusts the cluster CA')
  for (const file of ['ca.key', 'etcd/ca.key', 'front-proxy-ca.key']) t.notOk(fileIn(cpConfig, `/etc/kubernetes/pki/${file}`), `no ${file}: kubeadm runs in external-CA mode`)
  const leaves = ['apiserver', 'apiserver-kubelet-client', 'apiserver-etcd-client', 'front-proxy-client', 'etcd/server', 'etcd/peer', 'etcd/healthcheck-client']
  for (const leaf of leaves) {
    const certificate = fileIn(cpConfig, `/etc/kubernetes/pki/${leaf}.crt`)
    const key = fileIn(cpConfig, `/etc/kubernetes/pki/${leaf}.key`)
    t.equal(key?.mode, 0o600, `${leaf}.key is written mode 0600`)
    const issuer = leaf.startsWith('etcd/') || leaf === 'apiserver-etcd-client' ? certs.etcd_ca : leaf === 'front-proxy-client' ? certs.front_proxy_ca : certs.kubernetes_ca
    t.match(openssl(['verify', '-CAfile', pem('issuer.crt', issuer), pem('leaf.crt', certificate!.text)]), /leaf\.crt: OK/, `${leaf}.crt verifies against its CA`)
    t.equal(openssl(['pkey', '-pubout'], key!.text), openssl(['x509', '-noout', '-pubkey'], certificate!.text), `${leaf}.key belongs to ${leaf}.crt`)
  }
  t.match(openssl(['x509', '-noout', '-ext', 'subjectAltName'], fileIn(cpConfig, '/etc/kubernetes/pki/apiserver.crt')!.text), new RegExp(`DNS:api\\.alpha\\.apps\\.slipway\\.internal[\\s\\S]*IP Address:${ipOf(1).replaceAll('.', '\\.')}`), 'the API server serves the endpoint name and its own address')
  const cp2Peer = fileIn(configs.get(2)!, '/etc/kubernetes/pki/etcd/peer.crt')!.text
  t.match(openssl(['x509', '-noout', '-subject', '-ext', 'subjectAltName'], cp2Peer), new RegExp(`CN\\s*=\\s*alpha-cp-2[\\s\\S]*IP Address:${ipOf(2).replaceAll('.', '\\.')}`), 'each member has its own etcd peer certificate')
  for (const file of ['etcd/ca.crt', 'front-proxy-ca.crt', 'sa.key', 'sa.pub']) t.ok(fileIn(cpConfig, `/etc/kubernetes/pki/${file}`), `control plane gets ${file}`)
  const adminConf = kubeconfigIn(cpConfig, '/etc/kubernetes/admin.conf')
  t.equal(adminConf.server, 'https://api.alpha.apps.slipway.internal:6443', 'admin.conf talks to the control-plane endpoint')
  t.match(openssl(['x509', '-noout', '-subject', '-nameopt', 'sep_comma_plus_space'], adminConf.certificate), /O\s*=\s*kubeadm:cluster-admins, CN\s*=\s*kubernetes-admin/)
  t.equal(adminConf.ca, certs.kubernetes_ca)
  t.equal(kubeconfigIn(cpConfig, '/etc/kubernetes/scheduler.conf').server, `https://${ipOf(1)}:6443`, "the scheduler talks to its own member's API server")
  const cpEnv = fileIn(cpConfig, '/etc/slipway/cluster.env')!.text
  t.match(cpEnv, /^SLIPWAY_BOOTSTRAP_TOKEN=[a-z0-9]{6}\.[a-z0-9]{16}$/m, 'a kubeadm bootstrap token')
  t.match(cpEnv, new RegExp(`^SLIPWAY_CA_CERT_HASH=${certs.kubernetes_ca_cert_hash}$`, 'm'))
  t.match(cpEnv, new RegExp(`^SLIPWAY_ETCD_INITIAL_CLUSTER=alpha-cp-1=https://${ipOf(1).replaceAll('.', '\\.')}:2380,`, 'm'))
  const token = /^SLIPWAY_BOOTSTRAP_TOKEN=(.*)$/m.exec(cpEnv)![1]!
  const apiserverKey = fileIn(cpConfig, '/etc/kubernetes/pki/apiserver.key')!.text

  const nodeConfig = configs.get(4)!
  t.equal(fileIn(nodeConfig, '/etc/kubernetes/pki/ca.crt')?.text, certs.kubernetes_ca, 'a node trusts the cluster CA')
  t.same(privateKeysIn(nodeConfig).map((found) => found.at), ['/etc/kubernetes/kubelet.conf'], "a node's only private key is its kubelet's")
  const kubelet = kubeconfigIn(nodeConfig, '/etc/kubernetes/kubelet.conf')
  t.match(openssl(['x509', '-noout', '-subject', '-nameopt', 'sep_comma_plus_space'], kubelet.certificate), /O\s*=\s*system:nodes, CN\s*=\s*system:node:alpha-node-1/)
  t.match(openssl(['verify', '-CAfile', ca, pem('kubelet.crt', kubelet.certificate)]), /OK/)
  t.match(fileIn(nodeConfig, '/etc/slipway/cluster.env')!.text, new RegExp(`SLIPWAY_BOOTSTRAP_TOKEN=${token}`), 'and the token to join with')

  // Nothing private through the admin API.
  for (const url of ['/api/v1/clusters', '/api/v1/clusters/alpha', '/api/v1/groups', '/api/v1/groups/alpha-alpha-cp-1', '/api/v1/scheduler', '/metadata?mac=' + macOf(1) + '&os=installed']) {
    const response = url.startsWith('/api') ? await admin(app, 'GET', url) : await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 200, `${url}: ${response.statusCode}`)
    t.notMatch(response.body, /PRIVATE KEY/, `${url} shows no private key`)
    t.notOk(response.body.includes(token), `${url} shows no bootstrap token`)
  }

  // Nothing private in the database files.
  closed = true
  await started.engine.close()
  for (const name of readdirSync(started.dataDir).filter((file) => file.startsWith('slipway.db'))) {
    const bytes = readFileSync(path.join(started.dataDir, name)).toString('latin1')
    t.notOk(bytes.includes('PRIVATE KEY'), `${name} holds no private key in clear`)
    t.notOk(bytes.includes(token), `${name} holds no bootstrap token in clear`)
    t.notOk(bytes.includes(apiserverKey.split('\n')[1]!), `${name} holds no base64 line of a member's key`)
  }

  // A restart opens the same PKI with the key file...
  const again = await startTestEngine({ dataDir: started.dataDir, contentDir: started.contentDir })
  const renderedAgain = await asMachine(again.engine.app, machineOf(1), 'GET', `/ignition?uuid=${uuidOf(1)}&mac=${macOf(1)}&os=installed`)
  t.equal(fileIn(renderedAgain.json(), '/etc/kubernetes/pki/apiserver.key')?.text, apiserverKey, "after a restart the member's stored key is served, not a new one")
  await again.engine.close()

  // ...and refuses to start with another key rather than serve configs it cannot build.
  writeFileSync(keyFile, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o600 })
  await t.rejects(startTestEngine({ dataDir: started.dataDir, contentDir: started.contentDir }), /wrong secrets key/, 'a wrong key file stops the start with a clear message')
  writeFileSync(keyFile, 'too short\n', { mode: 0o600 })
  await t.rejects(startTestEngine({ dataDir: started.dataDir, contentDir: started.contentDir }), /must hold 32 bytes in base64/)
})

t.test('destroying a cluster removes its PKI with it', async (t) => {
  const started = await startTestEngine()
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  const app = started.engine.app
  await admin(app, 'POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_min: 0, nodes_max: 0 })
  await admin(app, 'POST', '/api/v1/clusters', { name: 'gamma', flavor: 'one' })
  t.equal((await admin(app, 'DELETE', '/api/v1/clusters/gamma')).statusCode, 204)
  t.equal((await admin(app, 'GET', '/api/v1/clusters/gamma/certificates')).json().code, 'CLUSTER_NOT_FOUND')
  const rows = await started.engine.store.selectFrom('cluster_pki').selectAll().execute()
  t.same(rows, [], 'no PKI row outlives its cluster')
  // Re-creating the name issues a fresh CA.
  await admin(app, 'POST', '/api/v1/clusters', { name: 'gamma', flavor: 'one' })
  t.equal((await admin(app, 'GET', '/api/v1/clusters/gamma/certificates')).statusCode, 200)
})

t.test("a member whose certificates are not issued yet is told to ask again; the engine's certificate check issues them at start", async (t) => {
  const listening = { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' }
  const first = await startTestEngine({ env: listening })
  t.teardown(() => removeTree(path.dirname(first.dataDir)))
  await admin(first.engine.app, 'POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_min: 0, nodes_max: 0 })
  await admin(first.engine.app, 'POST', '/api/v1/clusters', { name: 'solo', flavor: 'one' })
  await discover(first.engine.app, 1)
  t.equal((await admin(first.engine.app, 'POST', '/api/v1/scheduler/run')).json().assignments.length, 1)
  // As after an inventory import: a membership without its issued set.
  await first.engine.store.deleteFrom('member_certificates').execute()
  await first.engine.close()

  const second = await startTestEngine({ dataDir: first.dataDir, contentDir: first.contentDir, env: listening })
  t.teardown(() => second.engine.close())
  const pending = await takeSlotAndFetchConfig(second.engine.app, machineOf(1))
  t.equal(pending.statusCode, 503, pending.body)
  t.equal(pending.json().code, 'CERTIFICATES_PENDING')
  t.equal(pending.headers['retry-after'], '2', 'Ignition is told when to ask again')
  await second.engine.start()
  const served = await until('the certificate check to issue the set', async () => {
    const response = await asMachine(second.engine.app, machineOf(1), 'GET', `/ignition?uuid=${uuidOf(1)}&mac=${macOf(1)}&os=installed`)
    return response.statusCode === 200 ? response : undefined
  })
  t.ok(fileIn(served.json(), '/etc/kubernetes/pki/apiserver.crt'), 'then the config comes whole')
})
