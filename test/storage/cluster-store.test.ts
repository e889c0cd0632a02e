/**
 * The cluster store on a real SQLite file and a real PostgreSQL database, below HTTP: sealing of secrets, concurrent scheduling
 * passes that bypass the scheduler job (the store alone must prevent double assignment), and the
 * admin kubeconfig the engine keeps for registering a cluster, checked with openssl.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { ClusterService } from '../../src/core/clusters/cluster-service.ts'
import { MachineService } from '../../src/core/machines/machine-service.ts'
import { clusterRepository } from '../../src/storage/repositories/clusters.ts'
import { machineRepository } from '../../src/storage/repositories/machines.ts'
import { SecretBox } from '../../src/storage/secret-box.ts'
import { syncFolderContent } from '../../src/storage/content-sync.ts'
import { readContentFolders } from '../../src/adapters/content/content-folders.ts'
import { copySampleContent, removeTree } from '../helpers/engine.ts'
import { forEachBackend, testStore, type BackendName } from '../helpers/backends.ts'
import type { Test } from 'tap'

const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-cluster-store-'))
t.teardown(() => removeTree(scratch))

t.test('SecretBox: sealed values open only with their key and context, and detect tampering', async (t) => {
  const keyFile = path.join(scratch, 'keys', 'secrets.key')
  const box = SecretBox.fromKeyFile(keyFile)
  t.equal(statSync(keyFile).mode & 0o777, 0o600)
  const sealed = box.seal('the secret', 'cluster_pki:a')
  t.notOk(Buffer.from(sealed).toString('latin1').includes('the secret'))
  t.equal(box.open(sealed, 'cluster_pki:a'), 'the secret')
  t.not(Buffer.compare(sealed, box.seal('the secret', 'cluster_pki:a')), 0, 'a fresh nonce every time')
  t.equal(SecretBox.fromKeyFile(keyFile).open(sealed, 'cluster_pki:a'), 'the secret', 'the key file is reused, not regenerated')
  t.throws(() => box.open(sealed, 'cluster_pki:b'), /wrong secrets key .* or altered data/, 'bound to its context: a value copied to another row does not open')
  const altered = Buffer.from(sealed)
  altered[altered.length - 1]! ^= 1
  t.throws(() => box.open(altered, 'cluster_pki:a'), /altered data/)
  t.throws(() => SecretBox.fromKey(Buffer.alloc(32, 1)).open(sealed, 'cluster_pki:a'), /wrong secrets key/)
  t.throws(() => box.open(Buffer.from('x'), 'cluster_pki:a'), /not in a known format/)
  writeFileSync(path.join(scratch, 'loose.key'), `${Buffer.alloc(32, 2).toString('base64')}\n`, { mode: 0o644 })
  SecretBox.fromKeyFile(path.join(scratch, 'loose.key'))
  t.equal(statSync(path.join(scratch, 'loose.key')).mode & 0o777, 0o600, 'a key file readable by others is tightened to 0600')
})

async function storeWithContent(t: Test, backend: BackendName) {
  const store = await testStore(t, backend)
  const content = path.join(scratch, `${t.name}-content`.replace(/[^\w-]/g, '_'))
  copySampleContent(content)
  const folders = await readContentFolders({
    profilesDir: path.join(content, 'profiles'),
    ignitionDir: path.join(content, 'ignition'),
    ipxeDir: path.join(content, 'ipxe'),
    genericDir: path.join(content, 'generic'),
  })
  await syncFolderContent(store, folders, new Date().toISOString())
  return store
}

const uuidOf = (n: number) => `7b2f0000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:0d:${n.toString(16).padStart(2, '0')}`

forEachBackend(t, 'concurrent scheduling passes on one store never give a machine to two clusters', async (t, backend) => {
  const store = await storeWithContent(t, backend)
  const box = SecretBox.fromKey(Buffer.alloc(32, 3))
  const machines = new MachineService(machineRepository(store))
  // Two services over the same store: nothing in memory is shared between them.
  const first = new ClusterService(clusterRepository(store, box), x509ClusterPkiIssuer)
  const second = new ClusterService(clusterRepository(store, box), x509ClusterPkiIssuer)
  await first.createFlavor({ name: 'three', control_plane_count: 3, nodes_min: 0, nodes_max: 3 })
  for (const name of ['a', 'b', 'c']) await first.createCluster({ name, flavor: 'three' })
  for (let n = 1; n <= 10; n++) {
    await machines.discover({ 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: `10.4.0.${n}` }] })
  }
  const passes = await Promise.all([first.schedule(), second.schedule(), first.schedule(), second.schedule()])
  const assigned = passes.flat().flatMap((report) => report.assignments.map((assignment) => assignment.machineUuid))
  t.equal(assigned.length, 10, 'every machine assigned once over all passes')
  t.equal(new Set(assigned).size, 10)
  const members = await store.selectFrom('cluster_members').selectAll().execute()
  t.equal(members.length, 10)
  const count = (cluster: string) => members.filter((member) => member.cluster === cluster).length
  t.equal(count('a'), 6, 'the oldest cluster: 3 control plane + 3 nodes')
  t.equal(count('b'), 4, 'the next: 3 control plane + the one machine left')
  t.equal(count('c'), 0, 'the last: nothing (no quorum left)')
})

forEachBackend(t, 'the admin kubeconfig: the engine can talk to the cluster once it has a control plane', async (t, backend) => {
  const store = await storeWithContent(t, backend)
  const clusters = new ClusterService(clusterRepository(store, SecretBox.fromKey(Buffer.alloc(32, 4))), x509ClusterPkiIssuer)
  await clusters.createFlavor({ name: 'one', control_plane_count: 1, nodes_min: 0, nodes_max: 0 })
  await clusters.createCluster({ name: 'solo', flavor: 'one' })
  await t.rejects(clusters.adminKubeconfig('solo'), { code: 'CLUSTER_NOT_SCHEDULED' })
  await t.rejects(clusters.adminKubeconfig('nope'), { code: 'CLUSTER_NOT_FOUND' })
  await new MachineService(machineRepository(store)).discover({ 'boot-info': { uuid: uuidOf(1), mac: macOf(1) }, interfaces: [{ name: 'eth0', mac: macOf(1), ipv4: '10.5.0.7' }] })
  await clusters.schedule()
  const kubeconfig = parseYaml(await clusters.adminKubeconfig('solo'))
  t.equal(kubeconfig.clusters[0].cluster.server, 'https://10.5.0.7:6443', 'the first control-plane member')
  const decode = (value: string) => Buffer.from(value, 'base64').toString('utf8')
  const caFile = path.join(scratch, `kc-ca-${backend}.crt`)
  const certFile = path.join(scratch, `kc-admin-${backend}.crt`)
  writeFileSync(caFile, decode(kubeconfig.clusters[0].cluster['certificate-authority-data']))
  writeFileSync(certFile, decode(kubeconfig.users[0].user['client-certificate-data']))
  const keyPem = decode(kubeconfig.users[0].user['client-key-data'])
  t.match(execFileSync('openssl', ['verify', '-CAfile', caFile, certFile], { encoding: 'utf8' }), /OK/, 'the client certificate chains to the CA the kubeconfig trusts')
  t.equal(
    execFileSync('openssl', ['pkey', '-pubout'], { input: keyPem, encoding: 'utf8' }),
    execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-pubkey'], { encoding: 'utf8' }),
    'and the key matches the certificate',
  )
  t.equal(kubeconfig['current-context'], 'solo-slipway-admin@solo')
})
