import type { Role } from './cluster.ts'

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

/** Issues a fresh PKI for a cluster; an adapter implements it with a real X.509 library. */
export interface ClusterPkiIssuer {
  issue(clusterName: string, now: Date): Promise<ClusterPki>
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
 * What a role's templates get under `{{cluster.pki.*}}`. Least privilege: only control-plane members
 * hold CA and service-account private keys (they sign kubelet, etcd peer and token certificates); a
 * node gets the CA certificate it must trust and what `kubeadm join` needs, nothing it could sign with.
 * The admin key never leaves the engine.
 */
export function pkiForRole(pki: ClusterPki, role: Role): Record<string, string> {
  const shared = {
    ca_crt: pki.kubernetesCa.certificatePem,
    ca_cert_hash: pki.kubernetesCaCertHash,
    bootstrap_token: pki.bootstrapToken,
  }
  if (role === 'node') return shared
  return {
    ...shared,
    ca_key: pki.kubernetesCa.privateKeyPem,
    etcd_ca_crt: pki.etcdCa.certificatePem,
    etcd_ca_key: pki.etcdCa.privateKeyPem,
    front_proxy_ca_crt: pki.frontProxyCa.certificatePem,
    front_proxy_ca_key: pki.frontProxyCa.privateKeyPem,
    sa_pub: pki.serviceAccount.publicKeyPem,
    sa_key: pki.serviceAccount.privateKeyPem,
  }
}

/**
 * The admin kubeconfig the engine uses to talk to the cluster's API server (cluster registration).
 * Built on demand from the stored PKI; never written to disk or returned by the API.
 */
export function adminKubeconfig(clusterName: string, pki: ClusterPki, server: string): string {
  const b64 = (pem: string) => Buffer.from(pem, 'utf8').toString('base64')
  const user = `${clusterName}-slipway-admin`
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${clusterName}`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.kubernetesCa.certificatePem)}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate-data: ${b64(pki.admin.certificatePem)}`,
    `    client-key-data: ${b64(pki.admin.privateKeyPem)}`,
    'contexts:',
    `- name: ${user}@${clusterName}`,
    '  context:',
    `    cluster: ${clusterName}`,
    `    user: ${user}`,
    `current-context: ${user}@${clusterName}`,
    '',
  ].join('\n')
}
