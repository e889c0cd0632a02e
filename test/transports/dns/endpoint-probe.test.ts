/**
 * The control-plane endpoint answers the members whose API servers are up, as the engine's own probes
 * of each member's /readyz see them: three members on 127.0.0.1-3, API server doubles (TLS, each with
 * the certificate the engine issued that member) started and stopped under them. There is no
 * kube-apiserver on these machines; the double answers /readyz as one does.
 */
import t from 'tap'
import { FakeKubeApiserver } from '../../fakes/kube-apiserver.ts'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { reportInstalled, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'
import { until } from '../../helpers/wait.ts'
import path from 'node:path'

const uuidOf = (n: number) => `e9d90000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:e9:${n.toString(16).padStart(2, '0')}`
const ipOf = (n: number) => `127.0.0.${n}`
const ENDPOINT = 'api.trio.apps.slipway.internal'

type Ignition = { storage: { files: { path: string; contents: { source: string } }[] } }
const fileIn = (config: Ignition, at: string) => decodeURIComponent(config.storage.files.find((file) => file.path === at)!.contents.source.replace(/^data:,/, ''))

t.test("api.<cluster>.<zone> leaves out a member whose /readyz does not answer, takes it back when it does, and never answers nothing", async (t) => {
  const probe = await FakeKubeApiserver.start()
  const port = Number(new URL(probe.url).port)
  await probe.close()
  const lines: string[] = []
  const { engine, dataDir } = await startTestEngine({
    env: { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0', SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0', SLIPWAY_DNS_ENDPOINT_PROBE_SECONDS: '0.2' },
    logLines: lines,
  })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  // Started: the probe is one of the engine's jobs.
  await engine.start()
  const app = engine.app
  const admin = (method: 'GET' | 'POST', url: string, payload?: object) => app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) })
  t.equal((await admin('POST', '/api/v1/flavors', { name: 'three', control_plane_count: 3, nodes_max: 0, api_server_port: port })).statusCode, 201)
  t.equal((await admin('POST', '/api/v1/clusters', { name: 'trio', flavor: 'three' })).statusCode, 201)
  for (let n = 1; n <= 3; n++) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: ipOf(n), cidrv4: `${ipOf(n)}/8` }] } })
  }
  t.equal((await admin('POST', '/api/v1/scheduler/run')).json().assignments.length, 3)
  const configs: Ignition[] = []
  for (let n = 1; n <= 3; n++) {
    const machine = { uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) }
    configs.push((await takeSlotAndFetchConfig(app, machine)).json())
    await reportInstalled(app, machine)
  }
  const answered = async () => ((await admin('GET', '/api/v1/dns/names')).json().hosts as { name: string; addresses: string[] }[]).find((host) => host.name === ENDPOINT)?.addresses
  const answers = (expected: string[], what: string) => until(what, async () => (JSON.stringify(await answered()) === JSON.stringify(expected) ? true : undefined), 15_000)

  await answers([ipOf(1), ipOf(2), ipOf(3)], 'every installed member before any bootstrap is done')
  for (const [index, config] of configs.entries()) {
    const credential = /^SLIPWAY_MACHINE_CREDENTIAL=(.*)$/m.exec(fileIn(config, '/etc/slipway/lifecycle.env'))![1]!
    const done = await app.inject({ method: 'POST', url: '/lifecycle/bootstrap', remoteAddress: ipOf(index + 1), headers: { authorization: `Bearer ${credential}` }, payload: { phase: 'done', command: index === 0 ? 'init' : 'join', message: 'kubeadm succeeded' } })
    t.equal(done.statusCode, 200, done.body)
  }

  // Every member is done and none answers yet: all three, all the same. Waited for, because while only
  // cp-1 had reported, the same rule answered [.1], which must not pass for the answer awaited next.
  await answers([ipOf(1), ipOf(2), ipOf(3)], 'every done member while no /readyz answers')

  // Only cp-1's API server runs: the probes of .2 and .3 are refused, and the endpoint answers .1 alone.
  const serveAs = (n: number) =>
    FakeKubeApiserver.start({ host: ipOf(n), port, tls: { certificatePem: fileIn(configs[n - 1]!, '/etc/kubernetes/pki/apiserver.crt'), privateKeyPem: fileIn(configs[n - 1]!, '/etc/kubernetes/pki/apiserver.key') } })
  const first = await serveAs(1)
  t.teardown(() => first.close())
  await answers([ipOf(1)], 'the endpoint answering the one member whose /readyz answers')
  t.ok(first.requests.some((request) => request.path === '/readyz'), 'the engine asked its /readyz (anonymously, as Kubernetes allows)')
  t.ok(lines.some((line) => line.includes('"level":40') && line.includes(`${ipOf(2)} does not answer /readyz: left out of ${ENDPOINT}`)), 'a member left out is logged as a warning')

  // cp-2's comes up: it is back in.
  const second = await serveAs(2)
  t.teardown(() => second.close())
  await answers([ipOf(1), ipOf(2)], 'the endpoint taking back a member that answers again')

  // One answering 500 (a failing etcd check) is out as well.
  first.setApiReady(false)
  await answers([ipOf(2)], 'a member whose /readyz fails is out')
  first.setApiReady(true)

  // All down: the members that finished their bootstrap all the same, never an empty answer.
  await first.close()
  await second.close()
  await answers([ipOf(1), ipOf(2), ipOf(3)], 'every done member when none answers')
})
