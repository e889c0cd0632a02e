/**
 * Where machines fetch the OS images and system extensions they install, as templates see them
 * (`{{images.*}}`). By default the engine's own `/assets`, so that installs need no internet: an
 * operator mirrors a Flatcar release and the Kubernetes sysext there once (`slipway assets mirror`).
 * The layout is Flatcar's release server's, so an upstream URL works the same way.
 */
export interface ImageSources {
  flatcarChannel: string
  /** A release (`4152.2.3`) or `current`. */
  flatcarVersion: string
  /** Where `<version>/flatcar_production_*` are; empty: `<engine>/assets/flatcar/<channel>`. */
  flatcarBaseUrl: string
  /** Where `kubernetes-<version>-x86-64.raw` is; empty: `<engine>/assets/extensions`. */
  sysextBaseUrl: string
  /** The registry kubeadm pulls the control plane's images from. */
  kubernetesImageRepository: string
  /** kube-vip's image, for flavors with a control-plane VIP. */
  kubeVipImage: string
  /** Where `<version>/bin/linux/amd64/{kubeadm,kubelet,kubectl}` are (Fedora CoreOS members); empty: `<engine>/assets/kubernetes`. */
  kubernetesBinariesBaseUrl: string
}

export const DEFAULT_IMAGE_SOURCES: ImageSources = {
  flatcarChannel: 'stable',
  flatcarVersion: 'current',
  flatcarBaseUrl: '',
  sysextBaseUrl: '',
  kubernetesImageRepository: 'registry.k8s.io',
  kubeVipImage: 'ghcr.io/kube-vip/kube-vip:v0.8.9',
  kubernetesBinariesBaseUrl: '',
}

export interface ImagesContext {
  flatcar_channel: string
  flatcar_version: string
  /** What `flatcar-install -b` takes (it appends `/<version>/flatcar_production_image.bin.bz2`). */
  flatcar_base_url: string
  /** The release's folder: the PXE kernel and initramfs. */
  flatcar_release_url: string
  sysext_base_url: string
  /** dl.k8s.io's layout: `<url>/<version>/bin/linux/amd64/kubeadm`. */
  kubernetes_binaries_url: string
}

const trimmed = (url: string) => url.replace(/\/+$/, '')

export function imagesContext(sources: ImageSources, engineUrl: string): ImagesContext {
  const flatcarBase = trimmed(sources.flatcarBaseUrl || `${engineUrl}/assets/flatcar/${sources.flatcarChannel}`)
  return {
    flatcar_channel: sources.flatcarChannel,
    flatcar_version: sources.flatcarVersion,
    flatcar_base_url: flatcarBase,
    flatcar_release_url: `${flatcarBase}/${sources.flatcarVersion}`,
    sysext_base_url: trimmed(sources.sysextBaseUrl || `${engineUrl}/assets/extensions`),
    kubernetes_binaries_url: trimmed(sources.kubernetesBinariesBaseUrl || `${engineUrl}/assets/kubernetes`),
  }
}
