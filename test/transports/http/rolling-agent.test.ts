/**
 * The machine-driven rolling agent (generic/rolling-agent.sh, as the engine renders it) run by a real
 * shell with curl against a listening engine, as a machine's timer runs it. It fails closed: an
 * outdated machine that must drain and has no kubectl or kubeconfig does not take a slot or restart;
 * a drain that fails (the real kubectl, against an API server that does not know the node) releases
 * the slot and does not restart; each refusal reaches the engine with its reason, and is cleared once
 * the machine goes on. Labelled slipway.io/rolling-drain=skip, the machine restarts without draining.
 */
import { execFile } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { FixedEtcdGateway } from '../../fakes/etcd-gateway.ts'
import { FakeKubeApiserver } from '../../fakes/kube-apiserver.ts'
import { kubeconfigFor } from '../../fakes/kube-api-double.ts'
import { auth, startServingEngine } from '../../helpers/engine.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { kubectlPath } from '../../helpers/tools.ts'

const run = promisify(execFile)
const machine = { uuid: 'a9e17000-0000-4000-8000-000000000001', mac: '52:54:00:a9:e1:01', ip: '127.0.0.1' }
const labels = `uuid=${machine.uuid}&mac=${machine.mac.replaceAll(':', '-')}`

t.test('the rolling agent does not restart a machine it cannot drain, tells the engine why, and restarts it once told not to drain', async (t) => {
  // The cluster's one control-plane member runs no etcd here: a healthy one stands in (the engine asks
  // it before the machine takes a slot and before it gives it back).
  const { address } = await startServingEngine(t, {}, { etcd: new FixedEtcdGateway({ roll: ['roll-cp-1'] }) })
  const api = async (method: string, route: string, body?: unknown) => {
    const answer = await fetch(`${address}${route}`, { method, headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    const text = await answer.text()
    if (!answer.ok) throw new Error(`${method} ${route}: ${answer.status} ${text}`)
    return text ? JSON.parse(text) : undefined
  }
  await api('POST', '/api/v1/flavors', { name: 'solo', control_plane_count: 1, nodes_min: 0, nodes_max: 0 })
  await api('POST', '/api/v1/clusters', { name: 'roll', flavor: 'solo' })
  await fetch(`${address}/discovery`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ 'boot-info': { uuid: machine.uuid, mac: machine.mac }, interfaces: [{ name: 'eth0', mac: machine.mac, ipv4: machine.ip }] }) })
  t.equal((await api('POST', '/api/v1/scheduler/run')).assignments.length, 1)
  // The install, from the machine's own address (this host's loopback).
  t.equal((await fetch(`${address}/install-authorization?${labels}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 200)
  const installed = await (await fetch(`${address}/ignition?${labels}&os=installed`)).text()
  t.equal((await fetch(`${address}/lifecycle/install/success?${labels}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 200)

  const root = mkdtempSync(path.join(os.tmpdir(), 'slipway-rolling-agent-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const files = (JSON.parse(installed) as { storage: { files: { path: string; contents: { source: string } }[] } }).storage.files
  const lifecycleEnv = decodeURIComponent(files.find((file) => file.path === '/etc/slipway/lifecycle.env')!.contents.source.replace(/^data:,/, ''))
  t.match(lifecycleEnv, new RegExp(`^SLIPWAY_URL=${address}`, 'm'), 'the config tells the agent where the engine is')
  const envFile = path.join(root, 'lifecycle.env')
  writeFileSync(envFile, lifecycleEnv, { mode: 0o600 })
  const running = path.join(root, 'running.ign')
  writeFileSync(running, installed)
  const applied = path.join(root, 'applied')
  const apply = path.join(root, 'apply-config')
  // Stands in for the OS's apply-config: records that the machine would restart, and into what.
  writeFileSync(apply, `#!/bin/sh\ncp "$1" ${JSON.stringify(applied)}\necho "apply-config $2"\n`)
  chmodSync(apply, 0o755)
  const script = await (await fetch(`${address}/generic?${labels}&os=installed`)).text()
  t.match(script, /slipway\.io\/rolling-drain=skip/, 'the engine serves the rolling agent to the installed machine')
  const agentFile = path.join(root, 'rolling-agent.sh')
  writeFileSync(agentFile, script)

  // The machine's programs: this host's, but for any kubectl (the first runs have none); `withKubectl`
  // adds the real, pinned one.
  const tools = path.join(root, 'tools')
  mkdirSync(tools)
  for (const dir of ['/usr/bin', '/bin']) {
    for (const name of readdirSync(dir)) if (name !== 'kubectl' && !existsSync(path.join(tools, name))) symlinkSync(path.join(dir, name), path.join(tools, name))
  }
  const bin = path.join(root, 'bin')
  mkdirSync(bin)
  symlinkSync(await kubectlPath(), path.join(bin, 'kubectl'))
  /** Runs the agent once, as the machine's timer would. */
  const agent = async (options: { withKubectl?: boolean; kubeconfig?: string } = {}) => {
    const PATH = options.withKubectl ? `${bin}:${tools}` : tools
    const env = {
      PATH,
      HOME: root,
      SLIPWAY_LIFECYCLE_ENV: envFile,
      SLIPWAY_RUNNING_CONFIG: running,
      SLIPWAY_NEXT_CONFIG: path.join(root, 'next.ign'),
      SLIPWAY_APPLY_COMMAND: apply,
      SLIPWAY_NODE_NAME: 'roll-cp-1',
      SLIPWAY_KUBECONFIG: options.kubeconfig ?? path.join(root, 'no-such-kubeconfig'),
    }
    return run('sh', [agentFile], { env }).then(
      ({ stdout }) => ({ code: 0, output: stdout }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: `${error.stdout}${error.stderr}` }),
    )
  }
  // The cluster's lock group exists once a machine first locked in it.
  const locks = async () => (await api('GET', '/api/v1/locks/roll').catch((error: Error) => (/LOCK_GROUP_NOT_FOUND/.test(error.message) ? { holders: [] } : Promise.reject(error)))).holders as { id: string }[]

  await api('PUT', `/api/v1/machines/${machine.uuid}/labels`, { 'slipway.io/rolling': 'machine' })
  const quiet = await agent()
  t.equal(quiet.code, 0, 'up to date: nothing to do')
  t.equal(quiet.output, '')

  // A template change makes it outdated.
  const template = (await api('GET', '/api/v1/templates/ignition/kubernetes-control-plane.json')).body as string
  await api('PUT', '/api/v1/templates/ignition/kubernetes-control-plane.json', { body: template.replace('{ "path": "/etc/slipway/role", "mode": 420,', '{ "path": "/etc/slipway/role", "mode": 416,') })
  const outdated = async () => {
    for (let tries = 0; tries < 50; tries++) {
      if ((await api('GET', '/lifecycle/ignition')).some((record: { uuid: string; state: string }) => record.uuid === machine.uuid && record.state === 'outdated')) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`${machine.uuid} never became outdated`)
  }
  await outdated()

  const noKubectl = await agent()
  t.equal(noKubectl.code, 1, 'no kubectl: the agent fails')
  t.match(noKubectl.output, /not restarting: outdated, but roll-cp-1 must be drained first and there is no kubectl/)
  t.notOk(existsSync(applied), 'and the machine did not restart')
  t.same(await locks(), [], 'nor take a slot')
  t.match(await api('GET', '/lifecycle/rolling/refusals'), [{ uuid: machine.uuid, reason: 'no_kubeconfig' }], 'the engine has the refusal and its reason')
  const noKubeconfig = await agent({ withKubectl: true })
  t.equal(noKubeconfig.code, 1, 'kubectl but no kubeconfig: the agent fails')
  t.match(noKubeconfig.output, /no readable .*no-such-kubeconfig/)
  t.notOk(existsSync(applied))
  t.same(await locks(), [])

  // The real kubectl against an API server that does not know the node: the drain fails.
  const pki = await x509ClusterPkiIssuer.issue('roll', new Date())
  const apiserver = await FakeKubeApiserver.start({ tls: await servingCertificate(pki), tokens: ['drain-token'] })
  t.teardown(() => apiserver.close())
  const kubeconfig = path.join(root, 'admin.conf')
  writeFileSync(kubeconfig, kubeconfigFor(apiserver.url, pki.kubernetesCa.certificatePem, { token: 'drain-token' }), { mode: 0o600 })
  const failedDrain = await agent({ withKubectl: true, kubeconfig })
  t.equal(failedDrain.code, 1, 'a failed drain: the agent fails')
  t.match(failedDrain.output, /outdated: took a reboot slot/)
  t.match(failedDrain.output, /not restarting: kubectl drain roll-cp-1 failed: .*\(slot released\)/)
  t.notOk(existsSync(applied), 'and the machine did not restart')
  t.same(await locks(), [], 'its slot went back')
  const [refusal] = await api('GET', '/lifecycle/rolling/refusals')
  t.match(refusal, { uuid: machine.uuid, reason: 'drain_failed', message: /kubectl drain roll-cp-1 failed/ }, "the engine has the drain's failure")
  t.ok(
    apiserver.requests.some((request) => request.method === 'GET' && request.path === '/api/v1/nodes/roll-cp-1' && request.status === 404),
    `kubectl looked the node up and the API server did not know it (${apiserver.requests.map((request) => `${request.method} ${request.path} ${request.status}`).join(', ')})`,
  )

  // The API server knows the node now (a pod of a ReplicaSet on it, a spare node for its
  // replacement): the real kubectl cordons and drains it, and the machine restarts. The slot taken
  // clears the refusal.
  apiserver.addNode('roll-cp-1')
  apiserver.addNode('spare')
  apiserver.addPod({ name: 'web-1', node: 'roll-cp-1', controller: { kind: 'ReplicaSet', name: 'web' } })
  const restart = await agent({ withKubectl: true, kubeconfig })
  t.equal(restart.code, 0, restart.output)
  t.match(restart.output, /outdated: took a reboot slot[\s\S]*restarting into the new config \(reboot\)[\s\S]*apply-config reboot/)
  t.equal(apiserver.node('roll-cp-1')?.spec.unschedulable, true, 'kubectl cordoned the node')
  t.same(apiserver.podsOn('roll-cp-1').filter((pod) => !pod.metadata.deletionTimestamp).map((pod) => pod.metadata.name), [], 'and evicted its pod')
  t.ok(existsSync(applied), 'then ran apply-config with its new config')
  t.same((await locks()).map((holder) => holder.id), [machine.uuid], 'holding its slot while it restarts')
  t.same(await api('GET', '/lifecycle/rolling/refusals'), [], 'the refusal is cleared once the machine goes on')

  // Back up with its new config: it reports, is up to date, uncordons its node and gives the slot back.
  writeFileSync(running, readFileSync(applied))
  const back = await agent({ withKubectl: true, kubeconfig })
  t.equal(back.code, 0, back.output)
  t.match(back.output, /up to date: node uncordoned, reboot slot released/)
  t.notOk(apiserver.node('roll-cp-1')?.spec.unschedulable, 'the node is schedulable again')
  t.same(await locks(), [], 'no slot held')

  // Labelled not to drain, a machine with no kubectl restarts (the next change) without draining.
  rmSync(applied)
  await api('PUT', `/api/v1/machines/${machine.uuid}/labels`, { 'slipway.io/rolling': 'machine', 'slipway.io/rolling-drain': 'skip' })
  await api('PUT', '/api/v1/templates/ignition/kubernetes-control-plane.json', { body: template.replace('{ "path": "/etc/slipway/role", "mode": 420,', '{ "path": "/etc/slipway/role", "mode": 384,') })
  await outdated()
  const skipped = await agent()
  t.equal(skipped.code, 0, skipped.output)
  t.match(skipped.output, /took a reboot slot[\s\S]*apply-config reboot/)
  writeFileSync(running, readFileSync(applied))
  t.match((await agent()).output, /up to date: reboot slot released \(no drain: slipway\.io\/rolling-drain=skip\)/)
  t.same(await locks(), [], 'no slot held')

  // A refusal that is not one of the reasons changes nothing.
  const credential = /^SLIPWAY_MACHINE_CREDENTIAL=(.*)$/m.exec(lifecycleEnv)![1]!
  for (const body of [{ reason: 'bored', message: 'x' }, { reason: 'drain_failed' }, { reason: 'drain_failed', message: 'x'.repeat(2001) }, { reason: 'drain_failed', message: 'x', extra: 1 }]) {
    const answer = await fetch(`${address}/lifecycle/rolling/refusal`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    t.equal(answer.status, 400, `${JSON.stringify(body).slice(0, 60)}: 400`)
  }
  t.equal((await fetch(`${address}/lifecycle/rolling/refusal`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"reason":"drain_failed","message":"x"}' })).status, 401, 'no credential: 401')
  t.same(await api('GET', '/lifecycle/rolling/refusals'), [])
})
