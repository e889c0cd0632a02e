import type { ApiClient } from '../api-client.ts'
import type { ClusterView, ReleaseDetail, ReleaseView } from '../api-types.ts'
import { EXIT, usageError, type ExitCode } from '../cli-error.ts'
import {
  confirmByName,
  flag,
  integerValue,
  mustConfirm,
  positional,
  stringValue,
  stringValues,
  WAIT_OPTIONS,
  waitSettings,
  YES_OPTION,
  type CommandContext,
  type CommandSpec,
  type OptionSpec,
} from '../command.ts'
import { applySetValues, readDocument } from '../documents.ts'
import type { Output } from '../output.ts'
import { EventTail, ProgressDisplay, watch, type WatchStep } from '../progress.ts'
import { formatAge } from '../table.ts'

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const NAMESPACE_OPTION: Record<string, OptionSpec> = { namespace: { type: 'string', short: 'n', value: 'NAMESPACE', help: 'the namespace, when the release is named without one (default "default")' } }

interface ReleaseRef {
  namespace: string
  name: string
}

/** `shop/web`, or `web` with -n shop (default namespace "default"), checked as Helm checks names. */
function releaseRef(context: CommandContext, text: string): ReleaseRef {
  const slash = text.indexOf('/')
  const fromOption = stringValue(context, 'namespace')
  if (slash !== -1 && fromOption !== undefined && fromOption !== text.slice(0, slash)) throw usageError(`"${text}" names namespace ${text.slice(0, slash)} but -n says ${fromOption}`)
  const namespace = slash === -1 ? (fromOption ?? 'default') : text.slice(0, slash)
  const name = slash === -1 ? text : text.slice(slash + 1)
  if (!DNS_LABEL.test(namespace)) throw usageError(`"${namespace}" is not a namespace name (a DNS label)`)
  if (!DNS_LABEL.test(name) || name.length > 53) throw usageError(`"${name}" is not a release name (a DNS label of at most 53 characters)`)
  return { namespace, name }
}
const releasePath = (ref: ReleaseRef) => `/api/v1/releases/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.name)}`

/** `web@1.2.0` or `web` (newest version), with --version overriding. */
function chartRef(context: CommandContext, text: string): { name: string; version?: string } {
  const at = text.lastIndexOf('@')
  const name = at > 0 ? text.slice(0, at) : text
  const version = stringValue(context, 'version') ?? (at > 0 ? text.slice(at + 1) : undefined)
  if (name === '' || version === '') throw usageError(`--chart takes NAME or NAME@VERSION, not "${text}"`)
  return version === undefined ? { name } : { name, version }
}

/** Rollout settings given as options, in the API's names. */
function rolloutOptions(context: CommandContext): Record<string, unknown> {
  const rollout: Record<string, unknown> = {}
  const maxParallel = integerValue(context, 'max-parallel', 1, 1000)
  if (maxParallel !== undefined) rollout.max_parallel = maxParallel
  const maxFailures = integerValue(context, 'max-failures', 1, 100_000)
  if (maxFailures !== undefined) rollout.max_failures = maxFailures
  const readyTimeout = integerValue(context, 'ready-timeout', 1, 86_400)
  if (readyTimeout !== undefined) rollout.ready_timeout_seconds = readyTimeout
  const canary = stringValue(context, 'canary')
  if (canary !== undefined) rollout.canary_selector = canary
  return rollout
}

async function valuesFrom(context: CommandContext): Promise<Record<string, unknown> | undefined> {
  const files = stringValues(context, 'values')
  const sets = stringValues(context, 'set')
  if (files.length === 0 && sets.length === 0) return undefined
  // Later files win, key by key at the top (as helm -f a.yaml -f b.yaml), then --set.
  let values: Record<string, unknown> = {}
  for (const file of files) values = { ...values, ...(await readDocument(file, context.cwd, 'values file')) }
  return applySetValues(values, sets)
}

const CHANGE_OPTIONS: Record<string, OptionSpec> = {
  values: { type: 'string', short: 'f', value: 'FILE', multiple: true, help: 'chart values, YAML or JSON (as helm -f)' },
  set: { type: 'string', value: 'KEY=VALUE', multiple: true, help: 'a value (dots nest: image.tag=2.5), as helm --set' },
  'cluster-values': { type: 'boolean', help: 'add slipway.cluster (name, labels, location) to each cluster\'s values' },
  'max-parallel': { type: 'string', value: 'N', help: 'clusters applying at once' },
  canary: { type: 'string', value: 'SELECTOR', help: 'clusters that get a revision first; the others wait until they are ready' },
  'max-failures': { type: 'string', value: 'N', help: 'halt the rollout once this many clusters failed' },
  'ready-timeout': { type: 'string', value: 'SECONDS', help: "how long a cluster's workloads have to become ready" },
  wait: { type: 'boolean', help: 'wait until every cluster has the revision (progress bar); exit 1 if one failed' },
  ...WAIT_OPTIONS,
}

/**
 * The clusters the release goes to, as the engine picks them (release-service `targets`): joined
 * clusters the selector matches, less the excluded ones, and for a tenant's release its tenant's only.
 * The release view does not list them, and the per-cluster statuses appear only as the reconciler
 * reaches each cluster, so the statuses alone cannot say when a fan-out is complete.
 */
async function targetsOf(api: ApiClient, release: ReleaseView, signal?: AbortSignal): Promise<string[]> {
  if (release.state === 'deleting') return []
  const clusters = (await api.call<ClusterView[]>('GET', '/api/v1/clusters', { query: { labels: release.selector || undefined }, signal })).data
  const tenant = release.tenant ?? null
  return clusters
    .filter((cluster) => cluster.joined_at !== null && !release.excluded_clusters.includes(cluster.name))
    .filter((cluster) => tenant === null || cluster.tenant === undefined || cluster.tenant === tenant)
    .map((cluster) => cluster.name)
}

/** Where the current revision stands on the release's targets, and whether the fan-out has ended. */
export function fanoutStep(release: ReleaseDetail, targets: string[], events: string[]): WatchStep {
  const status = new Map(release.clusters.map((each) => [each.cluster, each]))
  const atCurrent = (cluster: string, phase: string) => status.get(cluster)?.revision === release.revision && status.get(cluster)?.phase === phase
  const ready = targets.filter((cluster) => atCurrent(cluster, 'ready')).length
  const failed = targets.filter((cluster) => atCurrent(cluster, 'failed')).length
  const applying = release.clusters.filter((each) => each.phase === 'applying').map((each) => each.cluster)
  const detail = release.state !== 'active' ? release.state : applying.length > 0 ? `applying: ${applying.join(', ')}` : undefined
  const counts = { done: ready, failed, total: targets.length, ...(detail ? { detail } : {}) }
  if (release.state === 'halted') return { counts, events, outcome: 'failed' }
  if (ready + failed === targets.length) return { counts, events, outcome: failed > 0 ? 'failed' : 'succeeded' }
  return { counts, events }
}

/** Watches a release's fan-out to the end, then prints its clusters (or, with --json, the release). */
async function watchRelease(context: CommandContext, ref: ReleaseRef): Promise<ExitCode> {
  const api = await context.api()
  const { timeoutMs, intervalMs } = waitSettings(context)
  const tail = new EventTail()
  let last: { raw: string; data: ReleaseDetail } | undefined
  const display = new ProgressDisplay(context.out.progressStream, `${ref.namespace}/${ref.name}`, 'clusters ready')
  const code = await watch({
    display,
    intervalMs,
    timeoutMs,
    goesOn: `the release goes on in the engine (slipway releases status ${ref.namespace}/${ref.name})`,
    poll: async (signal) => {
      last = await api.call<ReleaseDetail>('GET', releasePath(ref), { signal })
      const targets = await targetsOf(api, last.data, signal)
      const events = tail.take(last.data.events, (event) => `${event.at}|${event.cluster}|${event.message}`, (event) => `${event.at}  ${event.cluster ? `${event.cluster}: ` : ''}${event.message}`)
      return fanoutStep(last.data, targets, events)
    },
  })
  if (context.out.json) context.out.printJson(last!.raw)
  else printClusterStatuses(context.out, last!.data)
  return code
}

function printClusterStatuses(out: Output, release: ReleaseView): void {
  out.print(
    `${release.namespace}/${release.name} revision ${release.revision} (${release.chart.name} ${release.chart.version}): ${release.state}; ` +
      `${release.summary.ready}/${release.summary.clusters} ready${release.summary.failed ? `, ${release.summary.failed} failed` : ''}`,
  )
  out.table(
    [{ header: 'CLUSTER' }, { header: 'REVISION', align: 'right' }, { header: 'PHASE' }, { header: 'ATTEMPTS', align: 'right' }, { header: 'UPDATED', align: 'right' }, { header: 'ERROR', shrink: true }],
    release.clusters.map((status) => [status.cluster, status.revision, status.phase, status.attempts, formatAge(status.updated_at), status.error ?? (status.retry_at ? `retry at ${status.retry_at}` : '')]),
    'no cluster has it yet',
  )
}

async function finishChange(context: CommandContext, ref: ReleaseRef, answer: { raw: string; data: ReleaseDetail }, verb: string): Promise<ExitCode> {
  if (flag(context, 'wait')) {
    if (!context.out.json) context.out.print(`${ref.namespace}/${ref.name}: ${verb} revision ${answer.data.revision} (${answer.data.chart.name} ${answer.data.chart.version})`)
    return watchRelease(context, ref)
  }
  if (context.out.json) context.out.printJson(answer.raw)
  else context.out.print(`${ref.namespace}/${ref.name}: ${verb} revision ${answer.data.revision} (${answer.data.chart.name} ${answer.data.chart.version}); follow it with slipway releases status ${ref.namespace}/${ref.name} --watch`)
  return EXIT.ok
}

export const releaseCommands: CommandSpec[] = [
  {
    path: ['releases', 'list'],
    summary: 'every release with its fan-out summary',
    options: { labels: { type: 'string', value: 'SELECTOR', help: 'only releases on clusters whose labels match' } },
    async run(context) {
      const answer = await (await context.api()).call<ReleaseView[]>('GET', '/api/v1/releases', { query: { labels: stringValue(context, 'labels') } })
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.table(
        [{ header: 'NAMESPACE' }, { header: 'NAME' }, { header: 'CHART' }, { header: 'REVISION', align: 'right' }, { header: 'STATE' }, { header: 'READY', align: 'right' }, { header: 'FAILED', align: 'right' }, { header: 'SELECTOR', shrink: true }, { header: 'AGE', align: 'right' }],
        answer.data.map((release) => [release.namespace, release.name, `${release.chart.name}-${release.chart.version}`, release.revision, release.state, `${release.summary.ready}/${release.summary.clusters}`, release.summary.failed, release.selector || '(every cluster)', formatAge(release.created_at)]),
        'no releases',
      )
      return EXIT.ok
    },
  },
  {
    path: ['releases', 'show'],
    summary: 'a release with its per-cluster status, revisions and latest events',
    args: '<namespace/name>',
    arity: [1, 1],
    options: NAMESPACE_OPTION,
    async run(context) {
      const ref = releaseRef(context, positional(context, 0))
      const answer = await (await context.api()).call<ReleaseDetail>('GET', releasePath(ref))
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      const release = answer.data
      const out = context.out
      out.fields([
        ['Release', `${release.namespace}/${release.name}`],
        ['Chart', `${release.chart.name} ${release.chart.version}`],
        ['Revision', release.revision],
        ['State', release.state],
        ['Selector', release.selector || '(every cluster)'],
        ['Excluded', release.excluded_clusters.join(', ') || '-'],
        ['Rollout', `max_parallel ${release.rollout.max_parallel}, max_failures ${release.rollout.max_failures}, ready timeout ${release.rollout.ready_timeout_seconds}s${release.rollout.canary_selector ? `, canaries "${release.rollout.canary_selector}"` : ''}`],
        ['Created', release.created_at],
      ])
      out.section('Clusters:')
      printClusterStatuses(out, release)
      out.section('Revisions:')
      out.table(
        [{ header: 'REVISION', align: 'right' }, { header: 'CHART' }, { header: 'DESCRIPTION', shrink: true }, { header: 'CREATED' }],
        release.revisions.map((revision) => [revision.revision, `${revision.chart.name}-${revision.chart.version}`, revision.description, revision.created_at]),
      )
      out.section('Latest events:')
      out.table(
        [{ header: 'AT' }, { header: 'CLUSTER' }, { header: 'MESSAGE', shrink: true }],
        release.events.slice(-10).map((event) => [event.at, event.cluster, event.message]),
        '  none',
      )
      return EXIT.ok
    },
  },
  {
    path: ['releases', 'install'],
    summary: 'install a chart on every cluster matching a selector',
    args: '<namespace/name>',
    arity: [1, 1],
    options: {
      ...NAMESPACE_OPTION,
      chart: { type: 'string', value: 'NAME[@VERSION]', help: "a chart in the engine's repository (default version: the newest)" },
      version: { type: 'string', value: 'VERSION', help: 'the chart version (instead of @VERSION)' },
      selector: { type: 'string', value: 'SELECTOR', help: 'the clusters to install on, by label (region=eu); "" for every cluster' },
      ...CHANGE_OPTIONS,
      file: { type: 'string', value: 'FILE', help: 'a whole release document (JSON or YAML); options given override it' },
    },
    async run(context) {
      const ref = releaseRef(context, positional(context, 0))
      const file = stringValue(context, 'file')
      const body: Record<string, unknown> = file ? await readDocument(file, context.cwd, 'release document') : {}
      body.name = ref.name
      body.namespace = ref.namespace
      const chart = stringValue(context, 'chart')
      if (chart !== undefined) body.chart = chartRef(context, chart)
      else if (stringValue(context, 'version') !== undefined) throw usageError('--version goes with --chart NAME')
      if (body.chart === undefined) throw usageError('which chart? --chart NAME[@VERSION] (slipway charts list shows them)')
      const selector = stringValue(context, 'selector')
      if (selector !== undefined) body.selector = selector
      // An install to every cluster must be asked for, not fallen into by forgetting the option.
      if (body.selector === undefined) throw usageError('which clusters? --selector SELECTOR (e.g. region=eu), or --selector "" for every cluster')
      const values = await valuesFrom(context)
      if (values !== undefined) body.values = values
      if (flag(context, 'cluster-values')) body.cluster_values = true
      const rollout = rolloutOptions(context)
      if (Object.keys(rollout).length > 0) body.rollout = { ...(body.rollout as object | undefined), ...rollout }
      waitSettings(context)
      const answer = await (await context.api()).call<ReleaseDetail>('POST', '/api/v1/releases', { json: body })
      return finishChange(context, ref, answer, 'installing')
    },
  },
  {
    path: ['releases', 'upgrade'],
    summary: 'a new revision: chart version, values, selector or rollout settings (what is left out is kept)',
    args: '<namespace/name>',
    arity: [1, 1],
    options: {
      ...NAMESPACE_OPTION,
      chart: { type: 'string', value: 'NAME[@VERSION]', help: 'another chart or version (default: the current chart)' },
      version: { type: 'string', value: 'VERSION', help: 'another version of the current chart' },
      selector: { type: 'string', value: 'SELECTOR', help: 'a new selector' },
      'reuse-values': { type: 'boolean', help: 'merge the given values over the current ones instead of replacing them' },
      ...CHANGE_OPTIONS,
    },
    async run(context) {
      const ref = releaseRef(context, positional(context, 0))
      const body: Record<string, unknown> = {}
      const chart = stringValue(context, 'chart')
      const version = stringValue(context, 'version')
      const selector = stringValue(context, 'selector')
      if (selector !== undefined) body.selector = selector
      const values = await valuesFrom(context)
      if (values !== undefined) body.values = values
      if (flag(context, 'reuse-values')) body.reuse_values = true
      if (flag(context, 'cluster-values')) body.cluster_values = true
      const rollout = rolloutOptions(context)
      if (Object.keys(rollout).length > 0) body.rollout = rollout
      waitSettings(context)
      const api = await context.api()
      if (chart !== undefined) body.chart = chartRef(context, chart)
      // A version alone is a version of the current chart, whose name the API wants with it.
      else if (version !== undefined) body.chart = { name: (await api.call<ReleaseView>('GET', releasePath(ref))).data.chart.name, version }
      const answer = await api.call<ReleaseDetail>('PUT', releasePath(ref), { json: body })
      return finishChange(context, ref, answer, 'upgrading to')
    },
  },
  {
    path: ['releases', 'delete'],
    summary: 'uninstall from every cluster, or with --labels from the clusters that match',
    args: '<namespace/name>',
    arity: [1, 1],
    options: {
      ...NAMESPACE_OPTION,
      labels: { type: 'string', value: 'SELECTOR', help: 'only from the clusters this selector matches (the release stays elsewhere)' },
      ...YES_OPTION,
    },
    async run(context) {
      const ref = releaseRef(context, positional(context, 0))
      const labels = stringValue(context, 'labels')
      const ask = mustConfirm(context, `deleting release ${ref.namespace}/${ref.name}`)
      const api = await context.api()
      if (ask) {
        const release = (await api.call<ReleaseView>('GET', releasePath(ref))).data
        const scope = labels === undefined ? `all ${release.summary.clusters} cluster(s)` : `the clusters matching "${labels}"`
        await confirmByName(context, `This uninstalls ${ref.namespace}/${ref.name} from ${scope}`, `${ref.namespace}/${ref.name}`)
      }
      const answer = await api.call<{ clusters: string[]; whole: boolean }>('DELETE', releasePath(ref), { query: { labels } })
      if (context.out.json) context.out.printJson(answer.raw)
      else {
        const from = answer.data.clusters.length ? `from ${answer.data.clusters.join(', ')}` : 'from no cluster (none matched)'
        context.out.print(`${ref.namespace}/${ref.name}: uninstalling ${from}${answer.data.whole ? '; the release is deleted once every cluster is clean' : ''}`)
      }
      return EXIT.ok
    },
  },
  {
    path: ['releases', 'status'],
    summary: "a release's per-cluster status; --watch follows the fan-out to its end",
    args: '<namespace/name>',
    arity: [1, 1],
    options: { ...NAMESPACE_OPTION, watch: { type: 'boolean', short: 'w', help: 'follow until every cluster has the revision (exit 1 if one failed)' }, ...WAIT_OPTIONS },
    async run(context) {
      const ref = releaseRef(context, positional(context, 0))
      waitSettings(context)
      if (flag(context, 'watch')) return watchRelease(context, ref)
      const answer = await (await context.api()).call<ReleaseDetail>('GET', releasePath(ref))
      if (context.out.json) context.out.printJson(answer.raw)
      else printClusterStatuses(context.out, answer.data)
      return EXIT.ok
    },
  },
]
