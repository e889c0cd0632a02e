/**
 * The inventory document's format, version 1 (`{ "slipway_inventory": 1, ... }`): what an export
 * writes and an import accepts, checked field by field before anything is written
 * (inventory-transfer.ts). Sealed values are base64 of the AES-256-GCM bytes exactly as stored.
 */
import Type, { type Static } from 'typebox'
import { Nullable } from '../lib/nullable.ts'
import { TENANT_PATTERN } from '../core/access/tenancy.ts'
import { MACHINE_STATES } from '../core/machines/machine-state.ts'
import { ETCD_MEMBERSHIPS } from '../core/clusters/cluster.ts'
import { DEPROVISION_STATES } from '../core/power/machine-flows.ts'
import { UUID_PATTERN } from '../core/machines/discovery-document.ts'
import { ID_PATTERN } from '../core/selection/documents.ts'
import { BMC_PROTOCOLS, IPMI_PRIVILEGES } from '../core/power/bmc.ts'

export const INVENTORY_FORMAT = 1

const Text = (maxLength: number) => Type.String({ maxLength })
const Name = Type.String({ minLength: 1, maxLength: 253 })
const Timestamp = Type.String({ minLength: 1, maxLength: 64 })
const StringMap = Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 4096 }))
/** Base64 of a sealed value exactly as stored. */
const sealedOf = (maxLength: number) => Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9+/]+={0,2}$' })
const Sealed = sealedOf(1_048_576)

const InventoryInterface = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    mac: Type.String({ minLength: 1, maxLength: 32 }),
    ipv4: Nullable(Text(15)),
    cidr: Nullable(Text(18)),
    gateway: Nullable(Text(15)),
    fqdn: Type.Array(Text(253), { maxItems: 16 }),
    is_boot: Type.Boolean(),
  },
  { additionalProperties: false },
)
const InventoryDisk = Type.Object(
  { path: Type.String({ minLength: 1, maxLength: 256 }), size_bytes: Type.Integer({ minimum: 0 }), model: Nullable(Text(256)), serial: Nullable(Text(256)) },
  { additionalProperties: false },
)
const InventoryGroup = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN }),
    name: Text(1024),
    profile: Type.String({ pattern: ID_PATTERN }),
    selector: StringMap,
    metadata: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: false },
)
const InventoryRole = Type.Object(
  {
    cluster: Name,
    role: Type.Union([Type.Literal('control-plane'), Type.Literal('node')]),
    ordinal: Type.Integer({ minimum: 1, maximum: 100_000 }),
    hostname: Type.String({ minLength: 1, maxLength: 253 }),
    created_at: Timestamp,
    /** How a control-plane member's etcd joins (EtcdMembership); null or left out (older exports): `initial`. */
    etcd_membership: Type.Optional(Nullable(Type.Enum([...ETCD_MEMBERSHIPS]))),
    /** The initial cluster an `initial` member formed etcd with; null or left out: not recorded. */
    etcd_initial_cluster: Type.Optional(Nullable(Type.String({ maxLength: 16_384 }))),
    /** The per-machine group the scheduler wrote (how the installed machine boots its role). */
    group: Nullable(InventoryGroup),
    /**
     * The certificates the engine issued the member, sealed as stored (only an engine with the same
     * secrets key opens them); optional: older exports lack them, and they are then issued anew.
     */
    certificates: Type.Optional(
      Nullable(Type.Object({ certificates: Type.Array(Type.Unknown(), { maxItems: 64 }), sealed: Sealed, issued_at: Timestamp, not_after: Timestamp }, { additionalProperties: false })),
    ),
  },
  { additionalProperties: false },
)
/** A machine being taken out of service (core/power/machine-flows.ts): the scheduler leaves it alone. */
const InventoryDeprovision = Type.Object(
  {
    state: Type.Enum([...DEPROVISION_STATES]),
    requested_by: Text(256),
    requested_at: Timestamp,
    wiped_at: Nullable(Timestamp),
    powered_off_at: Nullable(Timestamp),
    message: Nullable(Text(2048)),
  },
  { additionalProperties: false },
)
const InventoryMachine = Type.Object(
  {
    uuid: Type.String({ pattern: UUID_PATTERN }),
    boot_mac: Type.String({ minLength: 1, maxLength: 32 }),
    boot_random_id: Nullable(Text(128)),
    state: Type.Enum([...MACHINE_STATES]),
    state_changed_at: Timestamp,
    facts: Type.Record(Type.String(), Type.Unknown()),
    first_seen_at: Timestamp,
    last_seen_at: Timestamp,
    interfaces: Type.Array(InventoryInterface, { maxItems: 64 }),
    disks: Type.Array(InventoryDisk, { maxItems: 128 }),
    labels: StringMap,
    role: Nullable(InventoryRole),
    /** Optional: exports made before deprovisions travelled have none (and an import then leaves the machine's alone). */
    deprovision: Type.Optional(Nullable(InventoryDeprovision)),
  },
  { additionalProperties: false },
)
const InventoryFlavor = Type.Object(
  {
    name: Name,
    control_plane_count: Type.Union([Type.Literal(1), Type.Literal(3), Type.Literal(5)]),
    nodes_min: Type.Integer({ minimum: 0 }),
    nodes_max: Type.Integer({ minimum: 0 }),
    selector: StringMap,
    min_cpu_cores: Type.Integer({ minimum: 0 }),
    min_memory_bytes: Type.Integer({ minimum: 0 }),
    min_disk_bytes: Type.Integer({ minimum: 0 }),
    kubernetes_version: Text(64),
    labels: StringMap,
    api_server_port: Type.Integer({ minimum: 1, maximum: 65535 }),
    // Optional: exports made before flavors had a network of their own carry kubeadm's defaults.
    service_subnet: Type.Optional(Text(18)),
    pod_subnet: Type.Optional(Text(18)),
    dns_domain: Type.Optional(Text(253)),
    control_plane_vip: Type.Optional(Nullable(Text(15))),
    static_network: Type.Optional(Nullable(Type.Boolean())),
    os: Type.Optional(Type.Enum(['flatcar', 'fedora-coreos'])),
    created_at: Timestamp,
  },
  { additionalProperties: false },
)
const InventoryCluster = Type.Object(
  {
    name: Name,
    display_name: Text(1024),
    labels: StringMap,
    latitude: Nullable(Type.Number({ minimum: -90, maximum: 90 })),
    longitude: Nullable(Type.Number({ minimum: -180, maximum: 180 })),
    region: Nullable(Text(256)),
    site: Nullable(Text(256)),
    source: Type.Union([Type.Literal('manual'), Type.Literal('provisioned')]),
    server: Nullable(Text(2048)),
    ca_bundle: Nullable(Text(1_048_576)),
    credential_kind: Type.Union([Type.Literal('cluster_pki'), Type.Literal('token'), Type.Literal('client_certificate'), Type.Literal('kubeconfig')]),
    credential_sealed: Nullable(Sealed),
    /** The owning tenant (null: the fleet's). Optional: documents from before tenants have none. */
    tenant: Type.Optional(Nullable(Type.String({ pattern: TENANT_PATTERN }))),
    properties: StringMap,
    ingress_addresses: Type.Array(Text(256), { maxItems: 64 }),
    joined_at: Nullable(Timestamp),
    join_message: Nullable(Text(4096)),
    created_at: Timestamp,
    updated_at: Timestamp,
    provisioning: Nullable(
      Type.Object(
        {
          flavor: Name,
          state: Type.Union([Type.Literal('pending'), Type.Literal('scheduled')]),
          created_at: Timestamp,
          pki: Nullable(Type.Object({ certificates: Type.Record(Type.String(), Type.Unknown()), sealed: Sealed, created_at: Timestamp }, { additionalProperties: false })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)
/**
 * A machine's BMC, keyed by the machine's SMBIOS UUID (a machine the engine may not have seen yet: a
 * rack is enrolled by its BMCs before its first boot). Field by field what PUT /api/v1/machines/{uuid}/bmc
 * takes, checked on import by the same rules (core/power/bmc.ts), with the password sealed as stored
 * and bound to the machine's UUID. What the exporting engine last saw of the BMC (power state, last
 * error) stays behind: another engine's old answer would pass for current until the importing engine
 * asks the BMC itself, which its power poll does.
 */
const InventoryBmc = Type.Object(
  {
    machine_uuid: Type.String({ pattern: UUID_PATTERN }),
    protocol: Type.Enum([...BMC_PROTOCOLS]),
    host: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    username: Type.String({ minLength: 1, maxLength: 256 }),
    // A password of at most 256 bytes seals to under 400 characters of base64.
    password_sealed: sealedOf(1024),
    ipmi: Nullable(Type.Object({ cipher_suite: Type.Integer(), privilege: Type.Enum([...IPMI_PRIVILEGES]) }, { additionalProperties: false })),
    redfish: Nullable(Type.Object({ system_path: Nullable(Text(512)), verify_tls: Type.Boolean(), ca_bundle: Nullable(Text(65_536)) }, { additionalProperties: false })),
    updated_at: Timestamp,
  },
  { additionalProperties: false },
)
export const InventoryDocument = Type.Object(
  {
    slipway_inventory: Type.Literal(INVENTORY_FORMAT),
    exported_at: Timestamp,
    machines: Type.Array(InventoryMachine, { maxItems: 200_000 }),
    flavors: Type.Array(InventoryFlavor, { maxItems: 10_000 }),
    clusters: Type.Array(InventoryCluster, { maxItems: 100_000 }),
    /** Optional: exports made before BMC records travelled have none (and an import then leaves the BMCs here alone). */
    bmcs: Type.Optional(Type.Array(InventoryBmc, { maxItems: 200_000 })),
  },
  { additionalProperties: false },
)
export type InventoryDocument = Static<typeof InventoryDocument>
export type InventoryMachine = Static<typeof InventoryMachine>
export type InventoryBmc = Static<typeof InventoryBmc>
