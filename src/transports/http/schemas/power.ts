import Type from 'typebox'
import { BMC_PROTOCOLS, BOOT_DEVICES, IPMI_PRIVILEGES, POWER_ACTIONS, POWER_STATES, type BmcInput, type BmcView } from '../../../core/power/bmc.ts'
import { MAX_BRING_UP_MACHINES, type BringUp } from '../../../core/power/bring-up.ts'
import { DEPROVISION_STATES, type Deprovision, type FlowResult, type MemberRemoval } from '../../../core/power/machine-flows.ts'
import type { PowerResult } from '../../../core/power/power-service.ts'
import { Nullable } from '../../../lib/nullable.ts'
import { ErrorResponse } from './common.ts'

const IpmiOptions = Type.Object(
  {
    cipher_suite: Type.Optional(Type.Integer({ description: 'RMCP+ cipher suite, 3 to 17 (default 3; 17 where the BMC has HMAC-SHA256).' })),
    privilege: Type.Optional(Type.Enum([...IPMI_PRIVILEGES], { description: 'IPMI privilege level asked for (default ADMINISTRATOR).' })),
  },
  { additionalProperties: false },
)
const RedfishOptions = Type.Object(
  {
    system_path: Type.Optional(Nullable(Type.String({ maxLength: 512, description: '/redfish/v1/Systems/<id>; null or absent: the only member of /redfish/v1/Systems.' }))),
    verify_tls: Type.Optional(Type.Boolean({ description: "Verify the BMC's certificate (default true)." })),
    ca_bundle: Type.Optional(Nullable(Type.String({ maxLength: 65_536, description: "PEM certificates the BMC's certificate chains to." }))),
  },
  { additionalProperties: false },
)

export const BmcBody = Type.Object(
  {
    protocol: Type.Enum([...BMC_PROTOCOLS]),
    host: Type.Optional(
      Type.String({
        maxLength: 253,
        description: "The BMC's address or DNS name, without scheme or port. Left out: the address the machine's discovery agent read from its BMC (400 BMC_HOST_NOT_DISCOVERED when it reported none).",
      }),
    ),
    port: Type.Optional(Type.Integer({ description: 'Default 623 (IPMI) or 443 (Redfish).' })),
    username: Type.String({ maxLength: 256 }),
    password: Type.Optional(Type.String({ maxLength: 256, description: 'Sealed at rest and never returned; may be left out to keep the stored one.' })),
    ipmi: Type.Optional(Nullable(IpmiOptions)),
    redfish: Type.Optional(Nullable(RedfishOptions)),
  },
  { additionalProperties: false },
)
type BmcBodyType = Type.Static<typeof BmcBody>

const PowerStateSchema = (description: string) => Type.Enum([...POWER_STATES], { description })

export const BmcResponse = Type.Object({
  machine_uuid: Type.String(),
  protocol: Type.Enum([...BMC_PROTOCOLS]),
  host: Type.String(),
  port: Type.Integer(),
  username: Type.String(),
  password_set: Type.Literal(true, { description: 'A password is stored (sealed); it is never returned.' }),
  ipmi: Nullable(Type.Object({ cipher_suite: Type.Integer(), privilege: Type.String() })),
  redfish: Nullable(Type.Object({ system_path: Nullable(Type.String()), verify_tls: Type.Boolean(), ca_bundle: Nullable(Type.String()) })),
  power: PowerStateSchema('What the BMC last said (unknown until asked).'),
  power_checked_at: Nullable(Type.String()),
  last_error: Nullable(Type.Object({ code: Type.String(), message: Type.String(), at: Type.String() })),
  updated_at: Type.String(),
})

export const PowerActionBody = Type.Object(
  { action: Type.Enum([...POWER_ACTIONS], { description: 'soft-off asks the OS to shut down; off cuts power; cycle is off then on; reset is a warm reset.' }) },
  { additionalProperties: false },
)
export const BootDeviceBody = Type.Object(
  {
    device: Type.Enum([...BOOT_DEVICES]),
    persistent: Type.Optional(Type.Boolean({ description: 'Every boot until changed (default false: the next boot only).' })),
  },
  { additionalProperties: false },
)
export const PowerResponse = Type.Object({
  power: PowerStateSchema('The state read back after the operation.'),
  attempts: Type.Integer(),
  ms: Type.Integer(),
})

/** A BMC's failure: 502 (it refused or could not be reached) or 504 (it did not answer in time), with the code. */
export const bmcErrors = { 502: ErrorResponse, 504: ErrorResponse }

export function toBmcInput(body: BmcBodyType): BmcInput {
  return {
    protocol: body.protocol,
    host: body.host,
    port: body.port,
    username: body.username,
    password: body.password,
    ipmi: body.ipmi ? { cipherSuite: body.ipmi.cipher_suite, privilege: body.ipmi.privilege } : body.ipmi,
    redfish: body.redfish ? { systemPath: body.redfish.system_path, verifyTls: body.redfish.verify_tls, caBundle: body.redfish.ca_bundle } : body.redfish,
  }
}

export const toBmcResponse = (view: BmcView) => ({
  machine_uuid: view.machineUuid,
  protocol: view.protocol,
  host: view.host,
  port: view.port,
  username: view.username,
  password_set: true as const,
  ipmi: view.ipmi ? { cipher_suite: view.ipmi.cipherSuite, privilege: view.ipmi.privilege } : null,
  redfish: view.redfish ? { system_path: view.redfish.systemPath, verify_tls: view.redfish.verifyTls, ca_bundle: view.redfish.caBundle } : null,
  power: view.power,
  power_checked_at: view.powerCheckedAt,
  last_error: view.lastError,
  updated_at: view.updatedAt,
})

export const toPowerResponse = (result: PowerResult) => ({ power: result.power, attempts: result.attempts, ms: result.ms })

export const PowerRecordResponse = Type.Object({
  power: PowerStateSchema('What the BMC last said (unknown until asked).'),
  checked_at: Nullable(Type.String({ description: 'When it was read (the poll, or the last call).' })),
  last_error: Nullable(Type.Object({ code: Type.String(), message: Type.String(), at: Type.String() }, { description: 'Set while the last call failed: the state is then older.' })),
})
export const toPowerRecordResponse = (view: BmcView) => ({ power: view.power, checked_at: view.powerCheckedAt, last_error: view.lastError })

export const BringUpBody = Type.Object(
  {
    machines: Type.Optional(Type.Array(Type.String({ minLength: 36, maxLength: 36 }), { minItems: 1, maxItems: MAX_BRING_UP_MACHINES, description: 'Machine UUIDs, each with a BMC.' })),
    labels: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 63 }), Type.String({ maxLength: 256 }), {
        maxProperties: 16,
        description: 'Instead of machines: every known machine carrying all these labels (each must have a BMC).',
      }),
    ),
    batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Machines powered on together (default 4).' })),
    pause_seconds: Type.Optional(Type.Number({ minimum: 0, maximum: 3600, description: 'Wait between batches (default 30).' })),
    boot_device: Type.Optional(Nullable(Type.Enum([...BOOT_DEVICES], { description: 'Next boot device set before power on (default network: into discovery); null leaves it.' }))),
  },
  { additionalProperties: false },
)
export const BringUpParams = Type.Object({ id: Type.String({ minLength: 36, maxLength: 36 }) })
export const BringUpResponse = Type.Object({
  id: Type.String(),
  requested_by: Type.String(),
  created_at: Type.String(),
  finished_at: Nullable(Type.String()),
  batch_size: Type.Integer(),
  pause_seconds: Type.Number(),
  boot_device: Nullable(Type.String()),
  state: Type.Enum(['running', 'done']),
  machines: Type.Array(
    Type.Object({
      uuid: Type.String(),
      batch: Type.Integer(),
      state: Type.Enum(['waiting', 'powering-on', 'on', 'failed']),
      error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
      powered_on_at: Nullable(Type.String()),
    }),
  ),
})

export const toBringUpResponse = (run: BringUp) => ({
  id: run.id,
  requested_by: run.requestedBy,
  created_at: run.createdAt,
  finished_at: run.finishedAt,
  batch_size: run.batchSize,
  pause_seconds: run.pauseMs / 1000,
  boot_device: run.bootDevice,
  state: run.state,
  machines: run.machines.map((machine) => ({ uuid: machine.uuid, batch: machine.batch, state: machine.state, error: machine.error, powered_on_at: machine.poweredOnAt })),
})

export const DeprovisionResponse = Type.Object({
  machine_uuid: Type.String(),
  state: Type.Enum([...DEPROVISION_STATES], { description: 'wipe_pending until its discovery agent reports; wiped, then done once the engine has powered it off.' }),
  requested_by: Type.String(),
  requested_at: Type.String(),
  wiped_at: Nullable(Type.String()),
  powered_off_at: Nullable(Type.String()),
  message: Nullable(Type.String({ description: "The agent's report, or why the power-off failed." })),
})
export const toDeprovisionResponse = (deprovision: Deprovision) => ({
  machine_uuid: deprovision.machineUuid,
  state: deprovision.state,
  requested_by: deprovision.requestedBy,
  requested_at: deprovision.requestedAt,
  wiped_at: deprovision.wipedAt,
  powered_off_at: deprovision.poweredOffAt,
  message: deprovision.message,
})

export const FlowResponse = Type.Object({
  machine_uuid: Type.String(),
  state: Type.String({ description: "The machine's state after the request (scheduled for a re-provision)." }),
  power_action: Type.Enum(['cycle', 'on'], { description: 'cycle when the machine was on, on when it was off.' }),
  power: PowerStateSchema('The state read back after the power action.'),
  deprovision: Type.Optional(DeprovisionResponse),
})
export const toFlowResponse = (result: FlowResult & { deprovision?: Deprovision }) => ({
  machine_uuid: result.machine.uuid,
  state: result.machine.state,
  power_action: result.powerAction,
  power: result.power.power,
  ...(result.deprovision ? { deprovision: toDeprovisionResponse(result.deprovision) } : {}),
})

export const MemberRemovalResponse = Type.Object({
  cluster: Type.String(),
  hostname: Type.String({ description: 'The place it left, which the scheduler fills with the next machine available.' }),
  machine: Type.Object({ uuid: Type.String(), state: Type.String({ description: 'discovered: out of any cluster, and out of the pool while it is deprovisioned.' }) }),
  etcd: Nullable(Type.Object({ removed: Type.String({ description: 'The etcd member removed (a control-plane machine).' }) })),
  deprovision: DeprovisionResponse,
})
export const toMemberRemovalResponse = (removal: MemberRemoval) => ({
  cluster: removal.cluster,
  hostname: removal.hostname,
  machine: { uuid: removal.machine.uuid, state: removal.machine.state },
  etcd: removal.etcdRemoved ? { removed: removal.etcdRemoved } : null,
  deprovision: toDeprovisionResponse(removal.deprovision),
})
