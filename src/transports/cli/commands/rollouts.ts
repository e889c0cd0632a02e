import type { RolloutDetail, RolloutSummary } from '../api-types.ts'
import { EXIT, usageError, type ExitCode } from '../cli-error.ts'
import { flag, integerValue, positional, stringValue, WAIT_OPTIONS, waitSettings, type CommandContext, type CommandSpec } from '../command.ts'
import { readDocument } from '../documents.ts'
import type { Output } from '../output.ts'
import { EventTail, ProgressDisplay, watch, type WatchStep } from '../progress.ts'
import { formatAge } from '../table.ts'

const STRATEGIES = ['reboot', 'kexec', 'poweroff']
const ID = /^[A-Za-z0-9._-]{1,64}$/
const runPath = (id: string) => `/api/v1/rollouts/${encodeURIComponent(id)}`

function runId(context: CommandContext): string {
  const id = positional(context, 0)
  if (!ID.test(id)) throw usageError(`"${id}" is not a rollout id (slipway rollouts list shows them)`)
  return id
}

/** Where a run stands: machines done (or skipped), failed, and which are restarting now. */
export function rolloutStep(run: RolloutDetail, events: string[]): WatchStep {
  const done = run.machines.filter((machine) => machine.phase === 'done' || machine.phase === 'skipped').length
  const failed = run.machines.filter((machine) => machine.phase === 'failed').length
  const moving = run.machines.filter((machine) => !['waiting', 'done', 'skipped', 'failed'].includes(machine.phase)).map((machine) => `${machine.hostname} ${machine.phase}`)
  const detail = run.state === 'paused' ? 'paused' : moving.join(', ')
  const counts = { done, failed, total: run.machines.length, ...(detail ? { detail } : {}) }
  if (run.finished_at === null) return { counts, events }
  return { counts, events, outcome: run.state === 'completed' ? 'succeeded' : 'failed' }
}

function printRun(out: Output, run: RolloutDetail): void {
  out.fields([
    ['Rollout', run.id],
    ['State', run.state],
    ['Clusters', run.clusters.join(', ') || '-'],
    ['Failures', run.failures],
    ['Created', run.created_at],
    ['Finished', run.finished_at ?? 'not yet'],
  ])
  out.section('Machines:')
  out.table(
    [{ header: 'HOSTNAME' }, { header: 'CLUSTER' }, { header: 'ROLE' }, { header: 'PHASE' }, { header: 'STARTED' }, { header: 'FINISHED' }, { header: 'ERROR', shrink: true }],
    run.machines.map((machine) => [machine.hostname, machine.cluster, machine.role, machine.phase, machine.started_at, machine.finished_at, machine.error ?? '']),
    '  none',
  )
}

async function watchRun(context: CommandContext, id: string): Promise<ExitCode> {
  const api = await context.api()
  const { timeoutMs, intervalMs } = waitSettings(context)
  const tail = new EventTail()
  let last: { raw: string; data: RolloutDetail } | undefined
  const code = await watch({
    display: new ProgressDisplay(context.out.progressStream, `rollout ${id}`, 'machines updated'),
    intervalMs,
    timeoutMs,
    goesOn: `the rollout goes on in the engine (slipway rollouts show ${id})`,
    poll: async (signal) => {
      last = await api.call<RolloutDetail>('GET', runPath(id), { signal })
      const events = tail.take(last.data.events, (event) => `${event.at}|${event.uuid}|${event.message}`, (event) => `${event.at}  ${event.message}`)
      return rolloutStep(last.data, events)
    },
  })
  if (context.out.json) context.out.printJson(last!.raw)
  else context.out.print(`rollout ${id} ${last!.data.state}: ${last!.data.machines.filter((machine) => machine.phase === 'done').length} updated, ${last!.data.failures} failed, ${last!.data.machines.length} in all`)
  return code
}

const actions = (['pause', 'resume', 'cancel'] as const).map(
  (action): CommandSpec => ({
    path: ['rollouts', action],
    summary: { pause: 'pause a run: no new machine starts (those restarting finish)', resume: 'resume a paused run', cancel: 'cancel a run (machines restarting finish)' }[action],
    args: '<id>',
    arity: [1, 1],
    async run(context) {
      const id = runId(context)
      const answer = await (await context.api()).call<RolloutDetail>('POST', `${runPath(id)}/${action}`)
      if (context.out.json) context.out.printJson(answer.raw)
      else context.out.print(`rollout ${id}: ${answer.data.state}`)
      return EXIT.ok
    },
  }),
)

export const rolloutCommands: CommandSpec[] = [
  {
    path: ['rollouts', 'list'],
    summary: 'every rolling-update run, oldest first',
    async run(context) {
      const answer = await (await context.api()).call<RolloutSummary[]>('GET', '/api/v1/rollouts')
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.table(
        [{ header: 'ID' }, { header: 'STATE' }, { header: 'CLUSTERS', shrink: true }, { header: 'FAILURES', align: 'right' }, { header: 'CREATED', align: 'right' }, { header: 'FINISHED', align: 'right' }],
        answer.data.map((run) => [run.id, run.state, run.clusters.join(',') || '-', run.failures, formatAge(run.created_at), run.finished_at ? formatAge(run.finished_at) : '-']),
        'no rollouts',
      )
      return EXIT.ok
    },
  },
  {
    path: ['rollouts', 'show'],
    summary: "a run with each machine's phase and the latest events",
    args: '<id>',
    arity: [1, 1],
    async run(context) {
      const id = runId(context)
      const answer = await (await context.api()).call<RolloutDetail>('GET', runPath(id))
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      printRun(context.out, answer.data)
      context.out.section('Latest events:')
      context.out.table(
        [{ header: 'AT' }, { header: 'MESSAGE', shrink: true }],
        answer.data.events.slice(-10).map((event) => [event.at, event.message]),
        '  none',
      )
      return EXIT.ok
    },
  },
  {
    path: ['rollouts', 'start'],
    summary: 'start a rolling update of the outdated machines of a cluster or label selector',
    options: {
      cluster: { type: 'string', value: 'NAME', help: 'the cluster whose outdated machines roll' },
      selector: { type: 'string', value: 'SELECTOR', help: 'machines by label (rack=r12,slipway.io/role=node); with --cluster it narrows it' },
      'max-parallel': { type: 'string', value: 'N', help: 'machines restarting at once (default 1)' },
      strategy: { type: 'string', value: 'STRATEGY', help: `how machines restart: ${STRATEGIES.join(', ')} (default reboot)` },
      'max-failures': { type: 'string', value: 'N', help: 'stop starting machines after this many failed (default 1)' },
      'ready-timeout': { type: 'string', value: 'SECONDS', help: 'how long a restarted machine has to come back' },
      'no-drain': { type: 'boolean', help: 'do not cordon and drain nodes first' },
      'no-etcd-gates': { type: 'boolean', help: "do not hold control-plane members to their cluster's etcd health (machines that run none the engine can reach)" },
      file: { type: 'string', short: 'f', value: 'FILE', help: 'a whole rollout document (JSON or YAML: window, drain, ssh, ...); options given override it' },
      wait: { type: 'boolean', help: 'follow the run to its end (progress bar); exit 1 if it failed or was cancelled' },
      ...WAIT_OPTIONS,
    },
    async run(context) {
      const file = stringValue(context, 'file')
      const body: Record<string, unknown> = file ? await readDocument(file, context.cwd, 'rollout document') : {}
      const cluster = stringValue(context, 'cluster')
      if (cluster !== undefined) body.cluster = cluster
      const selector = stringValue(context, 'selector')
      if (selector !== undefined) body.selector = selector
      if (body.cluster === undefined && body.selector === undefined) throw usageError('which machines? --cluster NAME and/or --selector SELECTOR')
      const maxParallel = integerValue(context, 'max-parallel', 1, 100)
      if (maxParallel !== undefined) body.max_parallel = maxParallel
      const strategy = stringValue(context, 'strategy')
      if (strategy !== undefined) {
        if (!STRATEGIES.includes(strategy)) throw usageError(`--strategy must be one of ${STRATEGIES.join(', ')}, not "${strategy}"`)
        body.strategy = strategy
      }
      const maxFailures = integerValue(context, 'max-failures', 1, 10_000)
      if (maxFailures !== undefined) body.max_failures = maxFailures
      const readyTimeout = integerValue(context, 'ready-timeout', 1, 86_400)
      if (readyTimeout !== undefined) body.ready_timeout_seconds = readyTimeout
      if (flag(context, 'no-drain')) body.drain = { ...(body.drain as object | undefined), enabled: false }
      if (flag(context, 'no-etcd-gates')) body.etcd = { ...(body.etcd as object | undefined), enabled: false }
      waitSettings(context)
      const answer = await (await context.api()).call<RolloutDetail>('POST', '/api/v1/rollouts', { json: body })
      const run = answer.data
      if (!flag(context, 'wait')) {
        if (context.out.json) context.out.printJson(answer.raw)
        else context.out.print(`rollout ${run.id} started: ${run.machines.length} machine(s) in ${run.clusters.join(', ')}; follow it with slipway rollouts watch ${run.id}`)
        return EXIT.ok
      }
      if (!context.out.json) context.out.print(`rollout ${run.id} started: ${run.machines.length} machine(s) in ${run.clusters.join(', ')}`)
      return watchRun(context, run.id)
    },
  },
  ...actions,
  {
    path: ['rollouts', 'watch'],
    summary: 'follow a run to its end with a progress bar (exit 1 if it failed or was cancelled)',
    args: '<id>',
    arity: [1, 1],
    options: WAIT_OPTIONS,
    async run(context) {
      const id = runId(context)
      waitSettings(context)
      return watchRun(context, id)
    },
  },
]
