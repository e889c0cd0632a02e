import type { Role } from './cluster.ts'
import type { CertificateRequest, IssuedCertificate, MemberCertificates } from './member-certificates.ts'

/** A certificate and its private key, PEM-encoded. */
export interface KeyPairCertificate {
  certificatePem: string
  privateKeyPem: string
}

/**
 * Everything a cluster's control plane must trust and sign with, in kubeadm's layout: three CAs
 * (`ca`, `etcd/ca`, `front-proxy-ca`), the service-account signing key pair, the admin client
 * certificate (group `system:masters`; the engine keeps it to register the cluster later) and a
 * bootstrap token with which nodes join (`kubeadm join --token ... --discovery-token-ca-cert-hash ...`).
 */
export interface ClusterPki {
  kubernetesCa: KeyPairCertificate
  etcdCa: KeyPairCertificate
  frontProxyCa: KeyPairCertificate
  serviceAccount: { publicKeyPem: string; privateKeyPem: string }
  admin: KeyPairCertificate
  /** `[a-z0-9]{6}.[a-z0-9]{16}`, kubeadm's bootstrap token format. */
  bootstrapToken: string
  /** `sha256:<hex>` of the Kubernetes CA's SubjectPublicKeyInfo, as `kubeadm join` expects it. */
  kubernetesCaCertHash: string
}

/** The public half: what the admin API may show. */
export interface ClusterCertificates {
  kubernetesCa: string
  etcdCa: string
  frontProxyCa: string
  admin: string
  serviceAccountPublicKey: string
  kubernetesCaCertHash: string
}

/** Issues a fresh PKI for a cluster, and certificates under it; an adapter implements it with a real X.509 library. */
export interface ClusterPkiIssuer {
  issue(clusterName: string, now: Date): Promise<ClusterPki>
  /** Leaf certificates signed by the cluster's CAs, each with a fresh key. */
  issueLeaves(pki: ClusterPki, requests: CertificateRequest[], now: Date): Promise<IssuedCertificate[]>
  /** A new admin client certificate (the engine's own) under the cluster's CA. */
  renewAdmin(pki: ClusterPki, clusterName: string, now: Date): Promise<KeyPairCertificate>
  /** When a certificate stops being valid (ISO time). */
  notAfter(certificatePem: string): string
}

export const BOOTSTRAP_TOKEN_PATTERN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/

export function publicCertificates(pki: ClusterPki): ClusterCertificates {
  return {
    kubernetesCa: pki.kubernetesCa.certificatePem,
    etcdCa: pki.etcdCa.certificatePem,
    frontProxyCa: pki.frontProxyCa.certificatePem,
    admin: pki.admin.certificatePem,
    serviceAccountPublicKey: pki.serviceAccount.publicKeyPem,
    kubernetesCaCertHash: pki.kubernetesCaCertHash,
  }
}

/**
 * What a role's templates get under `{{cluster.pki.*}}`, in kubeadm's external-CA layout: the CA
 * certificates to trust, the member's own leaf certificates and keys (`apiserver_crt`/`apiserver_key`,
 * `etcd_peer_crt`, ...), its kubeconfigs (`admin_conf`, `kubelet_conf`, ...) and the service-account
 * key pair, which every API server signs and checks tokens with. No CA private key: the engine signs.
 * A node gets the CA certificate, its kubelet's kubeconfig and what `kubeadm join` needs.
 */
export function pkiForRole(pki: ClusterPki, member: { cluster: string; role: Role; certificates: MemberCertificates }): Record<string, string> {
  const fields: Record<string, string> = {
    ca_crt: pki.kubernetesCa.certificatePem,
    ca_cert_hash: pki.kubernetesCaCertHash,
    bootstrap_token: pki.bootstrapToken,
  }
  for (const issued of member.certificates.certificates) {
    if (issued.kind === 'kubeconfig') {
      fields[`${templateName(issued.file.replace(/\.conf$/, ''))}_conf`] = kubeconfig({ cluster: member.cluster, server: issued.server!, caPem: pki.kubernetesCa.certificatePem, user: subjectName(issued), ...issued })
    } else {
      fields[`${templateName(issued.file)}_crt`] = issued.certificatePem
      fields[`${templateName(issued.file)}_key`] = issued.privateKeyPem
    }
  }
  if (member.role === 'node') return fields
  return {
    ...fields,
    etcd_ca_crt: pki.etcdCa.certificatePem,
    front_proxy_ca_crt: pki.frontProxyCa.certificatePem,
    sa_pub: pki.serviceAccount.publicKeyPem,
    sa_key: pki.serviceAccount.privateKeyPem,
  }
}

/** `etcd/healthcheck-client` -> `etcd_healthcheck_client`: a name a template can write. */
const templateName = (file: string) => file.replace(/[/-]/g, '_')
/** The kubeconfig user is named after what the certificate authenticates as (kubeadm's habit). */
const subjectName = (issued: IssuedCertificate) => issued.name.replace(/\.conf$/, '')

/**
 * The admin kubeconfig the engine uses to talk to the cluster's API server (cluster registration).
 * Built on demand from the stored PKI; never written to disk or returned by the API.
 */
export function adminKubeconfig(clusterName: string, pki: ClusterPki, server: string): string {
  return kubeconfig({ cluster: clusterName, server, caPem: pki.kubernetesCa.certificatePem, user: `${clusterName}-slipway-admin`, ...pki.admin })
}

/** A kubeconfig with one cluster, one user authenticated by a client certificate, and their context. */
export function kubeconfig(parts: { cluster: string; server: string; caPem: string; user: string; certificatePem: string; privateKeyPem: string }): string {
  const b64 = (pem: string) => Buffer.from(pem, 'utf8').toString('base64')
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${parts.cluster}`,
    '  cluster:',
    `    server: ${parts.server}`,
    `    certificate-authority-data: ${b64(parts.caPem)}`,
    'users:',
    `- name: ${parts.user}`,
    '  user:',
    `    client-certificate-data: ${b64(parts.certificatePem)}`,
    `    client-key-data: ${b64(parts.privateKeyPem)}`,
    'contexts:',
    `- name: ${parts.user}@${parts.cluster}`,
    '  context:',
    `    cluster: ${parts.cluster}`,
    `    user: ${parts.user}`,
    `current-context: ${parts.user}@${parts.cluster}`,
    '',
  ].join('\n')
}
