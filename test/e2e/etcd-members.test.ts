/**
 * The etcd member configuration the engine renders for a 3-member control plane
 * (/etc/slipway/etcd-member.env, from the scheduler's initial cluster) run by three real etcd 3.4
 * processes on loopback addresses, with the certificates the engine issued: the cluster forms with
 * mutual TLS, its members are exactly the scheduler's initial cluster, a write through one member is
 * read through another, a client certificate from another CA is refused, and the quorum survives one
 * member going away.
 */
import path from 'node:path'
import t from 'tap'
import { removeTree, startTestEngine } from '../helpers/engine.ts'
import { startEtcdMembers } from '../helpers/etcd-members.ts'
import { until } from '../helpers/wait.ts'

const machines = [1, 2, 3].map((n) => ({ uuid: `e7cd0000-0000-4000-8000-00000000000${n}`, mac: `52:54:00:00:e7:0${n}`, ip: `127.0.0.${10 + n}` }))

t.test('three real etcd members from the rendered configuration form the scheduler’s initial cluster, over the engine’s certificates', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const etcd = await startEtcdMembers(engine.app, 'q', machines)
  t.teardown(() => etcd.close())
  t.same(etcd.variables.map((variables) => variables.ETCD_NAME), ['q-cp-1', 'q-cp-2', 'q-cp-3'])
  const initialCluster = etcd.variables[0]!.ETCD_INITIAL_CLUSTER!
  t.ok(etcd.variables.every((variables) => variables.ETCD_INITIAL_CLUSTER === initialCluster))
  t.equal(initialCluster, machines.map((machine, index) => `q-cp-${index + 1}=https://${machine.ip}:2380`).join(','), "every member starts from the scheduler's initial cluster")

  const healthy = JSON.parse((await etcd.etcdctl(0, ['endpoint', 'health', '-w', 'json'])).stdout) as { health: boolean }[]
  t.ok(healthy.length === 3 && healthy.every((entry) => entry.health), 'all three members answer health checks over TLS')
  const members = JSON.parse((await etcd.etcdctl(1, ['member', 'list', '-w', 'json'])).stdout) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] }
  t.same(members.members.map((member) => `${member.name}=${member.peerURLs[0]}`).sort(), initialCluster.split(',').sort(), "the members are the scheduler's initial cluster")

  await etcd.etcdctl(0, ['put', '/slipway/check', 'formed'], 'apiserver-etcd-client', `https://${machines[0]!.ip}:2379`)
  const read = await etcd.etcdctl(2, ['get', '/slipway/check', '--print-value-only'], 'apiserver-etcd-client', `https://${machines[2]!.ip}:2379`)
  t.equal(read.stdout.trim(), 'formed', 'a write through the first member is read through the third (the API server’s client certificate)')

  const foreign = await etcd.etcdctl(0, ['endpoint', 'health'], 'apiserver-kubelet-client').then(
    () => 'accepted',
    (error: { stderr?: string }) => error.stderr ?? 'refused',
  )
  t.not(foreign, 'accepted', 'a client certificate from the Kubernetes CA is refused: etcd trusts only the etcd CA')

  await etcd.stop(2)
  const survivors = machines.slice(0, 2).map((machine) => `https://${machine.ip}:2379`).join(',')
  await until('a write with two of three members', async () => etcd.etcdctl(0, ['put', '/slipway/check', 'quorum'], 'apiserver-etcd-client', survivors).then(() => true, () => false), 15_000, 250)
  t.equal((await etcd.etcdctl(1, ['get', '/slipway/check', '--print-value-only'], 'apiserver-etcd-client', survivors)).stdout.trim(), 'quorum', 'the quorum survives one member going away')
})
