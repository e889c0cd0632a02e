/**
 * A rolling update survives the engine being killed. The engine runs as its own process
 * (`node --import tsx src/main.ts`) with its real adapters: SSH to a real OpenSSH server on loopback
 * (test/helpers/sshd.ts; the machines' "apply-config" is a script that records its call) and drains
 * through @kubernetes/client-node against the kube-apiserver test double (test/fakes). The test plays
 * the machines: when a machine is told to apply its config, it "restarts" and reports the config it
 * was given, as the agent of a real installed machine does.
 *
 * While the first machine is restarting (its node cordoned, its slot held) the engine gets SIGKILL.
 * A new engine on the same data folder resumes the run; it completes, and no slot or cordon is left.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { machineCredentials } from '../helpers/machine-credentials.ts'
import { FakeKubeApiserver } from '../fakes/kube-apiserver.ts'
import { copySampleContent, removeTree } from '../helpers/engine.ts'
import { EngineProcess, freePort } from '../helpers/engine-process.ts'
import { sleep } from '../helpers/wait.ts'
import { startSshd } from '../helpers/sshd.ts'

const uuidOf = (n: number) => `c4a50000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:09:${n.toString(16).padStart(2, '0')}`

t.test('SIGKILL during a run: the next engine resumes it; nothing left held or cordoned', { timeout: 180_000 }, async (t) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-crash-'))
  t.teardown(() => removeTree(scratch))
  const content = path.join(scratch, 'content')
  copySampleContent(content)
  const dataDir = path.join(scratch, 'var')
  const port = await freePort()
  const sshd = await startSshd()
  t.teardown(() => sshd.stop())
  const kube = await FakeKubeApiserver.start({ terminationDelayMs: 20, replacementDelayMs: 20, replacementReadyDelayMs: 20 })
  t.teardown(() => kube.close())

  // The machines' apply-config: record the call; the test then plays the restart.
  const applyLog = path.join(scratch, 'apply.log')
  const applyCommand = path.join(scratch, 'apply-config')
  writeFileSync(applyCommand, `#!/bin/sh\necho "$1 $2" >> '${applyLog}'\n`)
  chmodSync(applyCommand, 0o755)
  const configPath = path.join(scratch, 'next.ign')

  const engine = new EngineProcess({ dataDir, contentDir: content, port, env: { SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' } })
  const startEngine = () => engine.start()
  t.teardown(() => engine.kill())
  let passed = false
  t.teardown(() => {
    if (!passed) t.comment(`--- engine output\n${engine.output.slice(-6000)}`)
  })
  const call = engine.call.bind(engine)

  await startEngine()
  const credentials = machineCredentials(path.join(dataDir, 'secrets.key'))
  await call('POST', '/api/v1/flavors', { name: 'crash', control_plane_count: 1, nodes_min: 0, nodes_max: 2 })
  await call('POST', '/api/v1/clusters', { name: 'crash', flavor: 'crash' })
  for (const n of [1, 2, 3]) {
    const discovered = await call('POST', '/discovery', { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: '127.0.0.1' }] }, {})
    t.equal(discovered.status, 200, discovered.text)
  }
  t.equal((await call('POST', '/api/v1/scheduler/run')).json().assignments.length, 3)
  const members = (await call('GET', '/api/v1/clusters/crash')).json().members as { hostname: string; machine_uuid: string }[]
  const hostnameOf = new Map(members.map((member) => [member.machine_uuid, member.hostname]))
  for (const member of members) {
    kube.addNode(member.hostname)
    kube.addPod({ name: `${member.hostname}-web`, node: member.hostname, controller: { kind: 'ReplicaSet', name: 'web' } })
  }

  const report = async (uuid: string, config: string) => {
    // Generation 1: the install grant started it.
    const answer = await call('POST', '/lifecycle/ignition', config, { authorization: `Bearer ${credentials.issue(uuid, 1)}` })
    if (answer.status !== 200) throw new Error(`report for ${uuid}: ${answer.status} ${answer.text}`)
    return answer.json().state as string
  }
  for (const n of [1, 2, 3]) {
    // As the discovery agent installs: its slot, its role config (served only in the slot), its report.
    await call('POST', `/install-authorization?uuid=${uuidOf(n)}&mac=${macOf(n)}`, {}, {})
    const config = (await call('GET', `/ignition?uuid=${uuidOf(n)}&mac=${macOf(n)}&os=installed`, undefined, {})).text
    await call('POST', `/lifecycle/install/success?uuid=${uuidOf(n)}&mac=${macOf(n)}`, undefined, {})
    t.equal(await report(uuidOf(n), config), 'up_to_date')
    if (n === 1) {
      const keys = JSON.parse(config).passwd.users[0].sshAuthorizedKeys as string[]
      const engineKeyLine = keys.find((key) => key.endsWith('slipway-engine'))
      t.ok(engineKeyLine, "the role config authorizes the engine's SSH key")
      sshd.authorize(engineKeyLine!)
    }
  }
  const template = (await call('GET', '/api/v1/templates/ignition/kubernetes-node.json')).json().body as string
  await call('PUT', '/api/v1/templates/ignition/kubernetes-node.json', { body: template.replace('"/etc/slipway/role"', '"/etc/slipway/role.v2"') })
  const templateCp = (await call('GET', '/api/v1/templates/ignition/kubernetes-control-plane.json')).json().body as string
  await call('PUT', '/api/v1/templates/ignition/kubernetes-control-plane.json', { body: templateCp.replace('"/etc/slipway/role"', '"/etc/slipway/role.v2"') })
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await call('GET', '/lifecycle/ignition')).json().every((record: { state: string }) => record.state === 'outdated')) break
    await sleep(50)
  }

  const created = await call('POST', '/api/v1/rollouts', {
    cluster: 'crash',
    max_parallel: 1,
    strategy: 'reboot',
    ssh: { user: sshd.username, port: sshd.port },
    apply: { command: applyCommand, config_path: configPath },
    kubernetes_api_server: kube.url,
    drain: { timeout_seconds: 20, eviction_retry_seconds: 0.1 },
    // The machines are played by the test and run no etcd: the gates on it are tested in etcd-quorum.test.ts.
    etcd: { enabled: false },
    ready_timeout_seconds: 60,
  })
  t.equal(created.status, 201, created.text)
  const runId = created.json().id as string

  // The machines: each apply-config call is a restart, after which the machine reports what it was given.
  let answered = 0
  const applied = () => (existsSync(applyLog) ? readFileSync(applyLog, 'utf8').trim().split('\n').filter(Boolean) : [])
  const uuidIn = (config: string) => {
    const env = JSON.parse(config).storage.files.find((file: { path: string }) => file.path === '/etc/slipway/lifecycle.env')
    return /SLIPWAY_MACHINE_CREDENTIAL=([0-9a-f-]{36})\./.exec(decodeURIComponent(env.contents.source))![1]!
  }

  // Wait for the first restart, then kill the engine before the machine reports.
  for (let attempt = 0; attempt < 400 && applied().length === 0; attempt++) await sleep(50)
  t.equal(applied().length, 1, 'the first machine was told to apply its config')
  const firstConfig = readFileSync(configPath, 'utf8')
  const firstUuid = uuidIn(firstConfig)
  t.equal(hostnameOf.get(firstUuid), 'crash-node-1', 'a node goes first')
  t.equal(kube.node('crash-node-1')!.spec.unschedulable, true, 'its node is cordoned')
  t.equal(kube.podsOn('crash-node-1').length, 0, 'and drained')
  const beforeKill = (await call('GET', '/api/v1/locks/crash')).json()
  t.same(beforeKill.holders.map((holder: { id: string }) => holder.id), [firstUuid], 'and it holds the slot')
  await engine.kill()
  t.pass('engine killed (SIGKILL) while the machine restarts')

  // The machine comes back while the engine is down, and reports as soon as it can.
  await startEngine()
  t.equal(await report(firstUuid, firstConfig), 'up_to_date', 'the restarted machine reports its new config to the new engine')
  answered = 1

  // Play the remaining machines until the run finishes.
  const deadline = Date.now() + 90_000
  let run: { state: string; finished_at: string | null; machines: { hostname: string; phase: string }[]; events: { message: string }[] }
  for (;;) {
    run = (await call('GET', `/api/v1/rollouts/${runId}`)).json()
    if (run.finished_at) break
    if (Date.now() > deadline) throw new Error(`run did not finish: ${JSON.stringify(run.machines)}`)
    const calls = applied()
    if (calls.length > answered) {
      const config = readFileSync(configPath, 'utf8')
      const uuid = uuidIn(config)
      const holders = (await call('GET', '/api/v1/locks/crash')).json().holders as unknown[]
      t.equal(holders.length, 1, `${hostnameOf.get(uuid)} restarts holding the only slot`)
      await report(uuid, config)
      answered = calls.length
    }
    await sleep(100)
  }
  t.equal(run.state, 'completed', JSON.stringify(run.events.slice(-6)))
  t.same(run.machines.map((machine) => `${machine.hostname}:${machine.phase}`), ['crash-node-1:done', 'crash-node-2:done', 'crash-cp-1:done'])
  t.equal(applied().length, 3, 'each machine restarted once: the resumed machine was not restarted again')
  t.same((await call('GET', '/api/v1/locks/crash')).json().holders, [], 'no slot left held')
  for (const member of members) t.notOk(kube.node(member.hostname)!.spec.unschedulable, `${member.hostname} is not left cordoned`)
  const drift = (await call('GET', '/lifecycle/ignition')).json() as { state: string }[]
  t.ok(drift.every((record) => record.state === 'up_to_date'), 'every machine runs the new config')
  t.ok(kube.requestsTo('POST', /\/eviction$/).length >= 3, 'pods were evicted through the Kubernetes API')
  passed = t.passing()
})
