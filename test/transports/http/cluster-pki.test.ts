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
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { validateWithOfficialSchema } from '../../helpers/ignition-schema.ts'
import { asMachine, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'

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

  // Schedule alpha: 3 control-plane members and a node.
  for (const n of [1, 2, 3, 4]) await discover(app, n)
  const run = await admin(app, 'POST', '/api/v1/scheduler/run')
  t.equal(run.json().assignments.length, 4, run.body)

  const controlPlane = await takeSlotAndFetchConfig(app, machineOf(1))
  t.equal(controlPlane.statusCode, 200, controlPlane.body)
  const cpConfig = controlPlane.json()
  t.same(validateWithOfficialSchema(cpConfig), { ok: true, errors: [] }, 'the control-plane config is valid against the official Ignition schema')
  t.equal(fileIn(cpConfig, '/etc/kubernetes/pki/ca.crt')?.text, certs.kubernetes_ca, 'the control plane trusts the cluster CA')
  const caKey = fileIn(cpConfig, '/etc/kubernetes/pki/ca.key')
  t.equal(caKey?.mode, 0o600, 'CA keys are written mode 0600')
  t.equal(
    openssl(['pkey', '-in', pem('ca.key', caKey!.text), '-pubout']),
    openssl(['x509', '-in', ca, '-noout', '-pubkey']),
    'the CA key the control plane gets belongs to the CA certificate',
  )
  for (const file of ['etcd/ca.crt', 'etcd/ca.key', 'front-proxy-ca.crt', 'front-proxy-ca.key', 'sa.key', 'sa.pub']) {
    t.ok(fileIn(cpConfig, `/etc/kubernetes/pki/${file}`), `control plane gets ${file}`)
  }
  const cpEnv = fileIn(cpConfig, '/etc/slipway/cluster.env')!.text
  t.match(cpEnv, /^SLIPWAY_BOOTSTRAP_TOKEN=[a-z0-9]{6}\.[a-z0-9]{16}$/m, 'a kubeadm bootstrap token')
  t.match(cpEnv, new RegExp(`^SLIPWAY_CA_CERT_HASH=${certs.kubernetes_ca_cert_hash}$`, 'm'))
  t.match(cpEnv, new RegExp(`^SLIPWAY_ETCD_INITIAL_CLUSTER=alpha-cp-1=https://${ipOf(1).replaceAll('.', '\\.')}:2380,`, 'm'))
  const token = /^SLIPWAY_BOOTSTRAP_TOKEN=(.*)$/m.exec(cpEnv)![1]!

  const node = await takeSlotAndFetchConfig(app, machineOf(4))
  t.equal(node.statusCode, 200, node.body)
  const nodeConfig = node.json()
  t.same(validateWithOfficialSchema(nodeConfig), { ok: true, errors: [] }, 'the node config is valid against the official Ignition schema')
  t.equal(fileIn(nodeConfig, '/etc/kubernetes/pki/ca.crt')?.text, certs.kubernetes_ca, 'a node trusts the cluster CA')
  t.notMatch(node.body, /PRIVATE KEY/, 'a node gets no private key at all')
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
    t.notOk(bytes.includes(caKey!.text.split('\n')[1]!), `${name} holds no base64 line of the CA key`)
  }

  // A restart opens the same PKI with the key file...
  const again = await startTestEngine({ dataDir: started.dataDir, contentDir: started.contentDir })
  const renderedAgain = await asMachine(again.engine.app, machineOf(1), 'GET', `/ignition?uuid=${uuidOf(1)}&mac=${macOf(1)}&os=installed`)
  t.equal(fileIn(renderedAgain.json(), '/etc/kubernetes/pki/ca.key')?.text, caKey!.text, 'after a restart the same CA key is served')
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
