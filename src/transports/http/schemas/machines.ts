import Type from 'typebox'
import { CONFLICT_KINDS, CONFLICT_STATES, type MachineConflict } from '../../../core/machines/machine-identity.ts'
import { LABEL_KEY_PATTERN, type Machine } from '../../../core/machines/machine-service.ts'
import { MACHINE_STATES, type MachineEvent } from '../../../core/machines/machine-state.ts'
import { DRIFT_STATES, type DriftRecord } from '../../../core/lifecycle/drift.ts'
import { PLAIN_TEXT_PATTERN } from '../../../core/selection/documents.ts'
import { Nullable } from '../../../lib/nullable.ts'

const State = Type.Enum([...MACHINE_STATES])

const InterfaceResponse = Type.Object({
  name: Type.String(),
  mac: Type.String(),
  ipv4: Nullable(Type.String()),
  cidr: Nullable(Type.String()),
  gateway: Nullable(Type.String()),
  fqdn: Type.Array(Type.String()),
  is_boot: Type.Boolean(),
})
const DiskResponse = Type.Object({ path: Type.String(), size_bytes: Type.Integer(), model: Nullable(Type.String()), serial: Nullable(Type.String()) })
export const EventResponse = Type.Object({ from_state: Nullable(State), to_state: State, reason: Type.String(), at: Type.String() })
export const MachineSummary = Type.Object({
  uuid: Type.String(),
  boot_mac: Type.String(),
  boot_random_id: Nullable(Type.String()),
  state: State,
  state_changed_at: Type.String(),
  facts: Type.Record(Type.String(), Type.Unknown()),
  first_seen_at: Type.String(),
  last_seen_at: Type.String(),
  interfaces: Type.Array(InterfaceResponse),
  disks: Type.Array(DiskResponse),
  labels: Type.Record(Type.String(), Type.String()),
  cluster: Nullable(Type.Object({ name: Type.String(), role: Type.String(), hostname: Type.String() }, { description: 'The cluster the scheduler gave the machine a role in; null while it has none.' })),
  drift: Nullable(
    Type.Object(
      { state: Type.Enum([...DRIFT_STATES]), reason: Nullable(Type.String()), reported_at: Type.String(), checked_at: Type.String() },
      { description: 'Whether the Ignition config the installed machine last reported is what the engine serves it now; null before its first report.' },
    ),
  ),
  credential: Type.Object(
    { generation: Type.Integer(), previous_valid_until: Nullable(Type.String()) },
    { description: "The generation of the machine's credential (never the credential), and until when the previous one still counts after a rotation." },
  ),
  reprovision_until: Nullable(Type.String({ description: 'An open re-provision window: until then the machine is served its secret-bearing config without an install slot.' })),
})
export const MachineDetail = Type.Object({ ...MachineSummary.properties, events: Type.Array(EventResponse) })

/** GET /api/v1/discovery: Enjoliver's listing, in Enjoliver's shape, for its existing tooling. */
export const EnjoliverDiscovery = Type.Object({
  'boot-info': Type.Object({ uuid: Type.String(), mac: Type.String(), 'random-id': Type.String() }),
  interfaces: Type.Array(
    Type.Object({
      name: Type.String(),
      mac: Type.String(),
      ipv4: Type.String(),
      cidrv4: Type.String(),
      gateway: Type.String(),
      fqdn: Type.Array(Type.String()),
      'as-boot': Type.Boolean(),
    }),
  ),
  disks: Type.Array(Type.Object({ path: Type.String(), 'size-bytes': Type.Integer() })),
})

export const UuidParams = Type.Object({ uuid: Type.String({ minLength: 36, maxLength: 36 }) })
export const MachineListQuery = Type.Object(
  {
    state: Type.Optional(State),
    mac: Type.Optional(Type.String({ maxLength: 32 })),
    label: Type.Optional(Type.Union([Type.String({ maxLength: 512 }), Type.Array(Type.String({ maxLength: 512 }), { maxItems: 32 })], { description: 'key=value; repeat to require several.' })),
    cluster: Type.Optional(Type.String({ maxLength: 256, description: 'Only the members of this cluster.' })),
  },
  { additionalProperties: false },
)
export const Labels = Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ maxLength: 256, pattern: PLAIN_TEXT_PATTERN }), { maxProperties: 64, additionalProperties: false })
export const TransitionBody = Type.Object({ to: State, reason: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false })

/** A machine's place in a cluster, as the API shows it (the membership's PKI never leaves the engine). */
export interface Membership {
  cluster: string
  role: string
  hostname: string
}

export const toMachineSummary = (machine: Machine, member: Membership | undefined, drift: DriftRecord | undefined) => ({
  uuid: machine.uuid,
  boot_mac: machine.bootMac,
  boot_random_id: machine.bootRandomId,
  state: machine.state,
  state_changed_at: machine.stateChangedAt,
  facts: machine.facts as Record<string, unknown>,
  first_seen_at: machine.firstSeenAt,
  last_seen_at: machine.lastSeenAt,
  interfaces: machine.interfaces.map((nic) => ({ name: nic.name, mac: nic.mac, ipv4: nic.ipv4, cidr: nic.cidr, gateway: nic.gateway, fqdn: nic.fqdn, is_boot: nic.isBoot })),
  disks: machine.disks.map((disk) => ({ path: disk.path, size_bytes: disk.sizeBytes, model: disk.model, serial: disk.serial })),
  labels: machine.labels,
  cluster: member ? { name: member.cluster, role: member.role, hostname: member.hostname } : null,
  drift: drift ? { state: drift.state, reason: drift.reason, reported_at: drift.reportedAt, checked_at: drift.checkedAt } : null,
  credential: { generation: machine.credential.generation, previous_valid_until: machine.credential.previousValidUntil },
  reprovision_until: machine.reprovisionUntil,
})
export const toEventResponse = (event: MachineEvent) => ({ from_state: event.fromState, to_state: event.toState, reason: event.reason, at: event.at })

export const toEnjoliverDiscovery = (machine: Machine) => ({
  'boot-info': { uuid: machine.uuid, mac: machine.bootMac, 'random-id': machine.bootRandomId ?? '' },
  interfaces: machine.interfaces.map((nic) => ({
    name: nic.name,
    mac: nic.mac,
    ipv4: nic.ipv4 ?? '',
    cidrv4: nic.cidr ?? '',
    gateway: nic.gateway ?? '',
    fqdn: nic.fqdn,
    'as-boot': nic.isBoot,
  })),
  disks: machine.disks.map((disk) => ({ path: disk.path, 'size-bytes': disk.sizeBytes })),
})

// Machine identity: conflicts raised by discovery reports, credentials, re-provision windows.

export const ConflictResponse = Type.Object({
  id: Type.Integer(),
  kind: Type.Enum([...CONFLICT_KINDS]),
  machine_uuid: Type.String({ description: 'The known machine whose identity the report claimed.' }),
  claimed_uuid: Type.String(),
  claimed_mac: Type.String(),
  claimed_ipv4: Nullable(Type.String()),
  source_ip: Type.String({ description: 'Where the last report of this claim came from.' }),
  reports: Type.Integer({ description: 'How many reports made this claim.' }),
  first_seen_at: Type.String(),
  last_seen_at: Type.String(),
  state: Type.Enum([...CONFLICT_STATES]),
  resolved_at: Nullable(Type.String()),
  resolved_by: Nullable(Type.String()),
})
export const toConflictResponse = (conflict: MachineConflict) => ({
  id: conflict.id,
  kind: conflict.kind,
  machine_uuid: conflict.machineUuid,
  claimed_uuid: conflict.claimedUuid,
  claimed_mac: conflict.claimedMac,
  claimed_ipv4: conflict.claimedIpv4,
  source_ip: conflict.sourceIp,
  reports: conflict.reports,
  first_seen_at: conflict.firstSeenAt,
  last_seen_at: conflict.lastSeenAt,
  state: conflict.state,
  resolved_at: conflict.resolvedAt,
  resolved_by: conflict.resolvedBy,
})
export const ConflictListQuery = Type.Object({ state: Type.Optional(Type.Enum([...CONFLICT_STATES])) }, { additionalProperties: false })
// Path parameters are text (types are never coerced): a decimal id, read as a number by the handler.
export const ConflictParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,9}$' }) })

export const CredentialResponse = Type.Object({
  uuid: Type.String(),
  generation: Type.Integer(),
  previous_valid_until: Nullable(Type.String({ description: 'Until when the previous credential still counts; null: it no longer does.' })),
})
export const toCredentialResponse = (machine: Pick<Machine, 'uuid' | 'credential'>) => ({
  uuid: machine.uuid,
  generation: machine.credential.generation,
  previous_valid_until: machine.credential.previousValidUntil,
})
export const RotateBody = Type.Union([Type.Object({ grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 31_536_000 })) }, { additionalProperties: false }), Type.Null()])

export const WindowResponse = Type.Object({ uuid: Type.String(), reprovision_until: Nullable(Type.String()) })
export const toWindowResponse = (machine: Pick<Machine, 'uuid' | 'reprovisionUntil'>) => ({ uuid: machine.uuid, reprovision_until: machine.reprovisionUntil })
export const WindowBody = Type.Union([Type.Object({ window_seconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 604_800 })) }, { additionalProperties: false }), Type.Null()])

// What a machine is served, as the admin boot view shows it.

const Rendered = Type.Object({
  url: Type.String({ description: 'The request the machine makes (its iPXE chain asks with its uuid and boot MAC).' }),
  content_type: Type.String(),
  body: Type.Union([Type.String(), Type.Null()], { description: 'What the machine is served, secrets replaced by REDACTED-... markers (URL-safe, so data: URLs stay valid); null when it gets an error.' }),
  error: Type.Union([Type.Object({ status: Type.Integer(), code: Type.String(), message: Type.String() }), Type.Null()], { description: 'The error the machine gets instead (e.g. 503 AWAITING_SCHEDULE).' }),
})
export const BootResponse = Type.Object({
  ipxe: Rendered,
  ignition: Rendered,
  redacted: Type.Array(Type.String(), { description: 'Where secrets were replaced (JSON paths into the Ignition config, or "ipxe").' }),
})

/** What POST /discovery answers an agent: nothing beyond the machine's own uuid and state. */
export const DiscoveryAnswer = Type.Object({
  'new-discovery': Type.Boolean({ description: 'true the first time this machine uuid reports.' }),
  uuid: Type.String(),
  state: State,
  wipe: Type.Optional(Type.Literal(true, { description: 'Present when the machine is being deprovisioned: the agent wipes its disks and reports to POST /lifecycle/wipe/{success|fail}.' })),
})
