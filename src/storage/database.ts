import type { Generated, Kysely, Selectable } from 'kysely'

/** The single source of the store's row types. JSON columns hold text; repositories parse them. */
export interface Database {
  profiles: ProfilesTable
  groups: GroupsTable
  templates: TemplatesTable
  api_tokens: ApiTokensTable
  dhcp_leases: DhcpLeasesTable
  dhcp_reservations: DhcpReservationsTable
  machines: MachinesTable
  machine_conflicts: MachineConflictsTable
  machine_interfaces: MachineInterfacesTable
  machine_disks: MachineDisksTable
  machine_labels: MachineLabelsTable
  machine_events: MachineEventsTable
  bmcs: BmcsTable
  machine_deprovisions: MachineDeprovisionsTable
  machine_rolling_refusals: MachineRollingRefusalsTable
  flavors: FlavorsTable
  clusters: ClustersTable
  cluster_members: ClusterMembersTable
  cluster_pki: ClusterPkiTable
  member_certificates: MemberCertificatesTable
  member_bootstrap: MemberBootstrapTable
  lock_groups: LockGroupsTable
  lock_holders: LockHoldersTable
  machine_drift: MachineDriftTable
  cluster_registry: ClusterRegistryTable
  cluster_health: ClusterHealthTable
  cluster_health_events: ClusterHealthEventsTable
  dns_locations: DnsLocationsTable
  charts: ChartsTable
  releases: ReleasesTable
  release_revisions: ReleaseRevisionsTable
  cluster_releases: ClusterReleasesTable
  release_events: ReleaseEventsTable
  rollout_runs: RolloutRunsTable
  rollout_machines: RolloutMachinesTable
  rollout_events: RolloutEventsTable
  machine_host_keys: MachineHostKeysTable
  engine_secrets: EngineSecretsTable
  proxy_routes: ProxyRoutesTable
  audit_log: AuditLogTable
  job_leases: JobLeasesTable
}

/** The database handle every repository takes: the whole store, or a transaction of it. */
export type Db = Kysely<Database>

/** Whether a row came from a content folder at start-up or was written through the API. */
export type ContentSource = 'file' | 'api'

export interface ProfilesTable {
  id: string
  name: string
  ignition_id: string | null
  generic_id: string | null
  boot: string | null
  source: ContentSource
  created_at: string
  updated_at: string
}

export interface GroupsTable {
  id: string
  name: string
  profile: string
  selector: string
  metadata: string
  source: ContentSource
  created_at: string
  updated_at: string
}

export interface TemplatesTable {
  kind: 'ignition' | 'generic' | 'ipxe'
  id: string
  body: string
  source: ContentSource
  created_at: string
  updated_at: string
}

export interface ApiTokensTable {
  id: Generated<number>
  name: string
  token_sha256: string
  role: 'admin' | 'operator' | 'viewer'
  created_at: string
  /** The tenant the token acts for; null: the whole fleet. */
  tenant: string | null
  last_used_at: string | null
}

export type ProfileRow = Selectable<ProfilesTable>
export type GroupRow = Selectable<GroupsTable>
export type ApiTokenRow = Selectable<ApiTokensTable>

/** One row per IPv4 address ever handed out; `ip` is the key, so an address never has two holders. */
export interface DhcpLeasesTable {
  ip: string
  mac: string
  /** Option 61 as hex (binary in the protocol). */
  client_id: string | null
  hostname: string | null
  state: 'offered' | 'bound' | 'released' | 'declined'
  /** ISO 8601 UTC. */
  expires_at: string
  updated_at: string
}

export interface DhcpReservationsTable {
  mac: string
  ip: string
  hostname: string | null
  created_at: string
  updated_at: string
  /** The cluster whose scheduler made it (its member's boot address); null: an operator's. */
  cluster: string | null
}

export type DhcpLeaseRow = Selectable<DhcpLeasesTable>
export type DhcpReservationRow = Selectable<DhcpReservationsTable>

/** Machines known from discovery (Enjoliver's inventory); see src/core/machines/. */
export interface MachinesTable {
  uuid: string
  boot_mac: string
  boot_random_id: string | null
  state: 'booting' | 'discovered' | 'scheduled' | 'installing' | 'installed' | 'install_failed'
  state_changed_at: string
  /** JSON: { cpu?, memory?, firmware?, dmi?, lldp? } */
  facts: string
  first_seen_at: string
  last_seen_at: string
  created_at: string
  updated_at: string
  credential_generation: Generated<number>
  credential_previous_generation: number | null
  credential_previous_valid_until: string | null
  reprovision_until: string | null
}

/** A discovery report that claimed another machine's identity, kept for an operator. */
export interface MachineConflictsTable {
  id: Generated<number>
  kind: string
  machine_uuid: string
  claimed_uuid: string
  claimed_mac: string
  claimed_ipv4: string | null
  source_ip: string
  report: string
  reports: number
  first_seen_at: string
  last_seen_at: string
  state: string
  resolved_at: string | null
  resolved_by: string | null
}

export interface MachineInterfacesTable {
  uuid: string
  position: number
  name: string
  mac: string
  ipv4: string | null
  cidr: string | null
  gateway: string | null
  /** JSON array of names. */
  fqdn: string
  /** 0 or 1 (SQLite has no boolean). */
  is_boot: number
}

export interface MachineDisksTable {
  uuid: string
  path: string
  size_bytes: number
  model: string | null
  serial: string | null
}

export interface MachineLabelsTable {
  uuid: string
  key: string
  value: string
}

export interface MachineEventsTable {
  id: Generated<number>
  uuid: string
  from_state: string | null
  to_state: string
  reason: string
  at: string
}

/** A machine's BMC (core/power/bmc.ts): the password sealed, the protocol's options as JSON. */
export interface BmcsTable {
  machine_uuid: string
  protocol: string
  host: string
  port: number
  username: string
  password_sealed: Uint8Array
  /** JSON: `{ "ipmi": {...} }` or `{ "redfish": {...} }`. */
  options: string
  power: Generated<string>
  power_checked_at: string | null
  last_error_code: string | null
  last_error_message: string | null
  last_error_at: string | null
  updated_at: string
}

/** A machine being taken out of service (core/power/machine-flows.ts). */
export interface MachineDeprovisionsTable {
  machine_uuid: string
  /** wipe_pending | wipe_failed | wiped | done */
  state: string
  requested_by: string
  requested_at: string
  wiped_at: string | null
  powered_off_at: string | null
  message: string | null
}

/** A machine's rolling agent declined to restart (core/lifecycle/rolling-refusals.ts). */
export interface MachineRollingRefusalsTable {
  machine_uuid: string
  reason: string
  message: string
  at: string
}

export type MachineRow = Selectable<MachinesTable>
export type MachineInterfaceRow = Selectable<MachineInterfacesTable>
export type MachineDiskRow = Selectable<MachineDisksTable>
export type MachineLabelRow = Selectable<MachineLabelsTable>
export type MachineEventRow = Selectable<MachineEventsTable>

/** Cluster shapes (mexosagent's flavors); see src/core/clusters/. */
export interface FlavorsTable {
  name: string
  control_plane_count: number
  nodes_min: number
  nodes_max: number
  /** JSON object of machine label -> value. */
  selector: string
  min_cpu_cores: number
  min_memory_bytes: number
  min_disk_bytes: number
  kubernetes_version: string
  created_at: string
  /** JSON object: labels every cluster of the flavor gets in the registry. */
  labels: Generated<string>
  api_server_port: Generated<number>
  service_subnet: Generated<string>
  pod_subnet: Generated<string>
  dns_domain: Generated<string>
  /** IPv4 address kube-vip holds for the control plane; null: none. */
  control_plane_vip: string | null
  /** 1/0: members keep their boot address statically; null: only in proxy DHCP mode. */
  static_network: number | null
  /** 'flatcar' | 'fedora-coreos' */
  os: Generated<string>
}

/** Provisioning only; labels and location live in the registry (cluster_registry). */
export interface ClustersTable {
  name: string
  flavor: string
  state: 'pending' | 'scheduled'
  created_at: string
}

/** machine_uuid is the key: one machine, at most one cluster. */
export interface ClusterMembersTable {
  machine_uuid: string
  cluster: string
  role: 'control-plane' | 'node'
  ordinal: number
  hostname: string
  created_at: string
  /** EtcdMembership of a control-plane member; null: `initial` (or a node). */
  etcd_membership: string | null
  /** The initial cluster an `initial` member formed etcd with; null: not recorded (or a node). */
  etcd_initial_cluster: string | null
}

/** Public certificates in clear; the whole PKI (keys, bootstrap token) sealed by storage/secret-box.ts. */
export interface ClusterPkiTable {
  cluster: string
  /** JSON ClusterCertificates. */
  certificates: string
  sealed: Uint8Array
  created_at: string
}

/** A member's issued leaf certificates: public parts in clear, the set with its keys sealed. */
export interface MemberCertificatesTable {
  machine_uuid: string
  cluster: string
  /** JSON: name, file, kind, certificatePem and notAfter of each. */
  certificates: string
  sealed: Uint8Array
  issued_at: string
  /** The earliest expiry of the set. */
  not_after: string
}

/** A member's kubeadm bootstrap, as it last reported. */
export interface MemberBootstrapTable {
  machine_uuid: string
  phase: 'waiting_for_endpoint' | 'running' | 'done' | 'failed'
  command: 'init' | 'join' | 'unknown'
  message: string
  log: string | null
  attempts: number
  updated_at: string
}

export interface LockGroupsTable {
  name: string
  slots: number
  ttl_seconds: number | null
  updated_at: string
}

export interface LockHoldersTable {
  lock_group: string
  holder: string
  acquired_at: string
  expires_at: string | null
}

export interface MachineDriftTable {
  uuid: string
  state: 'up_to_date' | 'outdated' | 'unknown'
  reported_sha256: string
  expected_sha256: string | null
  reason: string | null
  engine_url: string
  reported_at: string
  state_changed_at: string
  checked_at: string
}

export interface RolloutRunsTable {
  id: string
  /** JSON string[]: the clusters of the run's machines. */
  clusters: string
  /** JSON RolloutSpec. */
  spec: string
  state: 'running' | 'paused' | 'completed' | 'failed' | 'cancelled'
  failures: number
  created_at: string
  updated_at: string
  finished_at: string | null
}

export interface RolloutMachinesTable {
  run_id: string
  uuid: string
  cluster: string
  role: string
  hostname: string
  phase: string
  error: string | null
  restart_issued_at: string | null
  power_cycled_at: string | null
  started_at: string | null
  finished_at: string | null
  phase_changed_at: string
}

export interface RolloutEventsTable {
  id: Generated<number>
  run_id: string
  uuid: string | null
  at: string
  message: string
}

export interface MachineHostKeysTable {
  uuid: string
  host_key: string
  pinned_at: string
}

export interface EngineSecretsTable {
  name: string
  public_part: string | null
  sealed: Uint8Array
  created_at: string
}

export interface ClusterRegistryTable {
  name: string
  display_name: Generated<string>
  /** JSON object. */
  labels: Generated<string>
  latitude: number | null
  longitude: number | null
  region: string | null
  site: string | null
  source: 'manual' | 'provisioned'
  server: string | null
  ca_bundle: string | null
  credential_kind: 'cluster_pki' | 'token' | 'client_certificate' | 'kubeconfig'
  /** Sealed JSON Credential; null for cluster_pki. */
  credential_sealed: Uint8Array | null
  /** JSON object name -> value. */
  properties: Generated<string>
  joined_at: string | null
  join_message: string | null
  created_at: string
  updated_at: string
  /** JSON string[]: where the cluster's ingress answers (what DNS hands out). */
  ingress_addresses: Generated<string>
  /** The tenant that owns the cluster; null: the fleet's. */
  tenant: string | null
}

export interface ClusterHealthTable {
  cluster: string
  status: 'Healthy' | 'Degraded' | 'Unreachable'
  reason: string
  message: string
  api_ready: number
  nodes_ready: number | null
  nodes_total: number | null
  pods_running: number | null
  pods_total: number | null
  kubernetes_version: string | null
  checked_at: string
  duration_ms: number
  status_since: string
}

export interface ClusterHealthEventsTable {
  id: Generated<number>
  cluster: string
  at: string
  from_status: string | null
  to_status: string
  reason: string
  message: string
}

export interface ChartsTable {
  name: string
  version: string
  app_version: string | null
  description: string | null
  api_version: string
  digest: string
  size_bytes: number
  archive: Uint8Array
  source: 'upload' | 'repository'
  source_url: string | null
  created_at: string
}

export interface ReleasesTable {
  namespace: string
  name: string
  selector: string
  /** JSON string[]. */
  excluded_clusters: Generated<string>
  revision: number
  state: 'active' | 'paused' | 'halted' | 'deleting'
  /** JSON RolloutSettings. */
  rollout: string
  created_at: string
  updated_at: string
  /** JSON ReleaseDns. */
  dns: Generated<string>
  /** The tenant that owns the release (it fans out to that tenant's clusters only); null: the fleet's. */
  tenant: string | null
}

export interface DnsLocationsTable {
  subnet: string
  site: string
  latitude: number
  longitude: number
}

export interface ReleaseRevisionsTable {
  namespace: string
  name: string
  revision: number
  chart_name: string
  chart_version: string
  /** JSON object. */
  values: string
  cluster_values: number
  description: string
  created_at: string
}

export interface ClusterReleasesTable {
  namespace: string
  name: string
  cluster: string
  revision: number
  phase: 'pending' | 'applying' | 'ready' | 'failed' | 'removing'
  error: string | null
  attempts: Generated<number>
  retry_at: string | null
  /** JSON ObjectRef[]. */
  objects: Generated<string>
  updated_at: string
  ready_at: string | null
}

export interface ReleaseEventsTable {
  id: Generated<number>
  namespace: string
  name: string
  cluster: string | null
  at: string
  message: string
}

export type FlavorRow = Selectable<FlavorsTable>
export type ClusterRow = Selectable<ClustersTable>
export type ClusterMemberRow = Selectable<ClusterMembersTable>

export interface ProxyRoutesTable {
  id: string
  kind: 'path' | 'host'
  /** '' for path routes. */
  host: string
  path_prefix: string
  origin: string
  strip_prefix: number
  preserve_host: number
  tls_verify: number
  health_check_path: string | null
  created_at: string
  updated_at: string
}

/** One mutating call on the admin surface (src/transports/http/audit.ts); never a request body. */
export interface AuditLogTable {
  id: Generated<number>
  at: string
  principal: string | null
  role: string | null
  tenant: string | null
  source_ip: string
  method: string
  /** The route pattern (/api/v1/clusters/:name), never the raw URL. */
  route: string
  /** The object acted on, from the route's parameters (e.g. shop/web). */
  target: string | null
  summary: string
  status: number
  error_code: string | null
  request_id: string
}

/** Which engine replica runs a singleton job; times are epoch ms of the database's clock. */
export interface JobLeasesTable {
  name: string
  holder: string
  acquired_at: number
  renewed_at: number
  expires_at: number
  requested_at: number | null
}
