/**
 * Member replacement against three real etcd 3.4 members started from the engine's configs: a
 * control-plane machine taken out of its cluster has its etcd member removed (the quorum checked
 * first: refused while another member is down), its place is filled by the next machine discovered,
 * whose role config waits (503 ETCD_MEMBER_PENDING) until the engine has added it to the running etcd;
 * it then starts with initial-cluster-state existing and the cluster is three healthy members again.
 */
import t from 'tap'
import { auth, startServingEngine } from '../helpers/engine.ts'
import { startEtcdMembers } from '../helpers/etcd-members.ts'
import { asMachine, reportInstalled } from '../helpers/machine-requests.ts'
import { until } from '../helpers/wait.ts'

const machineOf = (n: number) => ({ uuid: `e7c50000-0000-4000-8000-00000000000${n}`, mac: `52:54:00:00:e7:5${n}`, ip: `127.0.0.${30 + n}` })

t.test('a dead control-plane member is removed from etcd and replaced by the next machine, which joins the running cluster', async (t) => {
  const { engine } = await startServingEngine(t)
  const app = engine.app
  const admin = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })
  const etcd = await startEtcdMembers(app, 'swap', [1, 2, 3].map(machineOf))
  t.teardown(() => etcd.close())
  // Installed: their installs reported (a machine installing is not taken out).
  for (const n of [1, 2, 3]) await reportInstalled(app, machineOf(n))
  const names = async () => ((JSON.parse((await etcd.etcdctl(0, ['member', 'list', '-w', 'json'])).stdout) as { members: { name: string }[] }).members.map((member) => member.name).sort())
  t.same(await names(), ['swap-cp-1', 'swap-cp-2', 'swap-cp-3'])
  await etcd.etcdctl(0, ['put', 'swap/before', 'kept'])

  // Two members down: removing either would leave one healthy of two, no quorum. Refused; nothing changes.
  await etcd.stop(1)
  await etcd.stop(2)
  const refused = await admin('DELETE', `/api/v1/clusters/swap/members/${machineOf(2).uuid}`)
  t.equal(refused.statusCode, 409, refused.body)
  t.equal(refused.json().code, 'ETCD_QUORUM_AT_RISK')
  t.equal((await admin('GET', '/api/v1/clusters/swap')).json().members.length, 3, 'the machine is still a member')
  etcd.start(2)
  await etcd.healthy()

  // swap-cp-2 dies for good: removed, its etcd member first.
  const removed = await admin('DELETE', `/api/v1/clusters/swap/members/${machineOf(2).uuid}`)
  t.equal(removed.statusCode, 200, removed.body)
  t.match(removed.json(), { cluster: 'swap', hostname: 'swap-cp-2', etcd: { removed: 'swap-cp-2' }, machine: { state: 'discovered' }, deprovision: { state: 'wipe_pending', message: /no BMC/ } })
  t.same(await names(), ['swap-cp-1', 'swap-cp-3'], 'etcd has the two members left')
  t.equal((await admin('GET', '/api/v1/clusters/swap')).json().members.length, 2)
  t.equal((await admin('DELETE', `/api/v1/clusters/swap/members/${machineOf(2).uuid}`)).statusCode, 404, 'once out, it is no member to remove')
  t.equal((await admin('DELETE', `/api/v1/clusters/other/members/${machineOf(1).uuid}`)).statusCode, 404, 'a member of another cluster is not removed through this one')

  // A fresh machine: the scheduler gives it the place (and name) swap-cp-2 left. While one of the two
  // left is down, adding a third would need two healthy: the engine waits, and the replacement's
  // role config with it.
  await etcd.stop(0)
  const fresh = machineOf(4)
  await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: fresh.uuid, mac: fresh.mac }, interfaces: [{ name: 'eth0', mac: fresh.mac, ipv4: fresh.ip }] } })
  const pass = (await admin('POST', '/api/v1/scheduler/run')).json() as { assignments: { machine_uuid: string; hostname: string }[] }
  t.match(pass.assignments, [{ machine_uuid: fresh.uuid, hostname: 'swap-cp-2' }], 'the machine removed stays out of the pool; the fresh one takes the place')
  const pending = await until(
    'the replacement to be told to wait for its etcd membership',
    async () => {
      const answer = await asMachine(app, fresh, 'GET', `/ignition?uuid=${fresh.uuid}&mac=${fresh.mac.replaceAll(':', '-')}&os=installed`)
      return answer.statusCode === 503 && answer.json().code === 'ETCD_MEMBER_PENDING' ? answer : undefined
    },
    15_000,
    250,
  )
  t.ok(Number(pending.headers['retry-after']) > 0, `503 ETCD_MEMBER_PENDING, retry after ${pending.headers['retry-after']} s: ${pending.json().message}`)
  t.same(await names(), ['swap-cp-1', 'swap-cp-3'], 'not added while the quorum could not take it')
  // Back up: the engine adds it (its retry runs every 5 s) and serves its config.
  etcd.start(0)
  await etcd.healthy()
  const index = await until(
    'the replacement to be served its role config',
    async () => etcd.join(fresh).catch((error: Error) => (/503 .*ETCD_MEMBER_PENDING/.test(error.message) ? undefined : Promise.reject(error))),
    30_000,
    500,
  )
  t.equal(etcd.variables[index]!.ETCD_INITIAL_CLUSTER_STATE, 'existing', 'it joins the running etcd')
  t.equal(etcd.variables[index]!.ETCD_INITIAL_CLUSTER, `swap-cp-1=https://127.0.0.31:2380,swap-cp-2=https://${fresh.ip}:2380,swap-cp-3=https://127.0.0.33:2380`)
  await etcd.healthy(60_000)
  t.same(await names(), ['swap-cp-1', 'swap-cp-2', 'swap-cp-3'], 'three members again, swap-cp-2 at its new address')
  const kept = await etcd.etcdctl(0, ['get', 'swap/before', '--print-value-only'], undefined, `https://${fresh.ip}:2379`)
  t.equal(kept.stdout.trim(), 'kept', 'the replacement has the data written before it came')
  // The members that formed etcd keep the config they run: a replacement does not make them outdated.
  const envOf = async (uuid: string) => {
    const config = JSON.parse((await admin('GET', `/api/v1/machines/${uuid}/boot`)).json().ignition.body) as { storage: { files: { path: string; contents: { source: string } }[] } }
    return decodeURIComponent(config.storage.files.find((file) => file.path === '/etc/slipway/etcd-member.env')!.contents.source.replace(/^data:,/, ''))
  }
  t.match(await envOf(machineOf(1).uuid), `ETCD_INITIAL_CLUSTER=${etcd.variables[0]!.ETCD_INITIAL_CLUSTER}\n`, "swap-cp-1's etcd environment is the one it formed the cluster with")
  t.match(await envOf(machineOf(1).uuid), 'ETCD_INITIAL_CLUSTER_STATE=new\n')
  const view = (await admin('GET', '/api/v1/clusters/swap/etcd')).json() as { voting_members: number; healthy_members: number }
  t.match(view, { voting_members: 3, healthy_members: 3 }, "the engine's view: 3 healthy voting members")

})
