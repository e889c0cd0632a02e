import type { Role } from './cluster.ts'

/**
 * The leaf certificates and kubeconfigs each member gets, in kubeadm's layout and with kubeadm's
 * names, subjects and SANs (kubernetes.io/docs/setup/best-practices/certificates, "All certificates"
 * and "Configure certificates for user accounts"). The engine issues them as the cluster's CA, so
 * that kubeadm runs in its external-CA mode and no machine ever holds a CA private key: with every
 * file below present, `kubeadm init` and `kubeadm join --control-plane` generate nothing themselves.
 */

export const AUTHORITIES = ['kubernetes', 'etcd', 'front-proxy'] as const
export type Authority = (typeof AUTHORITIES)[number]
export type KeyUsage = 'server' | 'client'

export interface CertificateRequest {
  /** kubeadm's name for it, as `kubeadm certs check-expiration` lists it (`apiserver`, `admin.conf`). */
  name: string
  /**
   * Where kubeadm reads it: a path under /etc/kubernetes/pki without extension (`etcd/server`
   * means etcd/server.crt and etcd/server.key), or a kubeconfig under /etc/kubernetes.
   */
  file: string
  kind: 'certificate' | 'kubeconfig'
  authority: Authority
  commonName: string
  organizations: string[]
  usages: KeyUsage[]
  dnsNames: string[]
  ipAddresses: string[]
  /** For a kubeconfig: the API server it talks to. */
  server?: string
  /** How long it is valid; kubeadm's one year when left out (short-lived client certificates set it). */
  validForMs?: number
}

export interface IssuedCertificate {
  name: string
  file: string
  kind: CertificateRequest['kind']
  server?: string
  certificatePem: string
  privateKeyPem: string
  /** ISO time after which the certificate is no longer valid. */
  notAfter: string
}

/** A member's issued set, stored sealed; renewed as a whole. */
export interface MemberCertificates {
  issuedAt: string
  /** The earliest notAfter of the set: when it must have been renewed. */
  notAfter: string
  certificates: IssuedCertificate[]
}

/** What a member's certificates are issued for. */
export interface MemberIdentity {
  cluster: string
  role: Role
  /** The node name: kubeadm uses it as etcd's member name and in `system:node:<name>`. */
  hostname: string
  /** The boot address: etcd and the API server advertise it. */
  ip: string
  /** The control-plane endpoint's host name (`api.<cluster>.<zone>`). */
  endpointHost: string
  /** The API server's port, on the endpoint and on each member. */
  apiServerPort: number
  /** The first address of the service subnet: the `kubernetes` Service's cluster IP. */
  serviceIp: string
  /** The cluster's DNS domain (kubeadm's networking.dnsDomain). */
  dnsDomain: string
  /** The control plane's virtual IP (kube-vip), when the flavor has one: the endpoint's address. */
  controlPlaneVip?: string | null
}

/** The control-plane endpoint every member, kubeconfig and engine client uses: never a member's address. */
export const controlPlaneEndpointHost = (cluster: string, zone: string) => `api.${cluster}.${zone}`

/** The first usable address of an IPv4 subnet (`10.96.0.0/12` -> `10.96.0.1`), as kubeadm takes it. */
export function firstAddressOf(subnet: string): string {
  const [address, bits] = subnet.split('/')
  const octets = address!.split('.').map(Number)
  const prefix = Number(bits)
  if (octets.length !== 4 || octets.some((octet) => !Number.isInteger(octet) || octet < 0 || octet > 255) || !Number.isInteger(prefix) || prefix < 0 || prefix > 30) {
    throw new Error(`not an IPv4 subnet with room for hosts: ${subnet}`)
  }
  const base = octets.reduce((value, octet) => value * 256 + octet, 0)
  const size = 2 ** (32 - prefix)
  const first = base - (base % size) + 1
  return [24, 16, 8, 0].map((shift) => Math.floor(first / 2 ** shift) % 256).join('.')
}

const LOOPBACK_IPS = ['127.0.0.1', '::1']

/**
 * kubeadm's certificate set for a member. Control-plane members get the API server's, etcd's and the
 * front proxy's certificates and the five kubeconfigs `kubeadm init` writes; a node gets only its
 * kubelet's client certificate (kubelet.conf), since in external-CA mode no controller-manager can
 * sign the kubelet's bootstrap CSR.
 */
export function certificatePlan(member: MemberIdentity): CertificateRequest[] {
  // As kubeadm: users and the kubelet go through the endpoint; the controller-manager and the
  // scheduler talk to their own member's API server, so that they never depend on a load balancer.
  const endpoint = `https://${member.endpointHost}:${member.apiServerPort}`
  const local = `https://${member.ip}:${member.apiServerPort}`
  const kubelet = kubeconfig('kubelet.conf', `system:node:${member.hostname}`, ['system:nodes'], endpoint)
  if (member.role === 'node') return [kubelet]
  const etcdNames = [member.hostname, 'localhost']
  const etcdIps = [member.ip, ...LOOPBACK_IPS]
  const serviceNames = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', `kubernetes.default.svc.${member.dnsDomain}`]
  return [
    certificate('apiserver', 'apiserver', 'kubernetes', 'kube-apiserver', [], ['server'], [member.hostname, member.endpointHost, ...serviceNames], [member.serviceIp, member.ip, ...(member.controlPlaneVip ? [member.controlPlaneVip] : [])]),
    // kubeadm >= 1.29: the kubelet client is a cluster admin through RBAC, not system:masters.
    certificate('apiserver-kubelet-client', 'apiserver-kubelet-client', 'kubernetes', 'kube-apiserver-kubelet-client', ['kubeadm:cluster-admins'], ['client']),
    certificate('front-proxy-client', 'front-proxy-client', 'front-proxy', 'front-proxy-client', [], ['client']),
    certificate('etcd-server', 'etcd/server', 'etcd', member.hostname, [], ['server', 'client'], etcdNames, etcdIps),
    certificate('etcd-peer', 'etcd/peer', 'etcd', member.hostname, [], ['server', 'client'], etcdNames, etcdIps),
    certificate('etcd-healthcheck-client', 'etcd/healthcheck-client', 'etcd', 'kube-etcd-healthcheck-client', [], ['client']),
    certificate('apiserver-etcd-client', 'apiserver-etcd-client', 'etcd', 'kube-apiserver-etcd-client', [], ['client']),
    kubeconfig('admin.conf', 'kubernetes-admin', ['kubeadm:cluster-admins'], endpoint),
    kubeconfig('super-admin.conf', 'kubernetes-super-admin', ['system:masters'], endpoint),
    kubeconfig('controller-manager.conf', 'system:kube-controller-manager', [], local),
    kubeconfig('scheduler.conf', 'system:kube-scheduler', [], local),
    kubelet,
  ]
}

function certificate(name: string, file: string, authority: Authority, commonName: string, organizations: string[], usages: KeyUsage[], dnsNames: string[] = [], ipAddresses: string[] = []): CertificateRequest {
  return { name, file, kind: 'certificate', authority, commonName, organizations, usages, dnsNames, ipAddresses }
}

function kubeconfig(file: string, commonName: string, organizations: string[], server: string): CertificateRequest {
  return { name: file, file, kind: 'kubeconfig', authority: 'kubernetes', commonName, organizations, usages: ['client'], dnsNames: [], ipAddresses: [], server }
}

/** Renewal is due once less than this is left of the earliest certificate (kubeadm warns at 30 days). */
export const RENEW_BEFORE_MS = 30 * 24 * 60 * 60 * 1000

export function renewalDue(notAfter: string, now: Date): boolean {
  return Date.parse(notAfter) - now.getTime() < RENEW_BEFORE_MS
}

/** The set a member gets, with the earliest expiry. */
export function memberCertificates(certificates: IssuedCertificate[], now: Date): MemberCertificates {
  const notAfter = certificates.map((issued) => issued.notAfter).sort()[0] ?? now.toISOString()
  return { issuedAt: now.toISOString(), notAfter, certificates }
}
