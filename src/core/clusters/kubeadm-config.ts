import YAML from 'yaml'
import type { ClusterNetworking, Role } from './cluster.ts'
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT } from './schedule-plan.ts'

/**
 * The kubeadm configuration each member runs, in kubeadm's v1beta4 format
 * (kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4). The first control-plane member
 * runs `kubeadm init`; the other control-plane members `kubeadm join` with a `controlPlane` section,
 * nodes a plain `kubeadm join`. kubeadm runs in its external-CA mode: every certificate and kubeconfig
 * is already on the machine (issued by the engine, see member-certificates.ts), so kubeadm generates
 * none and no CA key is needed.
 *
 * Stacked etcd: `kubeadm init` starts a one-member etcd and each `kubeadm join --control-plane` adds
 * its member, named after the node and peering at `https://<advertiseAddress>:2380`. That is why each
 * member's node name and advertise address are exactly its entry in the initial cluster the scheduler
 * computed (`etcd_initial_cluster`): the etcd that kubeadm grows is that cluster.
 */

export const KUBEADM_API_VERSION = 'kubeadm.k8s.io/v1beta4'
export const KUBELET_API_VERSION = 'kubelet.config.k8s.io/v1beta1'
/** Flatcar's and Fedora CoreOS's containerd. */
export const CONTAINERD_SOCKET = 'unix:///run/containerd/containerd.sock'

export interface KubeadmMember {
  cluster: string
  role: Role
  hostname: string
  ip: string
  /** Whether this member creates the cluster (the first control-plane member). */
  initializes: boolean
  endpoint: { host: string; port: number }
  kubernetesVersion: string
  networking: ClusterNetworking
  /** The control plane's virtual IP held by kube-vip, or null. */
  controlPlaneVip: string | null
  /** Where kubeadm pulls the control plane's images (registry.k8s.io, or a mirror). */
  imageRepository: string
  bootstrapToken: string
  /** `sha256:<hex>` of the Kubernetes CA's public key: what `kubeadm join` pins. */
  caCertHash: string
}

export type KubeadmCommand = 'init' | 'join'

/** What a member's bootstrap reported last: the command it ran, and how far it got. */
export interface BootstrapRecord {
  command: 'init' | 'join' | 'unknown'
  phase: string
}

/**
 * Whether a member creates its cluster (`kubeadm init`). A member that has reported keeps the command
 * it ran, so that its config never changes under it. Otherwise: the control-plane member with the
 * lowest ordinal, as long as no other member has finished its bootstrap; once one has, the cluster
 * exists, and a member placed later under that ordinal (a replaced first member) joins it instead of
 * starting a second cluster beside it.
 */
export function initializesCluster(
  member: { machineUuid: string; role: Role; ordinal: number },
  members: readonly { machineUuid: string; role: Role; ordinal: number }[],
  records: ReadonlyMap<string, BootstrapRecord>,
): boolean {
  if (member.role !== 'control-plane') return false
  const own = records.get(member.machineUuid)?.command
  if (own === 'init' || own === 'join') return own === 'init'
  const first = Math.min(...members.filter((candidate) => candidate.role === 'control-plane').map((candidate) => candidate.ordinal))
  return member.ordinal === first && !members.some((other) => other.machineUuid !== member.machineUuid && records.get(other.machineUuid)?.phase === 'done')
}

/**
 * kubeadm's preflight refuses to join over files it would write itself; in external-CA mode they are
 * there on purpose (the engine wrote them): the kubelet's kubeconfig (no CSR signer runs without the
 * CA key, so the kubelet cannot bootstrap one) and the CA certificate.
 */
const PREWRITTEN_FILE_CHECKS = ['FileAvailable--etc-kubernetes-kubelet.conf', 'FileAvailable--etc-kubernetes-pki-ca.crt']
/**
 * A joining control-plane member with a VIP has kube-vip's static pod in /etc/kubernetes/manifests
 * before it joins (the VIP must move to it if it leads); `kubeadm join` checks that folder is empty.
 */
const PREWRITTEN_MANIFEST_CHECK = 'DirAvailable--etc-kubernetes-manifests'

/** The documents of a member's kubeadm configuration file, in the order kubeadm reads them. */
export function kubeadmDocuments(member: KubeadmMember): { command: KubeadmCommand; documents: Record<string, unknown>[] } {
  const endpoint = `${member.endpoint.host}:${member.endpoint.port}`
  const localAPIEndpoint = { advertiseAddress: member.ip, bindPort: member.endpoint.port }
  const nodeRegistration = (ignore: string[]) => ({
    name: member.hostname,
    criSocket: CONTAINERD_SOCKET,
    // The boot interface's address, not whatever interface the default route happens to use.
    kubeletExtraArgs: [{ name: 'node-ip', value: member.ip }],
    ...(ignore.length ? { ignorePreflightErrors: ignore } : {}),
  })
  // Uploaded by `kubeadm init` as the cluster's kubelet configuration; every joining kubelet takes it.
  const kubelet = {
    apiVersion: KUBELET_API_VERSION,
    kind: 'KubeletConfiguration',
    cgroupDriver: 'systemd',
    // No CSR signer runs in external-CA mode: the engine renews the kubelet's certificate (rolling update).
    rotateCertificates: false,
    serverTLSBootstrap: false,
  }
  if (member.initializes) {
    return {
      command: 'init',
      documents: [
        {
          apiVersion: KUBEADM_API_VERSION,
          kind: 'InitConfiguration',
          bootstrapTokens: [
            {
              token: member.bootstrapToken,
              description: `Slipway: discovery token of cluster ${member.cluster}`,
              // Nodes join whenever the scheduler places them. The token only lets a machine read the
              // signed cluster-info and file a CSR, which nothing signs in external-CA mode.
              ttl: '0s',
              usages: ['signing', 'authentication'],
              groups: ['system:bootstrappers:kubeadm:default-node-token'],
            },
          ],
          nodeRegistration: nodeRegistration([]),
          localAPIEndpoint,
        },
        {
          apiVersion: KUBEADM_API_VERSION,
          kind: 'ClusterConfiguration',
          clusterName: member.cluster,
          kubernetesVersion: member.kubernetesVersion,
          imageRepository: member.imageRepository,
          controlPlaneEndpoint: endpoint,
          certificatesDir: '/etc/kubernetes/pki',
          encryptionAlgorithm: 'ECDSA-P256',
          networking: { ...member.networking },
          etcd: { local: { dataDir: '/var/lib/etcd' } },
          apiServer: { certSANs: [member.endpoint.host, ...(member.controlPlaneVip ? [member.controlPlaneVip] : [])] },
        },
        kubelet,
      ],
    }
  }
  return {
    command: 'join',
    documents: [
      {
        apiVersion: KUBEADM_API_VERSION,
        kind: 'JoinConfiguration',
        nodeRegistration: nodeRegistration(member.role === 'control-plane' && member.controlPlaneVip ? [...PREWRITTEN_FILE_CHECKS, PREWRITTEN_MANIFEST_CHECK] : PREWRITTEN_FILE_CHECKS),
        caCertPath: '/etc/kubernetes/pki/ca.crt',
        discovery: { bootstrapToken: { token: member.bootstrapToken, apiServerEndpoint: endpoint, caCertHashes: [member.caCertHash] } },
        ...(member.role === 'control-plane' ? { controlPlane: { localAPIEndpoint } } : {}),
      },
      // No KubeletConfiguration: a joining kubelet takes the cluster's (kubeadm's kubelet-config ConfigMap, from init).
    ],
  }
}

/** The configuration file kubeadm reads (`kubeadm init|join --config`): YAML documents. */
export function kubeadmConfigFile(documents: Record<string, unknown>[]): string {
  return documents.map((document) => YAML.stringify(document)).join('---\n')
}

/**
 * The etcd member a control-plane machine is in the scheduler's initial cluster, as etcd's own
 * environment (`ETCD_*`, read by etcd 3.4+): its name, peer and client URLs on its boot address, the
 * whole initial cluster, and mutual TLS with the certificates the engine issued (etcd/server,
 * etcd/peer, both under the etcd CA). For running etcd outside kubeadm's static pod (the lab, a
 * recovery), and the record of what kubeadm's stacked etcd must equal.
 */
export function etcdMemberEnvironment(member: { cluster: string; hostname: string; ip: string; initialCluster: string; initialClusterState?: 'new' | 'existing' }, pkiDir = '/etc/kubernetes/pki'): string {
  const peer = `https://${member.ip}:${ETCD_PEER_PORT}`
  const client = `https://${member.ip}:${ETCD_CLIENT_PORT}`
  const lines: [string, string][] = [
    ['ETCD_NAME', member.hostname],
    ['ETCD_DATA_DIR', '/var/lib/etcd'],
    ['ETCD_INITIAL_CLUSTER', member.initialCluster],
    // `existing` for a member added to a running cluster (a replacement, a re-provisioned member).
    ['ETCD_INITIAL_CLUSTER_STATE', member.initialClusterState ?? 'new'],
    ['ETCD_INITIAL_CLUSTER_TOKEN', `slipway-${member.cluster}`],
    ['ETCD_INITIAL_ADVERTISE_PEER_URLS', peer],
    ['ETCD_LISTEN_PEER_URLS', peer],
    ['ETCD_LISTEN_CLIENT_URLS', client],
    ['ETCD_ADVERTISE_CLIENT_URLS', client],
    ['ETCD_CERT_FILE', `${pkiDir}/etcd/server.crt`],
    ['ETCD_KEY_FILE', `${pkiDir}/etcd/server.key`],
    ['ETCD_TRUSTED_CA_FILE', `${pkiDir}/etcd/ca.crt`],
    ['ETCD_CLIENT_CERT_AUTH', 'true'],
    ['ETCD_PEER_CERT_FILE', `${pkiDir}/etcd/peer.crt`],
    ['ETCD_PEER_KEY_FILE', `${pkiDir}/etcd/peer.key`],
    ['ETCD_PEER_TRUSTED_CA_FILE', `${pkiDir}/etcd/ca.crt`],
    ['ETCD_PEER_CLIENT_CERT_AUTH', 'true'],
  ]
  return lines.map(([key, value]) => `${key}=${value}\n`).join('')
}
