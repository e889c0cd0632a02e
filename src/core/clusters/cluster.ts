import Type, { type Static } from 'typebox'
import { invalid } from '../errors.ts'
import { parseCidr, parseIpv4, subnetContains, type Ipv4Subnet } from '../../lib/ipv4.ts'
import { LABEL_KEY_PATTERN } from '../machines/machine-service.ts'
import { checkDocument, PLAIN_TEXT_PATTERN } from '../selection/documents.ts'

/**
 * Flavors are cluster shapes, after mexosagent: how many control-plane members (each also an etcd
 * member, so an odd quorum: 1, 3 or 5), how many nodes, and which discovered machines qualify.
 */
export const CONTROL_PLANE_COUNTS = [1, 3, 5] as const
export const DEFAULT_KUBERNETES_VERSION = 'v1.31.8'
export const DEFAULT_API_SERVER_PORT = 6443
/** kubeadm's networking defaults (kubeadm.k8s.io/v1beta4 Networking); a flavor may set its own. */
export const DEFAULT_SERVICE_SUBNET = '10.96.0.0/12'
export const DEFAULT_POD_SUBNET = '10.244.0.0/16'
export const DEFAULT_DNS_DOMAIN = 'cluster.local'
/** kube-apiserver refuses a larger IPv4 service range (--service-cluster-ip-range: at most 20 host bits). */
const WIDEST_SERVICE_PREFIX = 12
export const CLUSTER_STATES = ['pending', 'scheduled'] as const
export type ClusterState = (typeof CLUSTER_STATES)[number]
/** The OS members install: Flatcar (Kubernetes from its sysext) or Fedora CoreOS (Kubernetes binaries fetched at first boot). */
export const MEMBER_OS = ['flatcar', 'fedora-coreos'] as const
export type MemberOs = (typeof MEMBER_OS)[number]
export const ROLES = ['control-plane', 'node'] as const
export type Role = (typeof ROLES)[number]

/** A DNS label: flavor and cluster names end up in hostnames (`<cluster>-node-<n>`), which must stay <= 63. */
export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$'
const Name = (maxLength: number, description: string) => Type.String({ minLength: 1, maxLength, pattern: NAME_PATTERN, description })
// additionalProperties: a key pattern alone checks only the keys that match it.
const Labels = Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ maxLength: 256, pattern: PLAIN_TEXT_PATTERN }), { maxProperties: 64, additionalProperties: false })
const Bytes = (description: string) => Type.Optional(Type.Integer({ minimum: 0, description }))

export const FlavorDocument = Type.Object(
  {
    name: Name(63, 'Flavor name (lowercase letters, digits, "-").'),
    control_plane_count: Type.Union(CONTROL_PLANE_COUNTS.map((count) => Type.Literal(count)), { description: 'Control-plane members, each also an etcd member.' }),
    nodes_min: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'Nodes below which the cluster stays pending (default 0).' })),
    nodes_max: Type.Integer({ minimum: 0, maximum: 1000, description: 'The scheduler never gives a cluster more nodes than this.' }),
    selector: Type.Optional(Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ maxLength: 256, pattern: PLAIN_TEXT_PATTERN }), { maxProperties: 64, additionalProperties: false, description: 'Machine labels a qualifying machine must all carry (default: none).' })),
    min_cpu_cores: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536 })),
    min_memory_bytes: Bytes('Reported memory.total-bytes must be at least this.'),
    min_disk_bytes: Bytes('The largest reported disk must be at least this.'),
    kubernetes_version: Type.Optional(Type.String({ pattern: '^v[0-9]+\\.[0-9]+\\.[0-9]+$', description: `Default ${DEFAULT_KUBERNETES_VERSION}.` })),
    labels: Type.Optional({ ...Labels, description: 'Labels every cluster of this flavor gets in the registry (its own labels win).' }),
    api_server_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_535, description: `Where control-plane members serve the Kubernetes API (default ${DEFAULT_API_SERVER_PORT}).` })),
    service_subnet: Type.Optional(Type.String({ maxLength: 18, description: `IPv4 CIDR of Service cluster IPs, /${WIDEST_SERVICE_PREFIX} or narrower (default ${DEFAULT_SERVICE_SUBNET}).` })),
    pod_subnet: Type.Optional(Type.String({ maxLength: 18, description: `IPv4 CIDR of pod addresses, for the CNI plugin (default ${DEFAULT_POD_SUBNET}).` })),
    dns_domain: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$', description: `The clusters' DNS domain (default ${DEFAULT_DNS_DOMAIN}).` })),
    control_plane_vip: Type.Optional(
      Type.String({
        maxLength: 15,
        description:
          'An IPv4 address that kube-vip holds on the control-plane member that leads (ARP, layer 2): the endpoint then answers it. It must be on the boot network, outside the DHCP pool and every machine address.',
      }),
    ),
    os: Type.Optional(
      Type.Enum([...MEMBER_OS], {
        description:
          "The OS members install (default flatcar). fedora-coreos needs its discovery group's installer to be coreos (coreos-installer) and Kubernetes binaries under images.kubernetesBinariesBaseUrl.",
      }),
    ),
    static_network: Type.Optional(Type.Boolean({ description: 'Write the discovered boot address into each member\'s network configuration (default: only in proxy DHCP mode, where the engine cannot reserve addresses).' })),
  },
  { additionalProperties: false },
)
export type FlavorDocument = Static<typeof FlavorDocument>

export const ClusterDocument = Type.Object(
  {
    name: Name(40, 'Cluster name; at most 40 characters so that hostnames fit in a DNS label.'),
    flavor: Name(63, 'Flavor name.'),
    labels: Type.Optional(Labels),
    latitude: Type.Optional(Type.Number({ minimum: -90, maximum: 90 })),
    longitude: Type.Optional(Type.Number({ minimum: -180, maximum: 180 })),
    region: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    site: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    display_name: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
)
export type ClusterDocument = Static<typeof ClusterDocument>

export interface Flavor {
  name: string
  controlPlaneCount: 1 | 3 | 5
  nodesMin: number
  nodesMax: number
  selector: Record<string, string>
  minCpuCores: number
  minMemoryBytes: number
  minDiskBytes: number
  kubernetesVersion: string
  labels: Record<string, string>
  apiServerPort: number
  networking: ClusterNetworking
  /** The address kube-vip holds for the control plane; null: the endpoint is the members' own addresses. */
  controlPlaneVip: string | null
  /** Static addresses in the members' network configuration; null: only in proxy DHCP mode. */
  staticNetwork: boolean | null
  os: MemberOs
}

/** kubeadm's `networking` of every cluster of a flavor. */
export interface ClusterNetworking {
  serviceSubnet: string
  podSubnet: string
  dnsDomain: string
}

/** A provisioned cluster; labels, location and display name are its registry entry's. */
export interface Cluster {
  name: string
  flavor: string
  displayName: string
  labels: Record<string, string>
  latitude: number | null
  longitude: number | null
  region: string | null
  site: string | null
  state: ClusterState
  createdAt: string
}

/** A machine's place in a cluster. */
/**
 * How a control-plane member's etcd joins the cluster's. The members placed together form it
 * (`initial`: etcd's initial-cluster-state `new`). A member placed later, to replace one that left,
 * or re-provisioned with an empty disk, joins the running cluster (`existing`) as a new member, which
 * the engine must have added first (`etcdctl member add`): `to_add` until it has, `added` after.
 */
export const ETCD_MEMBERSHIPS = ['initial', 'to_add', 'added'] as const
export type EtcdMembership = (typeof ETCD_MEMBERSHIPS)[number]

export interface ClusterMember {
  cluster: string
  machineUuid: string
  role: Role
  /** 1-based, per role: `<cluster>-cp-<ordinal>`, `<cluster>-node-<ordinal>`. */
  ordinal: number
  hostname: string
  /** Control-plane members only; absent means `initial` (members placed before it was recorded). */
  etcdMembership?: EtcdMembership
  /**
   * An `initial` member's: the initial cluster it formed etcd with, which its config keeps when other
   * members are replaced (etcd reads it only to bootstrap).
   */
  etcdInitialCluster?: string
}

export function parseFlavor(input: unknown): Flavor {
  const document = checkDocument(FlavorDocument, input, 'flavor', 'INVALID_FLAVOR')
  const nodesMin = document.nodes_min ?? 0
  if (document.nodes_max < nodesMin) {
    throw invalid('INVALID_FLAVOR', `flavor "${document.name}": nodes_max (${document.nodes_max}) is below nodes_min (${nodesMin})`)
  }
  const subnet = (field: 'service_subnet' | 'pod_subnet', fallback: string): Ipv4Subnet & { text: string } => {
    const text = document[field] ?? fallback
    const parsed = parseCidr(text)
    if (!parsed || parsed.prefixLength > 30) throw invalid('INVALID_FLAVOR', `flavor "${document.name}": ${field} "${text}" is not an IPv4 subnet in CIDR form with room for hosts, e.g. ${fallback}`)
    if (parsed.network !== parseIpv4(text.split('/')[0]!)) throw invalid('INVALID_FLAVOR', `flavor "${document.name}": ${field} "${text}" has host bits set; write its network address`)
    return { ...parsed, text }
  }
  const services = subnet('service_subnet', DEFAULT_SERVICE_SUBNET)
  const pods = subnet('pod_subnet', DEFAULT_POD_SUBNET)
  if (services.prefixLength < WIDEST_SERVICE_PREFIX) {
    throw invalid('INVALID_FLAVOR', `flavor "${document.name}": service_subnet ${services.text} is wider than the API server accepts (/${WIDEST_SERVICE_PREFIX} at most)`)
  }
  if (subnetContains(services, pods.network) || subnetContains(pods, services.network)) {
    throw invalid('INVALID_FLAVOR', `flavor "${document.name}": service_subnet ${services.text} and pod_subnet ${pods.text} overlap; Service and pod addresses must be apart`)
  }
  const vip = document.control_plane_vip ?? null
  if (vip !== null) {
    const address = parseIpv4(vip)
    if (address === undefined) throw invalid('INVALID_FLAVOR', `flavor "${document.name}": control_plane_vip "${vip}" is not an IPv4 address`)
    for (const [name, range] of [['service_subnet', services], ['pod_subnet', pods]] as const) {
      if (subnetContains(range, address)) throw invalid('INVALID_FLAVOR', `flavor "${document.name}": control_plane_vip ${vip} is inside ${name} ${range.text}; it must be on the boot network`)
    }
  }
  return {
    name: document.name,
    controlPlaneCount: document.control_plane_count,
    nodesMin,
    nodesMax: document.nodes_max,
    selector: { ...(document.selector ?? {}) },
    minCpuCores: document.min_cpu_cores ?? 0,
    minMemoryBytes: document.min_memory_bytes ?? 0,
    minDiskBytes: document.min_disk_bytes ?? 0,
    kubernetesVersion: document.kubernetes_version ?? DEFAULT_KUBERNETES_VERSION,
    labels: { ...(document.labels ?? {}) },
    apiServerPort: document.api_server_port ?? DEFAULT_API_SERVER_PORT,
    networking: { serviceSubnet: services.text, podSubnet: pods.text, dnsDomain: document.dns_domain ?? DEFAULT_DNS_DOMAIN },
    controlPlaneVip: vip,
    staticNetwork: document.static_network ?? null,
    os: document.os ?? 'flatcar',
  }
}

export function parseCluster(input: unknown, now: Date): Cluster {
  const document = checkDocument(ClusterDocument, input, 'cluster', 'INVALID_CLUSTER')
  return {
    name: document.name,
    flavor: document.flavor,
    displayName: document.display_name ?? document.name,
    labels: { ...(document.labels ?? {}) },
    latitude: document.latitude ?? null,
    longitude: document.longitude ?? null,
    region: document.region ?? null,
    site: document.site ?? null,
    state: 'pending',
    createdAt: now.toISOString(),
  }
}
