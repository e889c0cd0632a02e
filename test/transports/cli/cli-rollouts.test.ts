/**
 * `slipway rollouts` and `slipway locks` (the real binary) against a running engine whose machines
 * restart through recording doubles (test/fakes/rollout-fleet.ts): a run followed with progress to a
 * failure (exit 1) and to completion (exit 0), a run waiting for a reboot slot a FleetLock client
 * holds (a wait that runs out: exit 7; Ctrl-C: exit 130), pause, the holder force-released, resume.
 */
import { once } from 'node:events'
import t from 'tap'
import { machineCredentials } from '../../helpers/machine-credentials.ts'
import { fleet, ipOf, uuidOf } from '../../fakes/rollout-fleet.ts'
import { ADMIN_TOKEN } from '../../helpers/engine.ts'
import { slipway as runSlipway, spawnSlipway, tableRows, type RunOptions } from './run-slipway.ts'

const slipway = (args: string[], options: RunOptions) => runSlipway(args, { token: ADMIN_TOKEN, ...options })

/** The plain progress lines (stdout is a pipe, so no \r bar) of one run, as [updated, failed]. */
function progressOf(stdout: string, id: string): [number, number][] {
  t.notMatch(stdout, /\r/, 'no carriage returns when stdout is not a terminal')
  return [...stdout.matchAll(new RegExp(`^rollout ${id}: (\\d+)/4 machines updated(?:, (\\d+) failed)?`, 'gm'))].map((match) => [Number(match[1]), Number(match[2] ?? 0)])
}

t.test('rollouts: start --wait to a failure and to completion, pause, resume, watch, a wait that runs out; locks', async (t) => {
  const { engine, app, shell } = await fleet(t, 4, 150)
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  // The first machine in line (the node) fails: with max_failures 1 the run stops there.
  shell.failHost = ipOf(4)
  const failed = await slipway(['rollouts', 'start', '--cluster', 'roll', '--max-failures', '1', '--strategy', 'kexec', '--wait', '--interval', '0.1'], { url })
  t.equal(failed.code, 1, `a run that fails exits 1: ${failed.stderr}`)
  const failedId = /^rollout (\S+) started: 4 machine\(s\) in roll$/m.exec(failed.stdout)?.[1]
  t.ok(failedId, failed.stdout)
  const failedProgress = progressOf(failed.stdout, failedId!)
  t.same(failedProgress.at(-1), [0, 1], `the last progress line: 0 updated, 1 failed (${failed.stdout})`)
  t.match(failed.stdout, /Z {2}roll-node-1 failed while applying: .*disk full/, "the run's events are printed as they come")
  t.match(failed.stdout, new RegExp(`rollout ${failedId} failed: 0 updated, 1 failed, 4 in all\\n$`))

  // A machine holds the cluster's reboot lock (FleetLock, as Zincati takes it) and does not give it back.
  shell.failHost = undefined
  // Generation 1: the install grant started it.
  const credential = machineCredentials(engine.config.secrets.keyFile).issue(uuidOf(1), 1)
  const taken = await fetch(`${url}/fleetlock/${credential}/v1/pre-reboot`, {
    method: 'POST',
    headers: { 'fleet-lock-protocol': 'true', 'content-type': 'application/json' },
    body: JSON.stringify({ client_params: { id: 'zincati', group: 'roll' } }),
  })
  t.equal(taken.status, 200, await taken.text())
  const held = tableRows((await slipway(['locks', 'list'], { url })).stdout)
  t.same(held[0], ['GROUP', 'SLOTS', 'FREE', 'TTL', 'HOLDERS'])
  t.match(held.find((row) => row[0] === 'roll'), ['roll', '1', '0', '-', new RegExp(`^${uuidOf(1)} \\(\\d+s\\)$`)], 'the holder is listed')

  // So the next run waits for the slot: a wait that runs out, a pause, the slot released by hand, resume.
  const started = await slipway(['rollouts', 'start', '--cluster', 'roll', '--no-etcd-gates', '--json'], { url })
  t.equal(started.code, 0, started.stderr)
  const run = JSON.parse(started.stdout) as { id: string; state: string; machines: unknown[] }
  t.match(run, { state: 'running', machines: { length: 4 }, spec: { etcd: { enabled: false } } }, '--json prints the created run (--no-etcd-gates in its spec)')
  const timedOut = await slipway(['rollouts', 'watch', run.id, '--wait-timeout', '1.5', '--interval', '0.1'], { url })
  t.equal(timedOut.code, 7, `a wait that runs out exits 7: ${timedOut.stderr}`)
  t.match(timedOut.stdout, new RegExp(`^rollout ${run.id}: 0/4 machines updated \\(roll-node-1 locking\\)$`, 'm'), 'the progress line says what moves')
  t.match(timedOut.stderr, new RegExp(`still in progress when --wait-timeout ran out; the rollout goes on in the engine \\(slipway rollouts show ${run.id}\\) \\(WAIT_TIMEOUT\\)`))
  // Ctrl-C stops the watching, not the run.
  const watcher = spawnSlipway(['rollouts', 'watch', run.id, '--interval', '0.1'], { url, token: ADMIN_TOKEN })
  let watcherOut = ''
  let watcherErr = ''
  watcher.stderr!.on('data', (chunk: Buffer) => (watcherErr += chunk.toString()))
  await new Promise<void>((resolve) => watcher.stdout!.on('data', (chunk: Buffer) => (watcherOut += chunk.toString()).includes('machines updated') && resolve()))
  watcher.kill('SIGINT')
  const [interruptedCode] = (await once(watcher, 'exit')) as [number | null]
  t.equal(interruptedCode, 130, `interrupted: exit 130 (${watcherErr})`)
  t.match(watcherErr, new RegExp(`^slipway: stopped watching; the rollout goes on in the engine \\(slipway rollouts show ${run.id}\\) \\(INTERRUPTED\\)\\n$`))
  const paused = await slipway(['rollouts', 'pause', run.id], { url })
  t.equal(paused.stdout, `rollout ${run.id}: paused\n`, paused.stderr)
  const released = await slipway(['locks', 'release', 'roll', uuidOf(1)], { url })
  t.equal(released.code, 0, released.stderr)
  t.match(released.stdout, new RegExp(`^released ${uuidOf(1)} from roll: [01]/1 slot\\(s\\) free\\n$`))
  t.equal((await slipway(['rollouts', 'resume', run.id], { url })).stdout, `rollout ${run.id}: running\n`)
  const watched = await slipway(['rollouts', 'watch', run.id, '--interval', '0.1'], { url })
  t.equal(watched.code, 0, watched.stderr)
  const progress = progressOf(watched.stdout, run.id)
  t.same(progress.at(-1), [4, 0], watched.stdout)
  t.ok(progress.every(([done], index) => index === 0 || done >= progress[index - 1]![0]), `progress never goes back: ${JSON.stringify(progress)}`)
  t.match(watched.stdout, new RegExp(`rollout ${run.id} completed: 4 updated, 0 failed, 4 in all\\n$`))
  const after = JSON.parse((await slipway(['locks', 'list', '--json'], { url })).stdout) as { name: string; holders: unknown[] }[]
  t.same(after.find((group) => group.name === 'roll')?.holders, [], 'nothing left held')

  const listed = await slipway(['rollouts', 'list'], { url })
  t.equal(listed.code, 0)
  t.same(
    tableRows(listed.stdout).map((row) => row.slice(0, 4)),
    [
      ['ID', 'STATE', 'CLUSTERS', 'FAILURES'],
      [failedId, 'failed', 'roll', '1'],
      [run.id, 'completed', 'roll', '0'],
    ],
  )
  const shown = await slipway(['rollouts', 'show', failedId!], { url })
  t.match(shown.stdout, /^Rollout: +\S+\nState: +failed\nClusters: +roll\n/)
  t.match(shown.stdout, /Machines:\nHOSTNAME +CLUSTER +ROLE +PHASE[^\n]*\nroll-node-1 +roll +node +failed .*disk full/)

  const cancelFinished = await slipway(['rollouts', 'cancel', run.id], { url })
  t.equal(cancelFinished.code, 5, 'cancelling a finished run is refused')
  t.match(cancelFinished.stderr, /\(INVALID_ROLLOUT_TRANSITION\)\n$/)
  const unknown = await slipway(['rollouts', 'watch', 'no-such-run'], { url })
  t.equal(unknown.code, 4)
  t.equal(unknown.stderr, 'slipway: rollout run no-such-run does not exist (ROLLOUT_NOT_FOUND)\n')
  const noCluster = await slipway(['rollouts', 'start', '--cluster', 'nope'], { url })
  t.equal(noCluster.code, 4)
  t.equal(noCluster.stderr, 'slipway: cluster "nope" does not exist (CLUSTER_NOT_FOUND)\n')
})
