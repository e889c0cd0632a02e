/**
 * The parts of the admin API's answers the CLI shows (see src/transports/http/routes/admin/).
 * The CLI is a client over HTTP and may meet an engine of another version: it reads only these
 * fields, and `--json` prints whatever the engine sent.
 */

export interface MachineSummary {
  uuid: string
  boot_mac: string
  state: string
  state_changed_at: string
  first_seen_at: string
  last_seen_at: string
  interfaces: { name: string; mac: string; ipv4: string | null; cidr: string | null; gateway: string | null; fqdn: string[]; is_boot: boolean }[]
  disks: { path: string; size_bytes: number; model: string | null; serial: string | null }[]
  labels: Record<string, string>
  /** Newer engines: the machine's place in a cluster. */
  cluster?: { name: string; role: string; hostname: string } | null
  drift?: { state: string; reason: string | null } | null
}
export interface MachineDetail extends MachineSummary {
  events: { from_state: string | null; to_state: string; reason: string; at: string }[]
}

/** GET /api/v1/machines/{uuid}/bmc and each of GET /api/v1/bmcs: a BMC and what it last said (never a password). */
export interface BmcView {
  machine_uuid: string
  protocol: string
  host: string
  port: number
  username: string
  power: string
  power_checked_at: string | null
  last_error: { code: string; message: string; at: string } | null
  ipmi: { cipher_suite: number; privilege: string } | null
  redfish: { system_path: string | null; verify_tls: boolean; ca_bundle: string | null } | null
}

/** GET /api/v1/clusters/{name}/bootstrap, one member. */
export interface BootstrapView {
  uuid: string
  cluster: string
  hostname: string
  phase: 'waiting_for_endpoint' | 'running' | 'done' | 'failed'
  command: 'init' | 'join' | 'unknown'
  message: string
  log: string | null
  attempts: number
  updated_at: string
}

/** GET /api/v1/clusters/{name}/etcd. */
export interface EtcdView {
  cluster: string
  asked_at: string
  leader: string | null
  voting_members: number
  healthy_members: number
  quorum: number
  members: {
    id: string
    id_hex: string
    name: string
    peer_urls: string[]
    client_urls: string[]
    learner: boolean
    leader: boolean
    reachable: boolean
    healthy: boolean
    raft_index: number | null
    raft_applied_index: number | null
    raft_term: number | null
    leader_id: string | null
    version: string | null
    errors: string[]
  }[]
}

/** POST /api/v1/clusters/{name}/etcd/client-certificate. */
export interface EtcdClientCertificateView {
  common_name: string
  ca_certificate: string
  certificate: string
  private_key: string
  not_after: string
}

export interface HealthView {
  status: string
  reason: string
  message: string
  nodes_ready: number | null
  nodes_total: number | null
  pods_running: number | null
  pods_total: number | null
  checked_at: string
  since: string
}
export interface HealthTransitionView {
  at: string
  from: string | null
  to: string
  reason: string
  message: string
}
export interface ClusterView {
  name: string
  display_name: string
  labels: Record<string, string>
  location: { latitude: number | null; longitude: number | null; region: string | null; site: string | null }
  source: string
  server: string | null
  credential_kind: string
  provisioning: { flavor: string; state: string } | null
  version: { kubernetes: string | null }
  ingress_addresses: string[]
  health: HealthView | null
  joined_at: string | null
  created_at: string
  /** Engines with tenants: the tenant owning the cluster, null for the fleet's. */
  tenant?: string | null
}
export interface ClusterDetail extends ClusterView {
  members: { machine_uuid: string; boot_mac: string; ip: string | null; role: string; hostname: string; machine_state: string }[]
  transitions: HealthTransitionView[]
  live?: { nodes: { name: string; ready: boolean; unschedulable: boolean; roles: string[]; kubelet_version: string | null }[]; pods_by_namespace: Record<string, { running: number; total: number }> } | null
  live_error?: { code: string; message: string }
}

export interface ChartView {
  name: string
  version: string
  app_version: string | null
  description: string | null
  digest: string
  size_bytes: number
  source: string
  created_at: string
}

export interface ReleaseClusterStatus {
  cluster: string
  revision: number
  phase: string
  error: string | null
  attempts: number
  retry_at: string | null
  updated_at: string
}
export interface ReleaseView {
  name: string
  namespace: string
  selector: string
  excluded_clusters: string[]
  revision: number
  state: string
  chart: { name: string; version: string }
  summary: { clusters: number; ready: number; applying: number; failed: number; pending: number; removing: number }
  clusters: ReleaseClusterStatus[]
  rollout: { max_parallel: number; canary_selector: string | null; max_failures: number; ready_timeout_seconds: number }
  created_at: string
  updated_at: string
  /** Engines with tenants: a tenant's release goes to that tenant's clusters only. */
  tenant?: string | null
}
export interface ReleaseDetail extends ReleaseView {
  revisions: { revision: number; chart: { name: string; version: string }; description: string; created_at: string }[]
  events: { at: string; cluster: string | null; message: string }[]
}

export interface RolloutSummary {
  id: string
  clusters: string[]
  state: string
  failures: number
  created_at: string
  updated_at: string
  finished_at: string | null
}
export interface RolloutDetail extends RolloutSummary {
  machines: { uuid: string; cluster: string; hostname: string; role: string; phase: string; error: string | null; started_at: string | null; finished_at: string | null }[]
  events: { at: string; uuid: string | null; message: string }[]
}

export interface LockGroupView {
  name: string
  slots: number
  ttl_seconds: number | null
  free: number
  holders: { id: string; acquired_at: string; expires_at: string | null }[]
}

/** GET /api/v1/machines/{uuid}/deprovision. */
export interface DeprovisionView {
  machine_uuid: string
  state: string
  requested_by: string
  requested_at: string
  wiped_at: string | null
  powered_off_at: string | null
  message: string | null
}

/** POST /api/v1/machines/{uuid}/reinstall or .../deprovision. */
export interface FlowView {
  machine_uuid: string
  state: string
  power_action: 'cycle' | 'on'
  power: string
  deprovision?: DeprovisionView
}
