import Type, { type Static } from 'typebox'
import { Value } from 'typebox/value'
import { invalid } from '../errors.ts'
import type { Role } from '../clusters/cluster.ts'
import { unhealthyMembers, votersOf, type EtcdLook, type EtcdMemberView } from '../clusters/etcd-quorum.ts'
import { checkDocument } from '../selection/documents.ts'
import { parseLabelSelector } from '../selection/label-selector.ts'

/**
 * A rolling update: which machines, how many at once, when, how they restart and how their
 * Kubernetes node is drained. Pure planning lives here; the runner (jobs/rollout-runner.ts) does the
 * steps and persists each one before the next.
 */
export const STRATEGIES = ['kexec', 'reboot', 'poweroff'] as const
export type Strategy = (typeof STRATEGIES)[number]
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const
export type Weekday = (typeof WEEKDAYS)[number]

const Clock = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'HH:MM, 24-hour.' })

export const RolloutDocument = Type.Object(
  {
    cluster: Type.Optional(Type.String({ minLength: 1, maxLength: 63, description: 'The cluster whose outdated machines roll.' })),
    selector: Type.Optional(
      Type.String({
        maxLength: 4096,
        description:
          'Kubernetes label selector over machine labels (e.g. "rack=r12,slipway.io/role=node"); `slipway.io/cluster` and `slipway.io/role` are set from each machine\'s membership. Alone it may span several clusters; with `cluster` it narrows that cluster.',
      }),
    ),
    max_parallel: Type.Integer({ minimum: 1, maximum: 100, default: 1, description: 'Machines restarting at once (control-plane members are further limited by etcd quorum).' }),
    strategy: Type.Enum([...STRATEGIES], { default: 'reboot', description: 'How a machine restarts into its new config.' }),
    window: Type.Optional(
      Type.Object(
        {
          days: Type.Array(Type.Enum([...WEEKDAYS]), { minItems: 1, maxItems: 7, uniqueItems: true }),
          start: Clock,
          end: Clock,
          time_zone: Type.String({ minLength: 1, maxLength: 64, default: 'UTC', description: 'IANA time zone, e.g. Europe/Paris.' }),
        },
        { additionalProperties: false, description: 'New machines start only inside the window; machines already restarting finish. end < start spans midnight.' },
      ),
    ),
    drain: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Cordon and drain the node first, wait for it to be Ready again, uncordon.' }),
        timeout_seconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 600 }),
        eviction_retry_seconds: Type.Number({ minimum: 0.01, maximum: 600, default: 5 }),
        force: Type.Boolean({ default: false, description: 'Evict pods no controller would recreate.' }),
        delete_emptydir_data: Type.Boolean({ default: false }),
        grace_period_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
      },
      { additionalProperties: false, default: {} },
    ),
    etcd: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description:
            "Gate control-plane members on their cluster's etcd, asked live: one starts only while the members already unhealthy leave room in the quorum (none when etcd cannot be asked), and a restarted one counts as back only once its etcd member is healthy and caught up with the leader and every other member is healthy.",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    ready_timeout_seconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 900, description: 'How long a restarted machine has to report its new config (and its node to be Ready, and its etcd member to be back).' }),
    power_cycle_on_timeout: Type.Boolean({
      default: true,
      description: 'A machine with a BMC that is not back within ready_timeout_seconds is power-cycled once and given that long again before it counts as failed.',
    }),
    max_failures: Type.Integer({ minimum: 1, maximum: 10_000, default: 1, description: 'The run stops starting machines after this many failed.' }),
    ssh: Type.Object(
      {
        user: Type.String({ minLength: 1, maxLength: 32, default: 'core' }),
        port: Type.Integer({ minimum: 1, maximum: 65_535, default: 22 }),
      },
      { additionalProperties: false, default: {} },
    ),
    apply: Type.Object(
      {
        config_path: Type.String({ pattern: '^/[^\\0]*$', maxLength: 256, default: '/var/lib/slipway/next.ign', description: 'Where the new Ignition config is written on the machine.' }),
        command: Type.String({
          minLength: 1,
          maxLength: 256,
          default: '/opt/slipway/bin/apply-config',
          description: 'Run as `<command> <config_path> <strategy>`; the role templates install it. It must restart the machine.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    kubernetes_api_server: Type.Optional(
      Type.String({ pattern: '^https?://', maxLength: 256, description: "Reach the cluster's API server here (a load balancer) instead of its first control-plane member; only for a run of one cluster." }),
    ),
  },
  { additionalProperties: false },
)
export type RolloutSpec = Static<typeof RolloutDocument>

export function parseRolloutSpec(input: unknown): RolloutSpec {
  // Defaults fill what the caller left out (on a copy: the input is never changed).
  const withDefaults = input !== null && typeof input === 'object' && !Array.isArray(input) ? Value.Default(RolloutDocument, structuredClone(input)) : input
  const spec = checkDocument(RolloutDocument, withDefaults, 'rollout', 'INVALID_ROLLOUT')
  if (spec.cluster === undefined && spec.selector === undefined) throw invalid('INVALID_ROLLOUT', 'a rollout needs a target: "cluster", "selector" (machine labels) or both')
  if (spec.selector !== undefined) spec.selector = parseLabelSelector(spec.selector).text
  if (spec.window) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: spec.window.time_zone })
    } catch {
      throw invalid('INVALID_ROLLOUT', `window.time_zone "${spec.window.time_zone}" is not an IANA time zone (e.g. UTC, Europe/Paris)`)
    }
    if (spec.window.start === spec.window.end) throw invalid('INVALID_ROLLOUT', 'window.start and window.end are equal: the window would be empty')
  }
  return spec
}

/** Where a machine's rolling update is; every phase is persisted before its action starts. */
export const PHASES = ['waiting', 'locking', 'draining', 'applying', 'restarting', 'uncordoning', 'releasing', 'done', 'failed', 'skipped'] as const
export type Phase = (typeof PHASES)[number]
export const FINISHED: readonly Phase[] = ['done', 'failed', 'skipped']
export const isInFlight = (phase: Phase) => phase !== 'waiting' && !FINISHED.includes(phase)

export const CLUSTER_LABEL = 'slipway.io/cluster'
export const ROLE_LABEL = 'slipway.io/role'
/** A member's labels as selectors see them: its own, then its membership (which its own cannot override). */
export const memberLabels = (labels: Readonly<Record<string, string>>, cluster: string, role: Role): Record<string, string> => ({ ...labels, [CLUSTER_LABEL]: cluster, [ROLE_LABEL]: role })

export interface RolloutMachineState {
  uuid: string
  cluster: string
  role: Role
  hostname: string
  phase: Phase
}

/** Nodes before the control plane (a control plane is what keeps the cluster answering), then by hostname. */
export function rolloutOrder<M extends { role: Role; hostname: string }>(machines: readonly M[]): M[] {
  return [...machines].sort((a, b) => (a.role !== b.role ? (a.role === 'node' ? -1 : 1) : a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0))
}

/**
 * How many control-plane members may be down at once without losing etcd quorum: a majority of n
 * must stay up, so floor((n - 1) / 2): none of two (a control plane between a member's removal and its
 * replacement's), one of three or four, two of five. A single member cannot stay up while it restarts:
 * 1, the outage it always has.
 */
export const controlPlaneAllowance = (members: number) => (members <= 1 ? 1 : Math.floor((members - 1) / 2))

/**
 * How many of a cluster's control-plane members may be down at once by etcd's live health: the
 * quorum's allowance for its voting members, less those already unhealthy that `takenDown` (the run's
 * own members in flight, which `machinesToStart` counts itself) does not name. With one of three
 * members unhealthy: 0.
 */
export function liveControlPlaneAllowance(look: EtcdLook, takenDown: ReadonlySet<string>): { allowance: number; voters: number; down: EtcdMemberView[] } {
  const voters = votersOf(look.members).length
  const down = unhealthyMembers(look.members, takenDown)
  return { allowance: controlPlaneAllowance(voters) - down.length, voters, down }
}

/** Whether the run gates control-plane members on live etcd health (runs stored before the switch existed do). */
export const etcdGated = (spec: RolloutSpec) => spec.etcd?.enabled !== false

/**
 * Which waiting machines may start now: at most `max_parallel` in flight across the run; in each
 * cluster, control-plane members only once every node of that cluster is finished, and never more in
 * flight than `downAllowed(cluster)` (how many of its control-plane members may be down at once: from
 * the member count, or from etcd's live health); nothing new outside the window or once
 * `max_failures` machines failed.
 */
export function machinesToStart<M extends RolloutMachineState>(
  spec: RolloutSpec,
  machines: readonly M[],
  downAllowed: (cluster: string) => number,
  failures: number,
  now: Date,
): M[] {
  if (failures >= spec.max_failures) return []
  if (spec.window && !inWindow(spec.window, now)) return []
  const ordered = rolloutOrder(machines)
  let free = spec.max_parallel - ordered.filter((machine) => isInFlight(machine.phase)).length
  const controlPlaneFree = new Map<string, number>()
  const nodesUnfinished = new Set<string>()
  for (const machine of ordered) {
    if (!controlPlaneFree.has(machine.cluster)) controlPlaneFree.set(machine.cluster, downAllowed(machine.cluster))
    if (machine.role === 'control-plane' && isInFlight(machine.phase)) controlPlaneFree.set(machine.cluster, controlPlaneFree.get(machine.cluster)! - 1)
    if (machine.role === 'node' && !FINISHED.includes(machine.phase)) nodesUnfinished.add(machine.cluster)
  }
  const starting: M[] = []
  for (const machine of ordered) {
    if (free <= 0) break
    if (machine.phase !== 'waiting') continue
    if (machine.role === 'control-plane') {
      if (nodesUnfinished.has(machine.cluster) || controlPlaneFree.get(machine.cluster)! <= 0) continue
      controlPlaneFree.set(machine.cluster, controlPlaneFree.get(machine.cluster)! - 1)
    }
    starting.push(machine)
    free--
  }
  return starting
}

const WEEKDAY_OF: Record<string, Weekday> = { Mon: 'mon', Tue: 'tue', Wed: 'wed', Thu: 'thu', Fri: 'fri', Sat: 'sat', Sun: 'sun' }

/** Whether `now` falls in the window, read on the wall clock of its time zone. A window past midnight belongs to the day it starts. */
export function inWindow(window: NonNullable<RolloutSpec['window']>, now: Date): boolean {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: window.time_zone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(now)
  const part = (type: string) => parts.find((candidate) => candidate.type === type)?.value ?? ''
  const day = WEEKDAY_OF[part('weekday')]!
  const minute = Number(part('hour')) * 60 + Number(part('minute'))
  const [start, end] = [window.start, window.end].map((clock) => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3)))
  if (start! < end!) return window.days.includes(day) && minute >= start! && minute < end!
  // Past midnight: the evening part belongs to today, the early-morning part to yesterday's window.
  const yesterday = WEEKDAYS[(WEEKDAYS.indexOf(day) + 6) % 7]!
  return (window.days.includes(day) && minute >= start!) || (window.days.includes(yesterday) && minute < end!)
}
