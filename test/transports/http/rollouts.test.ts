/**
 * Rolling updates through a running engine (real SQLite, the real runner job) with the two adapters
 * that reach outside replaced by recording doubles: a machine shell whose "reboot" makes the machine
 * report its new config after a short delay, and a node drainer that records cordons. The real
 * adapters have their own tests (test/adapters: a real sshd, a kube-apiserver double); the run's
 * restart across an engine crash is in test/e2e/rollout-crash.test.ts.
 */
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { admin, fleet, ipOf } from '../../fakes/rollout-fleet.ts'
import { sleep } from '../../helpers/wait.ts'

async function finished(app: FastifyInstance, id: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const run = (await admin(app, 'GET', `/api/v1/rollouts/${id}`)).json()
    if (run.finished_at) return run
    if (Date.now() > deadline) throw new Error(`run ${id} did not finish: ${JSON.stringify(run.machines.map((m: { hostname: string; phase: string }) => `${m.hostname}:${m.phase}`))}`)
    await sleep(100)
  }
}

t.test('a run rolls every outdated machine, one at a time, nodes first, and leaves nothing held or cordoned', async (t) => {
  const { app, shell, drainer, maxHolders } = await fleet(t, 5)
  const nothing = await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'nope' })
  t.equal(nothing.json().code, 'CLUSTER_NOT_FOUND')
  const created = await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll', max_parallel: 1, strategy: 'kexec', drain: { timeout_seconds: 30 }, ready_timeout_seconds: 20 })
  t.equal(created.statusCode, 201, created.body)
  t.equal(created.json().machines.length, 5)
  t.equal((await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll' })).json().code, 'ROLLOUT_ACTIVE', 'one active run per cluster')

  const run = await finished(app, created.json().id)
  t.equal(run.state, 'completed', JSON.stringify(run.events.slice(-5)))
  t.same(run.machines.map((machine: { phase: string }) => machine.phase), ['done', 'done', 'done', 'done', 'done'])
  const order = shell.commands.map((command) => command.host)
  t.same(order, [ipOf(4), ipOf(5), ipOf(1), ipOf(2), ipOf(3)], 'the two nodes first, then the control plane')
  t.match(shell.commands[0]!.command, /^\/opt\/slipway\/bin\/apply-config '\/var\/lib\/slipway\/next\.ign' kexec$/)
  t.equal(maxHolders(), 1, 'the semaphore never showed more than one holder')
  t.ok(shell.commands.every((command) => command.holders === 1), 'each machine held the one slot while it restarted')
  t.same([...drainer.cordoned], [], 'no node left cordoned')
  t.same(drainer.calls.slice(0, 3), [`cordon roll-node-1`, `drain roll-node-1`, `uncordon roll-node-1`])
  t.match((await admin(app, 'GET', '/api/v1/locks/roll')).json(), { holders: [] }, 'no slot left held')
  const drift = (await admin(app, 'GET', '/lifecycle/ignition')).json() as { state: string }[]
  t.ok(drift.every((record) => record.state === 'up_to_date'), 'every machine reported its new config')
  const written = shell.written.get(`${ipOf(1)}:/var/lib/slipway/next.ign`)!
  t.match(written, /\/etc\/slipway\/role\.v2/, 'the machine was given the new config')
  t.ok(run.events.some((event: { message: string }) => /roll-cp-1: drained: 1 pod\(s\) evicted/.test(event.message)), 'progress is recorded per machine')
  t.match(run.events.at(-1).message, /run completed: 5 updated, 0 failed/)
  t.equal((await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll' })).json().code, 'NOTHING_TO_ROLL', 'nothing outdated any more')
})

t.test('a failure uncordons and releases, and stops the run at max_failures', async (t) => {
  const { app, shell, drainer } = await fleet(t, 4)
  shell.failHost = ipOf(4) // the node, first in line
  const created = await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll', max_parallel: 1, max_failures: 1 })
  const run = await finished(app, created.json().id)
  t.equal(run.state, 'failed')
  t.match(run.machines[0], { hostname: 'roll-node-1', phase: 'failed', error: /applying: .*exited 1: apply-config: disk full/ })
  t.same(
    run.machines.slice(1).map((machine: { phase: string }) => machine.phase),
    ['waiting', 'waiting', 'waiting'],
    'after one failure nothing else starts',
  )
  t.same([...drainer.cordoned], [], 'the failed node was uncordoned')
  t.match((await admin(app, 'GET', '/api/v1/locks/roll')).json(), { holders: [] }, 'and its slot released')
  t.match(run.events.at(-1).message, /run failed: 0 updated, 1 failed, 3 not started/)
})

t.test('pause stops new machines, resume goes on; a window outside now starts nothing', async (t) => {
  const { app, shell } = await fleet(t, 4, 400)
  const created = (await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll', max_parallel: 1 })).json()
  for (let attempt = 0; attempt < 100 && shell.commands.length === 0; attempt++) await sleep(20)
  const paused = await admin(app, 'POST', `/api/v1/rollouts/${created.id}/pause`)
  t.equal(paused.json().state, 'paused')
  await sleep(1200)
  const during = (await admin(app, 'GET', `/api/v1/rollouts/${created.id}`)).json()
  t.equal(during.machines.filter((machine: { phase: string }) => machine.phase === 'done').length, 1, 'the machine in flight finished')
  t.equal(during.machines.filter((machine: { phase: string }) => machine.phase === 'waiting').length, 3, 'no other started while paused')
  t.equal(during.finished_at, null, 'a paused run is not finished')
  t.equal((await admin(app, 'POST', `/api/v1/rollouts/${created.id}/pause`)).json().code, 'INVALID_ROLLOUT_TRANSITION')
  t.equal((await admin(app, 'POST', `/api/v1/rollouts/${created.id}/resume`)).json().state, 'running')
  t.equal((await finished(app, created.id)).state, 'completed')

  // Make them outdated again, then a run whose window is closed now.
  const body = (await admin(app, 'GET', '/api/v1/templates/ignition/kubernetes-node.json')).json().body as string
  await admin(app, 'PUT', '/api/v1/templates/ignition/kubernetes-node.json', { body: body.replace('"/etc/slipway/role.v2"', '"/etc/slipway/role.v3"') })
  await sleep(600)
  const now = new Date()
  const closed = `${String((now.getUTCHours() + 2) % 24).padStart(2, '0')}:00`
  const closedEnd = `${String((now.getUTCHours() + 3) % 24).padStart(2, '0')}:00`
  const windowed = await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll', window: { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: closed, end: closedEnd } })
  t.equal(windowed.statusCode, 201, windowed.body)
  await sleep(1200)
  const waiting = (await admin(app, 'GET', `/api/v1/rollouts/${windowed.json().id}`)).json()
  t.ok(waiting.machines.every((machine: { phase: string }) => machine.phase === 'waiting'), 'outside its window a run starts nothing')
  t.equal((await admin(app, 'POST', `/api/v1/rollouts/${windowed.json().id}/cancel`)).json().state, 'cancelled')
  const invalidRun = await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll', strategy: 'explode' })
  t.equal(invalidRun.json().code, 'INVALID_ROLLOUT')
})

t.test('a selector run spans clusters: per-cluster lock groups and drainers, one active run per cluster, bad targets refused', async (t) => {
  const { app, shell, drainer, maxHolders } = await fleet(t, 3, 150, 1, ['roll', 'edge'])
  const machines: { uuid: string; hostname: string }[] = []
  for (const cluster of ['roll', 'edge']) {
    for (const member of (await admin(app, 'GET', `/api/v1/clusters/${cluster}`)).json().members) machines.push({ uuid: member.machine_uuid, hostname: member.hostname })
  }
  t.equal(machines.length, 6)
  const edgeControlPlane = machines.find((machine) => machine.hostname === 'edge-cp-1')!
  t.ok(edgeControlPlane, JSON.stringify(machines.map((machine) => machine.hostname)))
  t.equal((await admin(app, 'PUT', `/api/v1/machines/${edgeControlPlane.uuid}/labels`, { rack: 'r7' })).statusCode, 200)

  for (const [body, status, code, message] of [
    [{}, 400, 'INVALID_ROLLOUT', /needs a target/],
    [{ selector: 'rack in r7' }, 400, 'INVALID_SELECTOR', /"in" must be followed by "\(values\)"/],
    [{ selector: 'rack=r99' }, 409, 'NOTHING_TO_ROLL', /selector "rack=r99".*no cluster member matches/],
    [{ selector: 'slipway.io/role=node', kubernetes_api_server: 'https://10.0.0.1:6443' }, 400, 'INVALID_ROLLOUT', /spans 2 clusters \(edge, roll\)/],
  ] as const) {
    const refused = await admin(app, 'POST', '/api/v1/rollouts', body)
    t.match({ status: refused.statusCode, ...refused.json() }, { status, code, message }, JSON.stringify(body))
  }
  t.same((await admin(app, 'GET', '/api/v1/rollouts')).json(), [], 'nothing refused was stored')

  const nodes = await admin(app, 'POST', '/api/v1/rollouts', { selector: 'slipway.io/role=node', max_parallel: 2 })
  t.equal(nodes.statusCode, 201, nodes.body)
  t.same(nodes.json().clusters, ['edge', 'roll'])
  t.same(nodes.json().machines.map((machine: { hostname: string; cluster: string }) => `${machine.cluster}/${machine.hostname}`).sort(), ['edge/edge-node-1', 'edge/edge-node-2', 'roll/roll-node-1', 'roll/roll-node-2'])
  t.match(nodes.json().events[0].message, /run created for selector "slipway.io\/role=node": 4 outdated machine\(s\) in clusters edge, roll/)
  const overlapping = await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'edge' })
  t.match(overlapping.json(), { code: 'ROLLOUT_ACTIVE', message: /"edge" already have an active run/ }, 'a cluster in an active run cannot get another')
  const run = await finished(app, nodes.json().id)
  t.equal(run.state, 'completed', JSON.stringify(run.events.slice(-5)))
  t.equal(shell.commands.length, 4, 'the four nodes restarted, no control-plane member')
  t.ok(maxHolders() <= 2, `no lock group showed more than max_parallel holders (${maxHolders()})`)
  t.ok(Math.max(...shell.commands.map((command) => command.holders)) >= 1)
  for (const group of ['roll', 'edge']) t.match((await admin(app, 'GET', `/api/v1/locks/${group}`)).json(), { slots: 2, holders: [] }, `${group}: its own group, released`)
  t.same([...drainer.cordoned], [], 'no node left cordoned')
  t.ok(['edge-node-1', 'roll-node-1'].every((node) => drainer.calls.includes(`cordon ${node}`)), 'nodes of both clusters drained')

  const labelled = await admin(app, 'POST', '/api/v1/rollouts', { selector: 'rack=r7', cluster: 'edge' })
  t.equal(labelled.statusCode, 201, labelled.body)
  t.same(labelled.json().machines.map((machine: { hostname: string }) => machine.hostname), ['edge-cp-1'], "the machine's own label, narrowed to its cluster")
  t.equal((await finished(app, labelled.json().id)).state, 'completed')
  const drift = (await admin(app, 'GET', '/lifecycle/ignition')).json() as { uuid: string; state: string }[]
  const outdated = drift.filter((record) => record.state === 'outdated').map((record) => machines.find((machine) => machine.uuid === record.uuid)!.hostname)
  t.same(outdated, ['roll-cp-1'], 'only what no run selected is still outdated')
})
