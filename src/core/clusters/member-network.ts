import YAML from 'yaml'

/**
 * What a member's OS needs from the network side of its role: kube-vip's static pod where the flavor
 * gives the control plane a virtual IP, and a static systemd-networkd configuration of the boot
 * interface where addresses must not depend on a DHCP server.
 */

export interface KubeVipMember {
  /** The control plane's virtual IP (the flavor's control_plane_vip). */
  vip: string
  /** The interface kube-vip announces it on: the member's boot interface. */
  interfaceName: string
  apiServerPort: number
  image: string
  /**
   * The member that runs `kubeadm init`: its admin.conf is only a cluster admin once init has bound
   * kubeadm:cluster-admins, which needs the API server, which needs the VIP; so kube-vip there reads
   * super-admin.conf (system:masters) instead, as kube-vip documents for Kubernetes 1.29 and later.
   */
  initializes: boolean
}

/**
 * kube-vip as a static pod (`/etc/kubernetes/manifests/kube-vip.yaml`), what `kube-vip manifest pod
 * --controlplane --arp --leaderElection` writes: the members elect a leader through a Lease in
 * kube-system and the leader answers ARP for the VIP. kube-vip reaches its own member's API server
 * as `kubernetes` (a host alias to 127.0.0.1, a name the API server's certificate carries), so it
 * does not depend on the VIP it is bringing up.
 *
 * What it needs from the network: the VIP on the members' layer-2 segment (the boot network), outside
 * any DHCP pool, and a network that accepts gratuitous ARP moving an address between ports.
 */
export function kubeVipManifest(member: KubeVipMember): string {
  const env = (name: string, value: string) => ({ name, value })
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'kube-vip', namespace: 'kube-system' },
    spec: {
      containers: [
        {
          name: 'kube-vip',
          image: member.image,
          imagePullPolicy: 'IfNotPresent',
          args: ['manager'],
          env: [
            env('vip_arp', 'true'),
            env('port', String(member.apiServerPort)),
            { name: 'vip_nodename', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
            env('vip_interface', member.interfaceName),
            env('vip_cidr', '32'),
            env('cp_enable', 'true'),
            env('cp_namespace', 'kube-system'),
            env('vip_leaderelection', 'true'),
            env('vip_leasename', 'plndr-cp-lock'),
            env('vip_leaseduration', '5'),
            env('vip_renewdeadline', '3'),
            env('vip_retryperiod', '1'),
            env('address', member.vip),
          ],
          securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } },
          volumeMounts: [{ name: 'kubeconfig', mountPath: '/etc/kubernetes/admin.conf' }],
        },
      ],
      hostAliases: [{ ip: '127.0.0.1', hostnames: ['kubernetes'] }],
      hostNetwork: true,
      volumes: [{ name: 'kubeconfig', hostPath: { path: member.initializes ? '/etc/kubernetes/super-admin.conf' : '/etc/kubernetes/admin.conf', type: 'File' } }],
    },
  }
  return YAML.stringify(pod)
}

export interface StaticInterface {
  mac: string
  /** Address and prefix, `10.0.0.5/24`. */
  address: string
  gateway: string | null
  nameservers: readonly string[]
  /** Search domains (the engine's zone, where `api.<cluster>.<zone>` lives). */
  domains: readonly string[]
}

/**
 * A systemd-networkd unit (`/etc/systemd/network/00-slipway-boot.network`) that gives the boot
 * interface, matched by MAC, the address it was discovered with: named `00-` so that it is read
 * before Flatcar's catch-all `zz-default.network` (DHCP on every interface).
 */
export function staticNetworkUnit(network: StaticInterface): string {
  const lines = ['# Slipway: the boot address this machine was discovered and scheduled with, kept without DHCP.', '[Match]', `MACAddress=${network.mac}`, '', '[Network]', 'DHCP=no', `Address=${network.address}`]
  if (network.gateway) lines.push(`Gateway=${network.gateway}`)
  for (const server of network.nameservers) lines.push(`DNS=${server}`)
  if (network.domains.length) lines.push(`Domains=${network.domains.join(' ')}`)
  lines.push('', '[Link]', 'RequiredForOnline=yes')
  return `${lines.join('\n')}\n`
}
