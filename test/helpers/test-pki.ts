// @peculiar/x509 needs the Reflect metadata API before it loads.
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import type { ClusterPki } from '../../src/core/clusters/cluster-pki.ts'

export interface CertifiedKey {
  certificatePem: string
  privateKeyPem: string
}

/**
 * A certificate signed by a cluster's Kubernetes CA, as kubeadm issues them: a serving certificate
 * for the API server (`apiserver.crt`, with its IP and DNS names) or a client certificate (the
 * subject carries the user and, as O=, its groups).
 */
export async function issueCertificate(
  pki: ClusterPki,
  options: { subject: string; ips?: string[]; dnsNames?: string[]; usage: 'server' | 'client'; validDays?: number },
): Promise<CertifiedKey> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto)
  const subtle = webcrypto.subtle as unknown as SubtleCrypto
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
  const caKey = await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pki.kubernetesCa.privateKeyPem), algorithm, false, ['sign'])
  const ca = new x509.X509Certificate(pki.kubernetesCa.certificatePem)
  const keys = (await subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair
  const names = [...(options.ips ?? []).map((value) => ({ type: 'ip' as const, value })), ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value }))]
  const validDays = options.validDays ?? 1
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: Date.now().toString(16) + Math.floor(Math.random() * 0xffff).toString(16),
    subject: options.subject,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 60_000 + Math.min(0, validDays) * 2 * 86_400_000),
    notAfter: new Date(Date.now() + validDays * 86_400_000),
    signingAlgorithm: algorithm,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([options.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  })
  return {
    certificatePem: certificate.toString('pem'),
    privateKeyPem: x509.PemConverter.encode(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
  }
}

/** A serving certificate for 127.0.0.1 (or `ip`) signed by the cluster's Kubernetes CA, as kubeadm's apiserver.crt. */
export const servingCertificate = (pki: ClusterPki, ip = '127.0.0.1') => issueCertificate(pki, { subject: 'CN=kube-apiserver', ips: [ip], dnsNames: ['kubernetes.default.svc'], usage: 'server' })
