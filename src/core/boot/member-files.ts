import type { MemberOs } from '../clusters/cluster.ts'
import { kubeadmConfigFile, kubeadmDocuments, type KubeadmCommand } from '../clusters/kubeadm-config.ts'
import { kubeVipManifest, staticNetworkUnit } from '../clusters/member-network.ts'
import { FCOS_CONTAINERD_CONFIG, FCOS_KUBEADM_DROP_IN, FCOS_KUBELET_UNIT, KUBERNETES_MODULES, KUBERNETES_SYSCTLS } from '../clusters/member-os.ts'
import { misconfigured } from '../errors.ts'
import type { ClusterMembership } from './boot-service.ts'
import type { ImageSources } from './image-sources.ts'

/**
 * What a cluster member's role templates see under `{{cluster.*}}` beyond its name and role: its
 * kubeadm configuration and the files its flavor's network and OS call for. BootService decides who
 * may see them (the kubeadm configuration carries the bootstrap token); these build them.
 */

/** The discovered interfaces a member's network files are built from (a known machine's view). */
export interface BootInterfaceFacts {
  interfaces?: { name?: string; mac?: string; ipv4: string | null; cidr?: string | null; gateway?: string | null; isBoot: boolean }[]
}

/** `{{cluster.kubeadm.command}}` (init or join) and `{{cluster.kubeadm.config}}`, the file `kubeadm --config` reads. */
export function kubeadmContext(membership: ClusterMembership, images: ImageSources): { command: KubeadmCommand; config: string } {
  const { command, documents } = kubeadmDocuments({
    cluster: membership.cluster,
    role: membership.role,
    hostname: membership.hostname,
    ip: membership.ip,
    initializes: membership.initializes,
    endpoint: membership.endpoint,
    kubernetesVersion: membership.kubernetesVersion,
    networking: membership.networking,
    controlPlaneVip: membership.controlPlaneVip,
    imageRepository: images.kubernetesImageRepository,
    bootstrapToken: membership.pki.bootstrapToken,
    caCertHash: membership.pki.kubernetesCaCertHash,
  })
  return { command, config: kubeadmConfigFile(documents) }
}

/**
 * `{{cluster.kube_vip_manifest}}` (control-plane members of a flavor with a VIP) and
 * `{{cluster.network_unit}}` (members that keep their boot address without DHCP), built from the
 * machine's discovered boot interface. A member whose boot interface lacks what the file needs is a
 * configuration error, not a machine left without a network.
 */
export function memberNetworkFiles(membership: ClusterMembership, view: BootInterfaceFacts, images: ImageSources): { kube_vip_manifest?: string; network_unit?: string } {
  if (!membership.controlPlaneVip && !membership.staticNetwork) return {}
  const boot = view.interfaces?.find((candidate) => candidate.isBoot)
  const missing = (what: string) =>
    misconfigured('BOOT_INTERFACE_UNKNOWN', `${membership.hostname} (cluster ${membership.cluster}): its discovery report gave no ${what} for the boot interface, which its network configuration needs; rediscover it`, {
      hostname: membership.hostname,
    })
  const files: { kube_vip_manifest?: string; network_unit?: string } = {}
  if (membership.controlPlaneVip && membership.role === 'control-plane') {
    if (!boot?.name) throw missing('name')
    files.kube_vip_manifest = kubeVipManifest({
      vip: membership.controlPlaneVip,
      interfaceName: boot.name,
      apiServerPort: membership.endpoint.port,
      image: images.kubeVipImage,
      initializes: membership.initializes,
    })
  }
  if (membership.staticNetwork) {
    if (!boot?.mac) throw missing('MAC address')
    if (!boot.cidr) throw missing('address prefix (cidrv4)')
    // The scheduled address, with the prefix the machine was discovered on.
    const address = `${membership.ip}/${boot.cidr.split('/')[1]}`
    files.network_unit = staticNetworkUnit({ mac: boot.mac, address, gateway: boot.gateway ?? null, ...membership.staticNetwork })
  }
  return files
}

/**
 * `{{cluster.os}}` and, for Fedora CoreOS (`{{#if cluster.fedora_coreos}}`), what its Kubernetes
 * packages would have installed: the kubelet unit, kubeadm's drop-in, containerd's configuration and
 * the kernel settings (see member-os.ts).
 */
export function memberOsFiles(os: MemberOs): Record<string, unknown> {
  const common = { os }
  if (os !== 'fedora-coreos') return common
  return { ...common, fedora_coreos: true, kubelet_unit: FCOS_KUBELET_UNIT, kubeadm_drop_in: FCOS_KUBEADM_DROP_IN, containerd_config: FCOS_CONTAINERD_CONFIG, kernel_modules: KUBERNETES_MODULES, sysctls: KUBERNETES_SYSCTLS }
}
