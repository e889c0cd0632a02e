/**
 * Rolling-update throughput: 200 installed machines, all outdated, rolled with max_parallel 10 by a
 * running engine (real SQLite, the real runner job and executor, the lock semaphore). The machines
 * are simulated: a restart takes BENCH_REBOOT_MS (2 s) after which the machine reports its new config,
 * and draining is instant (test/fakes/rollout-fleet.ts). The peer is the ideal schedule:
 * ceil(machines / max_parallel) x restart time. The control plane (1 member) goes after every node,
 * alone, as etcd quorum demands: the ideal with that constraint is printed too.
 *
 *   npx tsx bench/rollout.bench.ts            (BENCH_MACHINES=200 BENCH_PARALLEL=10 BENCH_REBOOT_MS=2000)
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { admin, fleet } from '../test/fakes/rollout-fleet.ts'
import { sleep } from '../test/helpers/wait.ts'

const machines = Number(process.env.BENCH_MACHINES ?? 200)
const parallel = Number(process.env.BENCH_PARALLEL ?? 10)
const rebootMs = Number(process.env.BENCH_REBOOT_MS ?? 2000)
const teardowns: (() => unknown)[] = []

async function main() {
  const setupStarted = performance.now()
  const { app, maxHolders, shell } = await fleet({ teardown: (fn) => teardowns.push(fn) }, machines, rebootMs, 1)
  console.log(`setup: ${machines} machines discovered, scheduled, installed, reporting, then made outdated in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s`)

  const started = performance.now()
  const created = await admin(app, 'POST', '/api/v1/rollouts', { cluster: 'roll', max_parallel: parallel, strategy: 'reboot', ready_timeout_seconds: 120, drain: { timeout_seconds: 60 } })
  if (created.statusCode !== 201) throw new Error(`run not created: ${created.body}`)
  const id = created.json().id as string
  let run
  for (;;) {
    run = (await admin(app, 'GET', `/api/v1/rollouts/${id}`)).json()
    if (run.finished_at) break
    await sleep(200)
  }
  const totalSeconds = (performance.now() - started) / 1000
  if (run.state !== 'completed') throw new Error(`run ${run.state}: ${JSON.stringify(run.events.slice(-5))}`)
  const ideal = Math.ceil(machines / parallel) * (rebootMs / 1000)
  const idealWithQuorum = (Math.ceil((machines - 1) / parallel) + 1) * (rebootMs / 1000)
  const spans = (run.machines as { started_at: string; finished_at: string }[]).map((machine) => (Date.parse(machine.finished_at) - Date.parse(machine.started_at)) / 1000)
  const mean = spans.reduce((sum, span) => sum + span, 0) / spans.length
  const result = {
    date: new Date().toISOString(),
    machines,
    maxParallel: parallel,
    rebootSeconds: rebootMs / 1000,
    totalSeconds: Number(totalSeconds.toFixed(2)),
    idealSeconds: ideal,
    idealWithQuorumSeconds: idealWithQuorum,
    ratioToIdeal: Number((totalSeconds / ideal).toFixed(3)),
    ratioToIdealWithQuorum: Number((totalSeconds / idealWithQuorum).toFixed(3)),
    perMachineSeconds: { mean: Number(mean.toFixed(2)), max: Number(Math.max(...spans).toFixed(2)), min: Number(Math.min(...spans).toFixed(2)) },
    maxLockHolders: maxHolders(),
    restarts: shell.commands.length,
  }
  console.log(`\nrolled ${machines} machines, max_parallel ${parallel}, simulated restart ${rebootMs / 1000} s:`)
  console.log(`  total                      ${totalSeconds.toFixed(1)} s`)
  console.log(`  ideal ceil(${machines}/${parallel}) x ${rebootMs / 1000} s      ${ideal.toFixed(1)} s   ratio ${result.ratioToIdeal}`)
  console.log(`  ideal with the control plane alone at the end  ${idealWithQuorum.toFixed(1)} s   ratio ${result.ratioToIdealWithQuorum}`)
  console.log(`  per machine (lock to release)  mean ${result.perMachineSeconds.mean} s, min ${result.perMachineSeconds.min} s, max ${result.perMachineSeconds.max} s`)
  console.log(`  most lock holders seen at a restart: ${result.maxLockHolders} (max_parallel ${parallel})`)
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results')
  mkdirSync(out, { recursive: true })
  writeFileSync(path.join(out, 'rollout.json'), `${JSON.stringify(result, null, 2)}\n`)
  console.log(`results written to bench/results/rollout.json`)
}

const cleanup = async () => {
  for (const teardown of teardowns.reverse()) await teardown()
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)))
main()
  .then(cleanup)
  .catch(async (error: unknown) => {
    console.error(`rollout bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    await cleanup()
    process.exit(1)
  })
