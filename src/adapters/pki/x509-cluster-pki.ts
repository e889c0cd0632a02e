// @peculiar/x509 resolves its ASN.1 services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata'
import { createHash, randomBytes, randomInt, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import type { ClusterPki, ClusterPkiIssuer, KeyPairCertificate } from '../../core/clusters/cluster-pki.ts'
import type { Authority, CertificateRequest, IssuedCertificate } from '../../core/clusters/member-certificates.ts'

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

/**
 * ECDSA P-256 throughout: Kubernetes, etcd and kubeadm accept it, and a key takes microseconds to
 * generate where RSA-2048 takes tens of milliseconds (the benchmark creates clusters by the hundred).
 */
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY_MS = 24 * 60 * 60 * 1000
/** kubeadm's lifetimes: CAs ten years, leaf certificates one year. */
const CA_DAYS = 3650
const LEAF_DAYS = 365
/** Clocks of freshly booted machines lag: certificates are valid from a little before "now". */
const BACKDATE_MS = 5 * 60 * 1000

interface SigningAuthority {
  certificate: x509.X509Certificate
  keys: CryptoKeyPair
}

const subtle = webcrypto.subtle as unknown as SubtleCrypto

async function generateKeys(): Promise<CryptoKeyPair> {
  return subtle.generateKey(ALGORITHM, true, ['sign', 'verify']) as Promise<CryptoKeyPair>
}

/** A positive 128-bit serial (RFC 5280 asks for at most 20 octets and non-negative). */
function serialNumber(): string {
  const bytes = randomBytes(16)
  bytes[0]! &= 0x7f
  return bytes.toString('hex')
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

async function publicKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('spki', key), 'PUBLIC KEY')
}

async function createAuthority(commonName: string, now: Date): Promise<SigningAuthority> {
  const keys = await generateKeys()
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { certificate, keys }
}

/** A leaf certificate with a fresh key, in kubeadm's shape: key usages by kind, SANs, both key identifiers. */
async function issueLeaf(authority: SigningAuthority, request: Pick<CertificateRequest, 'commonName' | 'organizations' | 'usages' | 'dnsNames' | 'ipAddresses' | 'validForMs'>, now: Date): Promise<KeyPairCertificate & { notAfter: Date }> {
  const keys = await generateKeys()
  const subject = [...request.organizations.map((organization) => `O=${organization}`), `CN=${request.commonName}`].join(', ')
  const names = [...request.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...request.ipAddresses.map((value) => ({ type: 'ip' as const, value }))]
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject,
    issuer: authority.certificate.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + (request.validForMs ?? LEAF_DAYS * DAY_MS)),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: authority.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // ECDSA keys sign; keyEncipherment is for RSA key transport and kubeadm leaves it out for ECDSA.
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(request.usages.map((usage) => (usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth))),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(authority.certificate),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { certificatePem: certificate.toString('pem'), privateKeyPem: await privateKeyPem(keys.privateKey), notAfter: certificate.notAfter }
}

/** A stored CA (certificate and PKCS#8 key) back as a signing authority. */
async function openAuthority(material: KeyPairCertificate): Promise<SigningAuthority> {
  const certificate = new x509.X509Certificate(material.certificatePem)
  const privateKey = await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(material.privateKeyPem), ALGORITHM, false, ['sign'])
  const publicKey = await certificate.publicKey.export(ALGORITHM, ['verify'], webcrypto as unknown as Crypto)
  return { certificate, keys: { privateKey, publicKey } }
}

/**
 * Opened authorities by CA certificate: importing the key and parsing the certificate cost more than
 * a leaf itself, and a scheduling pass issues for many members of few clusters. Bounded: the oldest
 * is dropped first.
 */
const openedAuthorities = new Map<string, Promise<SigningAuthority>>()
const OPENED_AUTHORITIES_MAX = 64

function cachedAuthority(material: KeyPairCertificate): Promise<SigningAuthority> {
  let authority = openedAuthorities.get(material.certificatePem)
  if (!authority) {
    authority = openAuthority(material)
    authority.catch(() => openedAuthorities.delete(material.certificatePem))
    openedAuthorities.set(material.certificatePem, authority)
    if (openedAuthorities.size > OPENED_AUTHORITIES_MAX) openedAuthorities.delete(openedAuthorities.keys().next().value!)
  }
  return authority
}

const authorityOf = (pki: ClusterPki, authority: Authority): KeyPairCertificate =>
  authority === 'kubernetes' ? pki.kubernetesCa : authority === 'etcd' ? pki.etcdCa : pki.frontProxyCa

const adminRequest = (clusterName: string) => ({ commonName: `slipway-admin@${clusterName}`, organizations: ['system:masters'], usages: ['client' as const], dnsNames: [], ipAddresses: [] })

async function material(authority: SigningAuthority): Promise<KeyPairCertificate> {
  return { certificatePem: authority.certificate.toString('pem'), privateKeyPem: await privateKeyPem(authority.keys.privateKey) }
}

const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'
const tokenPart = (length: number) => Array.from({ length }, () => TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)]).join('')

/** The cluster PKI issuer on @peculiar/x509 over Node's WebCrypto. */
export const x509ClusterPkiIssuer: ClusterPkiIssuer = {
  async issue(clusterName, now) {
    const [kubernetesCa, etcdCa, frontProxyCa, serviceAccount] = await Promise.all([
      // kubeadm's common names, so that tools reading the certificates recognise them.
      createAuthority('kubernetes', now),
      createAuthority('etcd-ca', now),
      createAuthority('front-proxy-ca', now),
      generateKeys(),
    ])
    const { notAfter: _adminNotAfter, ...admin } = await issueLeaf(kubernetesCa, adminRequest(clusterName), now)
    const spki = Buffer.from(kubernetesCa.certificate.publicKey.rawData)
    return {
      kubernetesCa: await material(kubernetesCa),
      etcdCa: await material(etcdCa),
      frontProxyCa: await material(frontProxyCa),
      serviceAccount: { publicKeyPem: await publicKeyPem(serviceAccount.publicKey), privateKeyPem: await privateKeyPem(serviceAccount.privateKey) },
      admin,
      bootstrapToken: `${tokenPart(6)}.${tokenPart(16)}`,
      kubernetesCaCertHash: `sha256:${createHash('sha256').update(spki).digest('hex')}`,
    }
  },

  async issueLeaves(pki, requests, now) {
    return Promise.all(
      requests.map(async (request): Promise<IssuedCertificate> => {
        const { certificatePem, privateKeyPem, notAfter } = await issueLeaf(await cachedAuthority(authorityOf(pki, request.authority)), request, now)
        return { name: request.name, file: request.file, kind: request.kind, ...(request.server ? { server: request.server } : {}), certificatePem, privateKeyPem, notAfter: notAfter.toISOString() }
      }),
    )
  },

  async renewAdmin(pki, clusterName, now) {
    const { notAfter: _notAfter, ...admin } = await issueLeaf(await cachedAuthority(pki.kubernetesCa), adminRequest(clusterName), now)
    return admin
  },

  notAfter(certificatePem) {
    return new x509.X509Certificate(certificatePem).notAfter.toISOString()
  },
}
