/**
 * The kubeadm configuration each member of a 3 control-plane + 2 node cluster is served, checked
 * against the v1beta4 JSON Schema written from the published API reference
 * (test/fixtures/kubeadm/v1beta4.schema.json) and against the rules kubeadm enforces across fields and
 * across members: one init, a control-plane endpoint every join discovers through, the bootstrap token
 * and CA pin of the cluster, and a stacked etcd whose members are exactly the initial cluster the
 * scheduler computed. No kubeadm binary runs here (there is no Flatcar image or kube-apiserver on
 * these machines): the schema and these rules stand in for kubeadm's own validation.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import AjvModule from 'ajv'
import t from 'tap'
import YAML from 'yaml'
import { auth, REPO_ROOT, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { validateWithOfficialSchema } from '../../helpers/ignition-schema.ts'
import { reportInstalled, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'
import { until } from '../../helpers/wait.ts'

const Ajv = AjvModule.default
const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(path.join(REPO_ROOT, 'test/fixtures/kubeadm/v1beta4.schema.json'), 'utf8')) as object)

const uuidOf = (n: number) => `4b1a0000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:4b:${n.toString(16).padStart(2, '0')}`
const ipOf = (n: number) => `10.8.0.${10 + n}`
const admin = (app: FastifyInstance, method: 'GET' | 'POST', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })

type Config = { storage: { files: { path: string; contents: { source: string } }[] }; systemd: { units: { name: string; enabled?: boolean; contents?: string }[] } }
const fileIn = (config: Config, at: string) => {
  const file = config.storage.files.find((candidate) => candidate.path === at)
  return file ? decodeURIComponent(file.contents.source.replace(/^data:,/, '')) : undefined
}
const envOf = (text: string) => Object.fromEntries(text.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))

/** A CIDR as [first, last] addresses, numerically. */
function range(cidr: string): [number, number] {
  const [address, bits] = cidr.split('/')
  const value = address!.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0)
  const size = 2 ** (32 - Number(bits))
  return [value - (value % size), value - (value % size) + size - 1]
}

t.test('a 3 + 2 cluster: every member’s kubeadm configuration is valid v1beta4 and the members agree', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  await admin(app, 'POST', '/api/v1/flavors', { name: 'ha', control_plane_count: 3, nodes_min: 0, nodes_max: 2, kubernetes_version: 'v1.32.4' })
  await admin(app, 'POST', '/api/v1/clusters', { name: 'alpha', flavor: 'ha' })
  for (let n = 1; n <= 5; n++) {
    await app.inject({
      method: 'POST',
      url: '/discovery',
      payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n), cidrv4: `${ipOf(n)}/24` }] },
    })
  }
  t.equal((await admin(app, 'POST', '/api/v1/scheduler/run')).json().assignments.length, 5)

  const members: { n: number; config: Config; env: Record<string, string>; documents: Record<string, any>[] }[] = []
  for (let n = 1; n <= 5; n++) {
    const response = await takeSlotAndFetchConfig(app, { uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) })
    t.equal(response.statusCode, 200, response.body)
    const config = response.json() as Config
    const documents = YAML.parseAllDocuments(fileIn(config, '/etc/slipway/kubeadm.yaml')!).map((document) => document.toJSON() as Record<string, any>)
    for (const document of documents) t.ok(validate(document), `machine ${n}: ${document.kind} is valid v1beta4 ${JSON.stringify(validate.errors ?? [])}`)
    members.push({ n, config, env: envOf(fileIn(config, '/etc/slipway/cluster.env')!), documents })
  }
  const kinds = members.map((member) => member.documents.map((document) => document.kind).join('+'))
  t.same(kinds, ['InitConfiguration+ClusterConfiguration+KubeletConfiguration', 'JoinConfiguration', 'JoinConfiguration', 'JoinConfiguration', 'JoinConfiguration'], 'one member inits (the first control-plane member); the others join')

  const [init, cluster, kubelet] = members[0]!.documents as [Record<string, any>, Record<string, any>, Record<string, any>]
  const endpoint = 'api.alpha.apps.slipway.internal:6443'
  t.equal(cluster.controlPlaneEndpoint, endpoint, 'a control-plane endpoint (kubeadm requires one to add control-plane members)')
  t.equal(cluster.clusterName, 'alpha')
  t.equal(cluster.kubernetesVersion, 'v1.32.4', "the flavor's Kubernetes version")
  t.equal(cluster.certificatesDir, '/etc/kubernetes/pki')
  t.equal(cluster.encryptionAlgorithm, 'ECDSA-P256', 'the algorithm of the certificates the engine issued')
  const [service, pods] = [range(cluster.networking.serviceSubnet), range(cluster.networking.podSubnet)]
  t.ok(service[1] < pods[0] || pods[1] < service[0], `service ${cluster.networking.serviceSubnet} and pod ${cluster.networking.podSubnet} subnets do not overlap`)
  t.same(kubelet, { apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', cgroupDriver: 'systemd', rotateCertificates: false, serverTLSBootstrap: false }, 'no CSR signer runs without the CA key: the engine renews kubelet certificates')

  // The bootstrap token and CA pin are the cluster's, everywhere.
  const token = members[0]!.env.SLIPWAY_BOOTSTRAP_TOKEN!
  t.same(init.bootstrapTokens.map((entry: { token: string }) => entry.token), [token], 'init creates the token the joins use')
  const caHash = `sha256:${execFileSync('openssl', ['dgst', '-sha256', '-r'], { input: execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: execFileSync('openssl', ['x509', '-noout', '-pubkey'], { input: fileIn(members[0]!.config, '/etc/kubernetes/pki/ca.crt')! }) }) }).toString().split(' ')[0]}`
  for (const member of members.slice(1)) {
    const join = member.documents[0]!
    t.same(join.discovery.bootstrapToken, { token, apiServerEndpoint: endpoint, caCertHashes: [caHash] }, `machine ${member.n} discovers through the endpoint with the token, pinning the cluster CA`)
    t.same(join.nodeRegistration.ignorePreflightErrors, ['FileAvailable--etc-kubernetes-kubelet.conf', 'FileAvailable--etc-kubernetes-pki-ca.crt'], 'the files the engine wrote on purpose are not preflight errors')
  }

  // Each member registers under its hostname at its boot address; control-plane members advertise it.
  const localEndpoints = members.map((member) => {
    const first = member.documents[0]!
    return { name: first.nodeRegistration.name as string, endpoint: (first.kind === 'InitConfiguration' ? first.localAPIEndpoint : first.controlPlane?.localAPIEndpoint) as { advertiseAddress: string; bindPort: number } | undefined, nodeIp: first.nodeRegistration.kubeletExtraArgs.find((arg: { name: string }) => arg.name === 'node-ip')?.value }
  })
  t.same(localEndpoints.map((entry) => entry.name), ['alpha-cp-1', 'alpha-cp-2', 'alpha-cp-3', 'alpha-node-1', 'alpha-node-2'])
  t.same(localEndpoints.map((entry) => entry.nodeIp), members.map((member) => ipOf(member.n)), 'the kubelet uses the boot address')
  t.same(localEndpoints.map((entry) => entry.endpoint), [1, 2, 3].map((n) => ({ advertiseAddress: ipOf(n), bindPort: 6443 })).concat([undefined!, undefined!]), 'control-plane members advertise their boot address on the endpoint’s port; nodes run no API server')
  // Stacked etcd: kubeadm names each member after its node and peers at https://<advertiseAddress>:2380.
  const kubeadmEtcd = localEndpoints.filter((entry) => entry.endpoint).map((entry) => `${entry.name}=https://${entry.endpoint!.advertiseAddress}:2380`)
  for (const member of members) t.same(kubeadmEtcd, member.env.SLIPWAY_ETCD_INITIAL_CLUSTER?.split(',') ?? kubeadmEtcd, `machine ${member.n}: the etcd kubeadm grows is the scheduler's initial cluster`)
  t.equal(members[0]!.env.SLIPWAY_ETCD_INITIAL_CLUSTER!.split(',').length, 3)

  // External-CA mode: kubeadm must find every kubeconfig and certificate of its role already there.
  for (const member of members.slice(0, 3)) {
    for (const file of ['admin.conf', 'super-admin.conf', 'controller-manager.conf', 'scheduler.conf', 'kubelet.conf', 'pki/apiserver.crt', 'pki/apiserver.key', 'pki/etcd/peer.crt', 'pki/etcd/server.key', 'pki/sa.key', 'pki/front-proxy-client.crt']) {
      t.ok(fileIn(member.config, `/etc/kubernetes/${file}`), `machine ${member.n} has /etc/kubernetes/${file}`)
    }
  }
  const apiserverSans = execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: fileIn(members[0]!.config, '/etc/kubernetes/pki/apiserver.crt')! }).toString()
  t.match(apiserverSans, /IP Address:10\.96\.0\.1/, "the API server's certificate carries the first service address (the kubernetes Service)")
  t.ok(cluster.apiServer.certSANs.every((name: string) => apiserverSans.includes(`DNS:${name}`)), 'and every certSAN the configuration asks for')

  // The bootstrap runs once, after containerd and the sysext, retried until it succeeds.
  for (const member of members) {
    const unit = member.config.systemd.units.find((candidate) => candidate.name === 'slipway-kubeadm.service')
    t.ok(unit?.enabled, `machine ${member.n}: slipway-kubeadm.service enabled`)
    t.match(unit?.contents, /After=network-online\.target containerd\.service systemd-sysext\.service[\s\S]*ConditionPathExists=!\/var\/lib\/slipway\/kubeadm\.done[\s\S]*Restart=on-failure/)
    t.equal(fileIn(member.config, '/opt/slipway/bin/kubeadm-bootstrap'), readFileSync(path.join(REPO_ROOT, 'generic/kubeadm-bootstrap.sh'), 'utf8'), 'the bootstrap script as it is in generic/')
    t.ok(member.config.systemd.units.find((candidate) => candidate.name === 'kubelet.service')?.enabled, 'the kubelet starts on every boot')
  }
})

t.test('the schema is closed: a misspelt or misplaced field fails, as kubeadm’s strict decoding does', async (t) => {
  const base = { apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'ClusterConfiguration', controlPlaneEndpoint: 'api.x:6443' }
  t.ok(validate(base))
  t.notOk(validate({ ...base, controlplaneEndpoint: 'api.x:6443' }), 'a misspelt field')
  t.notOk(validate({ ...base, apiVersion: 'kubeadm.k8s.io/v1beta3' }), 'another API version')
  t.notOk(validate({ apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'JoinConfiguration', discovery: { bootstrapToken: { token: 'ABCDEF.0123456789abcdef' } } }), 'a token kubeadm would not accept')
  t.notOk(validate({ apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'JoinConfiguration', discovery: { bootstrapToken: { token: 'abcdef.0123456789abcdef', caCertHashes: ['sha1:00'] } } }), 'a CA pin kubeadm would not accept')
  t.notOk(validate({ apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'InitConfiguration', nodeRegistration: { kubeletExtraArgs: { 'node-ip': '10.0.0.1' } } }), 'v1beta3’s map form of extra args')
})

t.test("a flavor's network: its own subnets and DNS domain, a kube-vip VIP as the endpoint, static boot addresses", async (t) => {
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_DHCP_DNS_SERVERS: '10.8.0.2,10.8.0.3', SLIPWAY_IMAGES_KUBERNETES_IMAGE_REPOSITORY: 'mirror.lab:5000/k8s' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const network = { service_subnet: '10.100.0.0/16', pod_subnet: '10.200.0.0/16', dns_domain: 'k8s.lab', control_plane_vip: '10.8.0.250', static_network: true }
  const created = await admin(app, 'POST', '/api/v1/flavors', { name: 'vip', control_plane_count: 3, nodes_min: 0, nodes_max: 1, ...network })
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json(), network, 'the flavor answers its network as it was given')
  await admin(app, 'POST', '/api/v1/clusters', { name: 'bravo', flavor: 'vip' })
  for (let n = 1; n <= 4; n++) {
    const discovered = await app.inject({
      method: 'POST',
      url: '/discovery',
      payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'ens3', mac: macOf(n), ipv4: ipOf(n), cidrv4: `${ipOf(n)}/24`, gateway: '10.8.0.1' }] },
    })
    t.equal(discovered.statusCode, 200, discovered.body)
  }
  t.equal((await admin(app, 'POST', '/api/v1/scheduler/run')).json().assignments.length, 4)

  const configs: Config[] = []
  for (let n = 1; n <= 4; n++) {
    const response = await takeSlotAndFetchConfig(app, { uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) })
    t.equal(response.statusCode, 200, response.body)
    configs.push(response.json() as Config)
  }
  const documentsOf = (config: Config) => YAML.parseAllDocuments(fileIn(config, '/etc/slipway/kubeadm.yaml')!).map((document) => document.toJSON() as Record<string, any>)
  const cluster = documentsOf(configs[0]!)[1]!
  t.ok(validate(cluster), JSON.stringify(validate.errors ?? []))
  t.same(cluster.networking, { serviceSubnet: '10.100.0.0/16', podSubnet: '10.200.0.0/16', dnsDomain: 'k8s.lab' }, "kubeadm gets the flavor's networking")
  t.equal(cluster.imageRepository, 'mirror.lab:5000/k8s', 'and pulls the control plane from the configured registry')
  t.same(cluster.apiServer.certSANs, ['api.bravo.apps.slipway.internal', '10.8.0.250'])
  t.equal(cluster.controlPlaneEndpoint, 'api.bravo.apps.slipway.internal:6443', 'the endpoint stays a name; DNS answers the VIP')
  const sans = execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: fileIn(configs[0]!, '/etc/kubernetes/pki/apiserver.crt')! }).toString()
  t.match(sans, /DNS:kubernetes\.default\.svc\.k8s\.lab/, "the API server's certificate names the flavor's DNS domain")
  t.match(sans, /IP Address:10\.100\.0\.1\b/, 'the first address of the flavor’s service subnet (the kubernetes Service)')
  t.match(sans, /IP Address:10\.8\.0\.250\b/, 'and the VIP')
  t.notMatch(sans, /10\.96\.0\.1\b/, "not kubeadm's default service address")
  for (const [index, config] of configs.slice(1, 3).entries()) {
    const join = documentsOf(config)[0]!
    t.ok(validate(join), JSON.stringify(validate.errors ?? []))
    t.ok(join.nodeRegistration.ignorePreflightErrors.includes('DirAvailable--etc-kubernetes-manifests'), `cp-${index + 2} joins with kube-vip's manifest already in place`)
  }

  // kube-vip on each control-plane member, announcing the VIP on the boot interface; none on the node.
  for (const [index, config] of configs.slice(0, 3).entries()) {
    const manifest = config.storage.files.find((file) => file.path === '/etc/kubernetes/manifests/kube-vip.yaml') as { mode?: number } | undefined
    t.equal(manifest?.mode, 0o600, `cp-${index + 1}: kube-vip's static pod, mode 0600`)
    const pod = YAML.parse(fileIn(config, '/etc/kubernetes/manifests/kube-vip.yaml')!)
    const env = Object.fromEntries(pod.spec.containers[0].env.filter((entry: { value?: string }) => entry.value !== undefined).map((entry: { name: string; value: string }) => [entry.name, entry.value]))
    t.match(pod, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'kube-vip', namespace: 'kube-system' }, spec: { hostNetwork: true, hostAliases: [{ ip: '127.0.0.1', hostnames: ['kubernetes'] }] } })
    t.match(env, { address: '10.8.0.250', vip_interface: 'ens3', port: '6443', cp_enable: 'true', vip_arp: 'true', vip_leaderelection: 'true' })
    t.same(pod.spec.containers[0].securityContext.capabilities.add, ['NET_ADMIN', 'NET_RAW'])
    t.equal(pod.spec.containers[0].image, 'ghcr.io/kube-vip/kube-vip:v0.8.9')
    t.equal(pod.spec.volumes[0].hostPath.path, index === 0 ? '/etc/kubernetes/super-admin.conf' : '/etc/kubernetes/admin.conf', index === 0 ? 'the init member: super-admin.conf, since admin.conf has no rights before init binds them' : 'a joining member: admin.conf')
  }
  t.notOk(fileIn(configs[3]!, '/etc/kubernetes/manifests/kube-vip.yaml'), 'a node runs no kube-vip')

  // Every member keeps the address it was scheduled with, without DHCP.
  for (const [index, config] of configs.entries()) {
    const n = index + 1
    t.equal(
      fileIn(config, '/etc/systemd/network/00-slipway-boot.network'),
      `# Slipway: the boot address this machine was discovered and scheduled with, kept without DHCP.\n[Match]\nMACAddress=${macOf(n)}\n\n[Network]\nDHCP=no\nAddress=${ipOf(n)}/24\nGateway=10.8.0.1\nDNS=10.8.0.2\nDNS=10.8.0.3\nDomains=apps.slipway.internal\n\n[Link]\nRequiredForOnline=yes\n`,
      `machine ${n}: a networkd unit for its boot interface`,
    )
  }

  // The endpoint answers the VIP once a control-plane member is installed.
  for (let n = 1; n <= 3; n++) await reportInstalled(app, { uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) })
  await until('the endpoint answering the VIP', async () => JSON.stringify((await admin(app, 'GET', '/api/v1/dns/names')).json()).includes('10.8.0.250') || undefined, 15_000)
  const hosts = (await admin(app, 'GET', '/api/v1/dns/names')).json().hosts as { name: string; addresses: string[] }[]
  t.same(hosts.find((host) => host.name === 'api.bravo.apps.slipway.internal')?.addresses, ['10.8.0.250'], 'api.bravo answers the VIP alone')
})

t.test('a flavor whose network cannot work is refused, and nothing is created', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const base = { control_plane_count: 1, nodes_max: 1 }
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['not a CIDR', { service_subnet: '10.96.0.0' }, /service_subnet "10\.96\.0\.0" is not an IPv4 subnet in CIDR form/],
    ['host bits set', { pod_subnet: '10.244.1.0/16' }, /has host bits set/],
    ['a /8 service range', { service_subnet: '10.0.0.0/8' }, /wider than the API server accepts/],
    ['overlapping subnets', { service_subnet: '10.96.0.0/12', pod_subnet: '10.100.0.0/16' }, /overlap/],
    ['a VIP in the service subnet', { control_plane_vip: '10.96.0.10' }, /inside service_subnet/],
    ['a VIP that is not an address', { control_plane_vip: '10.0.0.300' }, /not an IPv4 address/],
    ['a DNS domain with a space', { dns_domain: 'my cluster' }, /dns_domain/],
  ]
  for (const [what, fields, message] of cases) {
    const refused = await admin(app, 'POST', '/api/v1/flavors', { name: 'bad', ...base, ...fields })
    t.equal(refused.statusCode, 400, `${what}: 400`)
    t.match(refused.json(), { code: /^(INVALID_FLAVOR|VALIDATION_FAILED)$/ }, what)
    t.match(refused.json().message, message, what)
  }
  t.same((await admin(app, 'GET', '/api/v1/flavors')).json(), [], 'no flavor was created')
})

t.test('in proxy DHCP mode members keep their boot address statically unless their flavor says otherwise', async (t) => {
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_DHCP_MODE: 'proxy', SLIPWAY_DHCP_SERVER_ADDRESS: '10.8.0.2', SLIPWAY_DHCP_DNS_SERVERS: '10.8.0.3' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  t.equal((await admin(app, 'POST', '/api/v1/flavors', { name: 'solo', control_plane_count: 1, nodes_max: 1 })).statusCode, 201)
  t.equal((await admin(app, 'POST', '/api/v1/flavors', { name: 'dhcp', control_plane_count: 1, nodes_max: 0, static_network: false })).statusCode, 201)
  await admin(app, 'POST', '/api/v1/clusters', { name: 'pa', flavor: 'solo' })
  await admin(app, 'POST', '/api/v1/clusters', { name: 'pb', flavor: 'dhcp' })
  for (let n = 1; n <= 3; n++) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n), cidrv4: `${ipOf(n)}/24` }] } })
  }
  t.equal((await admin(app, 'POST', '/api/v1/scheduler/run')).json().assignments.length, 3)
  const members = (await admin(app, 'GET', '/api/v1/scheduler')).json() as { cluster: string; uuid: string; mac: string; ip: string }[]
  for (const member of members) {
    const config = (await takeSlotAndFetchConfig(app, { uuid: member.uuid, mac: member.mac, ip: member.ip })).json() as Config
    const unit = fileIn(config, '/etc/systemd/network/00-slipway-boot.network')
    if (member.cluster === 'pa') t.match(unit, new RegExp(`Address=${member.ip.replaceAll('.', '\\.')}/24\\nDNS=10\\.8\\.0\\.3\\n`), `${member.ip} (flavor without a say): static in proxy mode, no gateway reported so none written`)
    else t.equal(unit, undefined, `${member.ip} (flavor static_network: false): DHCP`)
  }
})

t.test('a Fedora CoreOS flavor: the same kubeadm path, with Kubernetes fetched from the engine and what its packages would install', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const created = await admin(app, 'POST', '/api/v1/flavors', { name: 'fcos', control_plane_count: 1, nodes_max: 1, os: 'fedora-coreos', kubernetes_version: 'v1.32.4' })
  t.equal(created.statusCode, 201, created.body)
  t.equal(created.json().os, 'fedora-coreos')
  t.equal((await admin(app, 'POST', '/api/v1/flavors', { name: 'other', control_plane_count: 1, nodes_max: 1, os: 'ubuntu' })).statusCode, 400, 'an OS the engine has no role config for is refused')
  await admin(app, 'POST', '/api/v1/clusters', { name: 'fed', flavor: 'fcos' })
  for (let n = 1; n <= 2; n++) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'enp1s0', mac: macOf(n), ipv4: ipOf(n), cidrv4: `${ipOf(n)}/24` }] } })
  }
  t.equal((await admin(app, 'POST', '/api/v1/scheduler/run')).json().assignments.length, 2)
  const configs: (Config & { storage: { links?: unknown[] }; systemd: { units: { name: string; enabled?: boolean; contents?: string; dropins?: { name: string; contents: string }[] }[] } })[] = []
  for (let n = 1; n <= 2; n++) {
    const response = await takeSlotAndFetchConfig(app, { uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) })
    t.equal(response.statusCode, 200)
    configs.push(response.json())
  }
  for (const [index, config] of configs.entries()) {
    const role = index === 0 ? 'control plane' : 'node'
    t.same(validateWithOfficialSchema(config), { ok: true, errors: [] }, `${role}: valid against the official Ignition schema`)
    const sources = Object.fromEntries(config.storage.files.map((file) => [file.path, file.contents.source]))
    for (const binary of ['kubeadm', 'kubelet', 'kubectl']) {
      t.equal(sources[`/usr/local/bin/${binary}`], `http://localhost:80/assets/kubernetes/v1.32.4/bin/linux/amd64/${binary}`, `${role}: ${binary} from the engine's /assets, in dl.k8s.io's layout`)
    }
    t.notOk(Object.keys(sources).some((file) => file.startsWith('/opt/extensions')), `${role}: no Flatcar sysext`)
    t.same(config.storage.links, [], `${role}: no sysext link`)
    t.match(fileIn(config, '/etc/containerd/config.toml'), /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.runc\.options\]\n {2}SystemdCgroup = true/, `${role}: containerd with CRI and the systemd cgroup driver (what the KubeletConfiguration says)`)
    t.equal(fileIn(config, '/etc/modules-load.d/kubernetes.conf'), 'overlay\nbr_netfilter\n')
    t.match(fileIn(config, '/etc/sysctl.d/90-kubernetes.conf'), /net\.bridge\.bridge-nf-call-iptables = 1[\s\S]*net\.ipv4\.ip_forward = 1/)
    const kubelet = config.systemd.units.find((unit) => unit.name === 'kubelet.service')!
    t.match(kubelet, { enabled: true, contents: /ExecStart=\/usr\/local\/bin\/kubelet\n/, dropins: [{ name: '10-kubeadm.conf', contents: /\nExecStart=\nExecStart=\/usr\/local\/bin\/kubelet \$KUBELET_KUBECONFIG_ARGS \$KUBELET_CONFIG_ARGS \$KUBELET_KUBEADM_ARGS \$KUBELET_EXTRA_ARGS/ }] }, `${role}: the kubelet unit and kubeadm's drop-in`)
    t.ok(config.systemd.units.find((unit) => unit.name === 'slipway-kubeadm.service')?.enabled, `${role}: the same kubeadm bootstrap`)
    const apply = fileIn(config, '/opt/slipway/bin/apply-config')!
    t.match(apply, /install -m 0600 "\$config" \/boot\/ignition\/config\.ign\ntouch \/boot\/ignition\.firstboot/, `${role}: a rolling update writes the config where Fedora CoreOS reads it`)
    t.notMatch(apply, /oem|flatcar/i)
    for (const document of YAML.parseAllDocuments(fileIn(config, '/etc/slipway/kubeadm.yaml')!).map((entry) => entry.toJSON())) t.ok(validate(document), `${role}: ${document.kind} is valid v1beta4`)
  }
  t.match(fileIn(configs[0]!, '/etc/kubernetes/pki/apiserver.crt'), /BEGIN CERTIFICATE/, 'the engine-issued certificates, as on Flatcar')
  t.notOk(configs[0]!.storage.files.some((file) => /\/(ca|etcd\/ca|front-proxy-ca)\.key$/.test(file.path)), 'and no CA key')
})
