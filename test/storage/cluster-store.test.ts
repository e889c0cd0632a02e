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
  t.equal(kubeconfig.clusters[0].cluster.server, 'https://api.solo.apps.slipway.internal:6443', "the control-plane endpoint, never one member's address")
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

forEachBackend(t, "the engine as each cluster's CA: members' certificates issued at scheduling, renewed before expiry with new keys, re-issued when missing", async (t, backend) => {
  const store = await storeWithContent(t, backend)
  const repository = clusterRepository(store, SecretBox.fromKey(Buffer.alloc(32, 5)))
  const told: string[][] = []
  const clusters = new ClusterService(repository, x509ClusterPkiIssuer, undefined, { certificatesChanged: (uuids) => void told.push(uuids) }, { zone: 'z.test' })
  const day = 86_400_000
  const t0 = new Date('2027-01-01T00:00:00Z')
  await clusters.createFlavor({ name: 'pair', control_plane_count: 1, nodes_min: 0, nodes_max: 1 })
  await clusters.createCluster({ name: 'duo', flavor: 'pair' }, t0)
  const machines = new MachineService(machineRepository(store))
  for (const n of [1, 2]) await machines.discover({ 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: `10.6.0.${n}` }] })
  await clusters.schedule(t0)
  const stamps = async () => new Map((await repository.listMemberCertificateStamps()).map((stamp) => [stamp.machineUuid, stamp]))
  const first = await stamps()
  t.same([...first.keys()].sort(), [uuidOf(1), uuidOf(2)], 'both members got their certificates with the scheduling pass')
  t.equal(Math.round((Date.parse(first.get(uuidOf(1))!.notAfter) - t0.getTime()) / day), 365)
  t.same(told, [[uuidOf(1), uuidOf(2)]], 'and the engine was told, to re-render them')
  const cpSet = (await repository.findMemberCertificates(uuidOf(1)))!
  t.equal(cpSet.certificates.length, 12, "a control-plane member: kubeadm's 7 certificates and 5 kubeconfigs")
  t.equal((await repository.findMemberCertificates(uuidOf(2)))!.certificates.length, 1, 'a node: its kubelet.conf')
  const stored = await store.selectFrom('member_certificates').select(['sealed', 'certificates']).execute()
  t.ok(stored.every((row) => !Buffer.from(row.sealed).toString('latin1').includes('PRIVATE KEY') && !row.certificates.includes('PRIVATE KEY')), 'no private key in clear in the database')

  const quiet = await clusters.ca.issue(new Date(t0.getTime() + 300 * day))
  t.same(quiet, { issued: [], adminRenewed: [] }, '65 days before expiry: nothing to do')

  const pkiBefore = (await repository.findClusterPki('duo'))!
  const renewal = await clusters.ca.issue(new Date(t0.getTime() + 340 * day))
  t.same(renewal.issued.map((entry) => [entry.hostname, entry.renewal]).sort(), [['duo-cp-1', true], ['duo-node-1', true]], '25 days before expiry: both renewed')
  t.same(renewal.adminRenewed, ['duo'], "and the engine's own admin certificate")
  const renewedSet = (await repository.findMemberCertificates(uuidOf(1)))!
  t.equal(Math.round((Date.parse(renewedSet.notAfter) - t0.getTime()) / day), 340 + 365, 'valid a year from the renewal')
  const keysBefore = new Set(cpSet.certificates.map((issued) => issued.privateKeyPem))
  t.ok(renewedSet.certificates.every((issued) => !keysBefore.has(issued.privateKeyPem)), 'every renewed certificate has a new key')
  const pkiAfter = (await repository.findClusterPki('duo'))!
  t.not(pkiAfter.admin.certificatePem, pkiBefore.admin.certificatePem)
  t.equal(pkiAfter.kubernetesCa.certificatePem, pkiBefore.kubernetesCa.certificatePem, 'the CAs stay')
  t.equal(pkiAfter.kubernetesCa.privateKeyPem, pkiBefore.kubernetesCa.privateKeyPem)
  t.ok(Date.parse(x509ClusterPkiIssuer.notAfter(pkiAfter.admin.certificatePem)) > t0.getTime() + 700 * day)

  // An inventory import brings memberships without their sets: the next check issues them.
  await store.deleteFrom('member_certificates').where('machine_uuid', '=', uuidOf(2)).execute()
  const reissued = await clusters.ca.issue(new Date(t0.getTime() + 341 * day))
  t.same(reissued.issued.map((entry) => [entry.hostname, entry.renewal]), [['duo-node-1', false]])

  await clusters.destroyCluster('duo')
  t.equal((await repository.listMemberCertificateStamps()).length, 0, "a destroyed cluster's certificates go with it")
})

forEachBackend(t, "full DHCP mode: the scheduler reserves each member's boot address, and removes only its own reservations when the cluster goes", async (t, backend) => {
  const store = await storeWithContent(t, backend)
  const clusters = new ClusterService(clusterRepository(store, SecretBox.fromKey(Buffer.alloc(32, 6))), x509ClusterPkiIssuer, undefined, {}, { zone: 'z.test', reserveAddresses: true })
  await clusters.createFlavor({ name: 'three', control_plane_count: 1, nodes_min: 0, nodes_max: 2 })
  await clusters.createCluster({ name: 'held', flavor: 'three' })
  const machines = new MachineService(machineRepository(store))
  for (const n of [1, 2, 3]) await machines.discover({ 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: `10.7.0.${n}` }] })
  // An operator already reserved machine 2's MAC elsewhere: the scheduler leaves it as it is.
  const at = new Date().toISOString()
  await store.insertInto('dhcp_reservations').values({ mac: macOf(2), ip: '10.7.0.200', hostname: 'pinned', cluster: null, created_at: at, updated_at: at }).execute()
  await clusters.schedule()
  const reservations = async () => (await store.selectFrom('dhcp_reservations').select(['mac', 'ip', 'hostname', 'cluster']).orderBy('mac').execute()).map((row) => ({ ...row }))
  t.same(await reservations(), [
    { mac: macOf(1), ip: '10.7.0.1', hostname: 'held-cp-1', cluster: 'held' },
    { mac: macOf(2), ip: '10.7.0.200', hostname: 'pinned', cluster: null },
    { mac: macOf(3), ip: '10.7.0.3', hostname: 'held-node-2', cluster: 'held' },
  ], 'members 1 and 3 reserved for the cluster; the operator’s reservation untouched')
  await clusters.destroyCluster('held')
  t.same(await reservations(), [{ mac: macOf(2), ip: '10.7.0.200', hostname: 'pinned', cluster: null }], 'destroying the cluster removes its reservations only')
})
