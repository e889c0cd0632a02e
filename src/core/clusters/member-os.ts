import type { MemberOs } from './cluster.ts'

/**
 * What a member's OS lacks for kubeadm, as files its role config writes. Flatcar has it all in the
 * Kubernetes sysext (kubeadm, kubelet with kubeadm's drop-in, kubectl) and a containerd with CRI on.
 * Fedora CoreOS has containerd (with Docker's config, CRI plugin off) and CNI plugins, but no
 * Kubernetes: its role configs fetch kubeadm, kubelet and kubectl (dl.k8s.io's layout, mirrored under
 * the engine's /assets) into /usr/local/bin and write what the Kubernetes packages would have
 * installed: the kubelet unit and kubeadm's drop-in, containerd with CRI and the systemd cgroup
 * driver, and the kernel settings kubeadm's preflight checks.
 */

export const KUBERNETES_BINARIES = ['kubeadm', 'kubelet', 'kubectl'] as const
/** Where Fedora CoreOS members keep the Kubernetes binaries (/usr is read-only; /usr/local is /var/usrlocal). */
export const FCOS_BINARY_DIR = '/usr/local/bin'

/** The kubelet unit as the Kubernetes packages ship it (kubernetes/release, rpm/kubelet.service). */
export const FCOS_KUBELET_UNIT = [
  '[Unit]',
  'Description=kubelet: The Kubernetes Node Agent',
  'Documentation=https://kubernetes.io/docs/',
  'Wants=network-online.target',
  'After=network-online.target',
  '',
  '[Service]',
  `ExecStart=${FCOS_BINARY_DIR}/kubelet`,
  'Restart=always',
  'StartLimitInterval=0',
  'RestartSec=10',
  '',
  '[Install]',
  'WantedBy=multi-user.target',
  '',
].join('\n')

/** kubeadm's kubelet drop-in (10-kubeadm.conf): the flags kubeadm's files hold. */
export const FCOS_KUBEADM_DROP_IN = [
  '[Service]',
  'Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"',
  'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"',
  'EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env',
  'EnvironmentFile=-/etc/sysconfig/kubelet',
  'ExecStart=',
  `ExecStart=${FCOS_BINARY_DIR}/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS`,
  '',
].join('\n')

/**
 * containerd's configuration on Fedora CoreOS: the CRI plugin on (Docker's default config disables
 * it), runc with the systemd cgroup driver (what kubeadm's KubeletConfiguration says), and the CNI
 * plugins where Fedora installs them.
 */
export const FCOS_CONTAINERD_CONFIG = [
  'version = 2',
  '',
  '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
  '  runtime_type = "io.containerd.runc.v2"',
  '',
  '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
  '  SystemdCgroup = true',
  '',
  '[plugins."io.containerd.grpc.v1.cri".cni]',
  '  bin_dir = "/usr/libexec/cni"',
  '  conf_dir = "/etc/cni/net.d"',
  '',
].join('\n')

/** Modules and sysctls kubeadm's preflight requires (bridge-nf-call-iptables, ip_forward). */
export const KUBERNETES_MODULES = 'overlay\nbr_netfilter\n'
export const KUBERNETES_SYSCTLS = 'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n'

/**
 * How a rolling update applies a new config on the member (`/opt/slipway/bin/apply-config <file>
 * <kexec|reboot|poweroff>`, run over SSH): where each OS reads an Ignition config again and how it
 * is asked to. Flatcar: the OEM config and its first_boot flag. Fedora CoreOS: the config
 * coreos-installer put in the boot partition and its ignition.firstboot flag.
 */
export function applyConfigScript(os: MemberOs): string {
  const place =
    os === 'flatcar'
      ? ['# Flatcar reads the OEM config on a first boot: put the new config there and ask for one.', 'install -m 0600 "$config" /usr/share/oem/config.ign', 'touch /boot/flatcar/first_boot']
      : [
          '# Fedora CoreOS reads the config in its boot partition when ignition.firstboot is set: put it there and set it.',
          'mount -o remount,rw /boot',
          'install -m 0600 "$config" /boot/ignition/config.ign',
          'touch /boot/ignition.firstboot',
        ]
  return [
    '#!/bin/sh',
    "# Slipway: apply a new Ignition config and restart into it (run by the engine's rolling update over SSH).",
    '# Usage: apply-config <ignition-file> <kexec|reboot|poweroff>',
    'set -eu',
    'config="$1"',
    'strategy="${2:-reboot}"',
    ...place,
    'sync',
    'case "$strategy" in',
    '  kexec) exec systemctl kexec ;;',
    '  reboot) exec systemctl reboot ;;',
    '  poweroff) exec systemctl poweroff ;;',
    '  *) echo "unknown strategy $strategy (kexec, reboot, poweroff)" >&2; exit 2 ;;',
    'esac',
    '',
  ].join('\n')
}
