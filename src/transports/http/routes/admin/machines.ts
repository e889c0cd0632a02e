import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { LABEL_KEY_PATTERN, type Machine, type MachineService } from '../../../../core/machines/machine-service.ts'
import { MACHINE_STATES, type MachineEvent } from '../../../../core/machines/machine-state.ts'
import { adminErrors } from '../../schemas/common.ts'
import { tenancyOf } from '../../auth.ts'
import { SlipwayError } from '../../../../core/errors.ts'
import { DRIFT_STATES, type DriftRecord, type DriftService } from '../../../../core/lifecycle/drift.ts'
import { machineChangeOwner, machineOwner, operate, read } from '../../../../core/access/route-policy.ts'
import { PLAIN_TEXT_PATTERN } from '../../../../core/selection/documents.ts'

const State = Type.Enum([...MACHINE_STATES])
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

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
const EventResponse = Type.Object({ from_state: Nullable(State), to_state: State, reason: Type.String(), at: Type.String() })
const MachineSummary = Type.Object({
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
const MachineDetail = Type.Object({ ...MachineSummary.properties, events: Type.Array(EventResponse) })

/** GET /api/v1/discovery: Enjoliver's listing, in Enjoliver's shape, for its existing tooling. */
const EnjoliverDiscovery = Type.Object({
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

const UuidParams = Type.Object({ uuid: Type.String({ minLength: 36, maxLength: 36 }) })
const ListQuery = Type.Object(
  {
    state: Type.Optional(State),
    mac: Type.Optional(Type.String({ maxLength: 32 })),
    label: Type.Optional(Type.Union([Type.String({ maxLength: 512 }), Type.Array(Type.String({ maxLength: 512 }), { maxItems: 32 })], { description: 'key=value; repeat to require several.' })),
    cluster: Type.Optional(Type.String({ maxLength: 256, description: 'Only the members of this cluster.' })),
  },
  { additionalProperties: false },
)
const Labels = Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ maxLength: 256, pattern: PLAIN_TEXT_PATTERN }), { maxProperties: 64, additionalProperties: false })
const TransitionBody = Type.Object({ to: State, reason: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false })
const tags = ['machines']

/** A machine's place in a cluster, as the route shows it (the membership's PKI never leaves the engine). */
export type MembershipOf = (uuid: string) => { cluster: string; role: string; hostname: string } | undefined

const toSummary = (machine: Machine, membershipOf: MembershipOf, drift: DriftRecord | undefined) => ({
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
  cluster: ((member) => (member ? { name: member.cluster, role: member.role, hostname: member.hostname } : null))(membershipOf(machine.uuid)),
  drift: drift ? { state: drift.state, reason: drift.reason, reported_at: drift.reportedAt, checked_at: drift.checkedAt } : null,
  credential: { generation: machine.credential.generation, previous_valid_until: machine.credential.previousValidUntil },
  reprovision_until: machine.reprovisionUntil,
})
const toEventResponse = (event: MachineEvent) => ({ from_state: event.fromState, to_state: event.toState, reason: event.reason, at: event.at })

export const machineRoutes: FastifyPluginAsyncTypebox<{ machines: MachineService; membershipOf: MembershipOf; drift: DriftService }> = async (app, { machines, membershipOf, drift }) => {
  app.get(
    '/machines',
    { config: { access: read('tenant') }, schema: { tags, summary: 'List machines (filters combine with AND)', querystring: ListQuery, response: { 200: Type.Array(MachineSummary), ...adminErrors } } },
    async (request) => {
      const { state, mac, label, cluster } = request.query
      const labels = label === undefined ? [] : Array.isArray(label) ? label : [label]
      // A tenant sees the machines of its clusters only.
      const listed = await tenancyOf(request).machines(await machines.list({ ...(state ? { state } : {}), ...(mac !== undefined ? { mac } : {}), labels }), (machine) => machine.uuid)
      const driftOf = new Map((await drift.list()).map((record) => [record.uuid, record]))
      return listed.filter((machine) => cluster === undefined || membershipOf(machine.uuid)?.cluster === cluster).map((machine) => toSummary(machine, membershipOf, driftOf.get(machine.uuid)))
    },
  )

  app.get(
    '/machines/:uuid',
    { config: { access: read('tenant', machineOwner) }, schema: { tags, summary: 'Get a machine with its interfaces, disks, labels and state history', params: UuidParams, response: { 200: MachineDetail, ...adminErrors } } },
    async (request) => {
      const machine = await machines.get(request.params.uuid)
      const record = await drift.get(machine.uuid).catch((error: unknown) => {
        if (error instanceof SlipwayError && error.code === 'NO_IGNITION_REPORT') return undefined
        throw error
      })
      return { ...toSummary(machine, membershipOf, record), events: (await machines.events(machine.uuid)).map(toEventResponse) }
    },
  )

  app.put(
    '/machines/:uuid/labels',
    { config: { access: operate('tenant', machineChangeOwner) }, schema: { tags, summary: "Replace a machine's labels", params: UuidParams, body: Labels, response: { 200: Labels, ...adminErrors } } },
    async (request) => machines.replaceLabels(request.params.uuid, request.body),
  )

  app.post(
    '/machines/:uuid/transitions',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: {
        tags,
        summary: 'Move a machine to another state (409 INVALID_TRANSITION if the state machine forbids it)',
        params: UuidParams,
        body: TransitionBody,
        response: { 200: EventResponse, ...adminErrors },
      },
    },
    async (request) => toEventResponse((await machines.transition(request.params.uuid, request.body.to, request.body.reason)).event),
  )

  // Enjoliver answered this unauthenticated on GET /discovery. Slipway's rule is that machine-facing
  // endpoints expose only what a booting machine needs, and a full inventory (every MAC, IP and
  // disk) is not that, so the listing needs the admin token here.
  app.get(
    '/discovery',
    { config: { access: read('tenant') }, schema: { tags: ['discovery'], summary: 'Every discovered machine, in Enjoliver format', response: { 200: Type.Array(EnjoliverDiscovery), ...adminErrors } } },
    async (request) =>
      (await tenancyOf(request).machines(await machines.list(), (machine) => machine.uuid)).map((machine) => ({
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
      })),
  )
}
