/**
 * No secret in any log: an engine process at debug level (its whole output, both streams, kept) goes
 * through a scenario that makes every kind of secret the engine handles: the admin token and API
 * tokens, a registered cluster's credential, a web UI session, machine credentials (in FleetLock base
 * URLs and in headers), a provisioned cluster's private keys and bootstrap token in a served config,
 * machines named by uuid and MAC. Then the output is searched for each of them, and for any uuid
 * written beside its MAC.
 */
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { ADMIN_TOKEN, copySampleContent, removeTree } from '../helpers/engine.ts'
import { EngineProcess, freePort } from '../helpers/engine-process.ts'

const uuidOf = (n: number) => `5ec70000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:5e:c7:${n.toString(16).padStart(2, '0')}`
/** Loopback addresses: the test sends from each machine's own address. */
const ipOf = (n: number) => `127.77.0.${n}`

t.test('a whole scenario at debug level: none of the secrets it made is in the output', async (t) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-secrets-'))
  t.teardown(() => removeTree(scratch))
  const content = path.join(scratch, 'content')
  copySampleContent(content)
  const engine = new EngineProcess({ dataDir: path.join(scratch, 'var'), contentDir: content, port: await freePort(), env: { SLIPWAY_LOG_LEVEL: 'debug', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' } })
  t.teardown(() => engine.kill())
  await engine.start()
  const secrets: Record<string, string> = { 'the admin token': ADMIN_TOKEN }

  // API tokens, a registered cluster's credential, a UI session.
  const created = (await engine.call('POST', '/api/v1/tokens', { name: 'ci', role: 'operator' })).json() as { token: string }
  secrets['an API token'] = created.token
  secrets["a cluster's credential"] = 'cluster-bearer-credential-5ec7-0123456789abcdef'
  t.equal((await engine.call('POST', '/api/v1/clusters', { name: 'remote', server: 'https://127.0.0.1:9', credentials: { token: secrets["a cluster's credential"] } })).status, 201)
  const login = await fetch(`${engine.baseUrl}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: created.token }), redirect: 'manual' })
  const cookie = /slipway_session=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')?.[1]
  t.ok(cookie, 'a UI session')
  secrets['a UI session cookie'] = cookie!
  t.equal((await engine.call('GET', '/api/v1/machines', undefined, { cookie: `slipway_session=${cookie}` })).status, 200)
  // A token in a URL, where it does not belong: refused, and not logged either.
  await engine.call('GET', `/api/v1/groups?token=${created.token}`, undefined, {})

  // Two machines: discovered, scheduled into a provisioned cluster, installed with their role configs.
  await engine.call('POST', '/api/v1/flavors', { name: 'pair', control_plane_count: 1, nodes_max: 1 })
  await engine.call('POST', '/api/v1/clusters', { name: 'pair', flavor: 'pair' })
  for (const n of [1, 2]) {
    const report = { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n) }], disks: [{ path: '/dev/vda', 'size-bytes': 20e9 }] }
    t.equal((await engine.call('POST', '/discovery', report, {}, ipOf(n))).status, 200)
  }
  t.equal((await engine.call('POST', '/api/v1/scheduler/run')).json().assignments.length, 2)
  for (const n of [1, 2]) {
    const identity = `uuid=${uuidOf(n)}&mac=${macOf(n).replaceAll(':', '-')}`
    await engine.call('GET', `/ipxe?${identity}`, undefined, {}, ipOf(n))
    t.equal((await engine.call('POST', `/install-authorization?${identity}`, {}, {}, ipOf(n))).status, 200)
    const served = await engine.call('GET', `/ignition?${identity}&os=installed`, undefined, {}, ipOf(n))
    t.equal(served.status, 200)
    const files = (served.json() as { storage: { files: { path: string; contents: { source: string } }[] } }).storage.files
    const text = (at: string) => decodeURIComponent(files.find((file) => file.path === at)?.contents.source.replace(/^data:[^,]*,/, '') ?? '')
    const credential = /^SLIPWAY_MACHINE_CREDENTIAL=(\S+)$/m.exec(text('/etc/slipway/lifecycle.env'))?.[1]
    t.ok(credential, `machine ${n}'s credential`)
    secrets[`machine ${n}'s credential`] = credential!
    const token = /^SLIPWAY_BOOTSTRAP_TOKEN=(\S+)$/m.exec(text('/etc/slipway/cluster.env'))?.[1]
    if (token) secrets['the bootstrap token'] = token
    const apiserverKey = text('/etc/kubernetes/pki/apiserver.key')
    if (apiserverKey) secrets["a line of the API server's private key"] = apiserverKey.split('\n')[1]!
    const kubeletKey = /client-key-data: (\S+)/.exec(text('/etc/kubernetes/kubelet.conf'))?.[1]
    if (kubeletKey) secrets["a kubelet's client key"] = kubeletKey
    await engine.call('POST', `/lifecycle/install/success?${identity}`, { message: 'installed' }, {}, ipOf(n))
    // The machine's lifecycle calls: its credential in a FleetLock base URL and in a header.
    await engine.call('POST', `/fleetlock/${credential}/v1/pre-reboot`, { client_params: { id: 'zincati', group: 'pair' } }, { 'fleet-lock-protocol': 'true' }, ipOf(n))
    await engine.call('POST', `/fleetlock/${credential}/v1/steady-state`, { client_params: { id: 'zincati', group: 'pair' } }, { 'fleet-lock-protocol': 'true' }, ipOf(n))
    await engine.call('GET', '/lifecycle/rolling', undefined, { authorization: `Bearer ${credential}` }, ipOf(n))
    await engine.call('GET', `/ignition?${identity}&os=installed`, undefined, { authorization: `Bearer ${credential}` }, ipOf(n))
  }
  t.ok(secrets['the bootstrap token'] && secrets["a line of the API server's private key"] && secrets["a kubelet's client key"], 'the members got their keys')
  // A credential percent-encoded in a URL, and a forged one.
  const encoded = secrets['machine 1\'s credential']!.replace('.', '%2E')
  await engine.call('POST', `/fleetlock/${encoded}/v1/pre-reboot`, { client_params: { id: 'z', group: 'pair' } }, { 'fleet-lock-protocol': 'true' }, ipOf(1))
  await engine.stop()

  const output = engine.output
  t.ok(output.split('\n').filter((line) => line.startsWith('{')).length > 40, `${output.split('\n').length} lines of output at debug level`)
  for (const [what, secret] of Object.entries(secrets)) t.notOk(output.includes(secret), `${what} is not in the output`)
  for (const n of [1, 2]) {
    const pairs = output.split('\n').filter((line) => line.includes(uuidOf(n)) && (line.includes(macOf(n)) || line.includes(macOf(n).replaceAll(':', '-'))))
    t.same(pairs, [], `no line names machine ${n}'s uuid beside its MAC`)
  }
  t.match(output, /REDACTED-CREDENTIAL/, 'the FleetLock calls are logged, their credential redacted')
})
