import { conflict, invalid, notFound } from '../errors.ts'
import type { ClusterPkiIssuer, KeyPairCertificate } from './cluster-pki.ts'
import type { ClusterRepository } from './cluster-service.ts'
import type { CertificateRequest } from './member-certificates.ts'
import { ETCD_CLIENT_PORT } from './schedule-plan.ts'

/** How the engine reaches one cluster's etcd. */
export interface EtcdConnection {
  /** The control-plane members' client URLs, `https://<boot address>:2379`: what each member's etcd advertises. */
  endpoints: string[]
  /** The cluster's etcd CA: the members' serving certificates must chain to it. */
  caPem: string
  /** The engine's own client certificate under that CA; it lives in the engine's memory only. */
  client: KeyPairCertificate
}

/** A client certificate for etcd with what a client needs beside it. */
export interface EtcdClientCertificate extends KeyPairCertificate {
  caPem: string
  notAfter: string
}

/**
 * The client certificates live a day: the engine's is issued again once half of that is gone (it is
 * never stored, so a restart issues a new one), an operator's simply expires.
 */
export const ETCD_CLIENT_CERTIFICATE_LIFETIME_MS = 24 * 60 * 60 * 1000
const ENGINE_REISSUE_LEFT_MS = ETCD_CLIENT_CERTIFICATE_LIFETIME_MS / 2

/** A common name is written into the subject: letters, digits and `._@:-` only, so that nothing can add an RDN (`, O=...`). */
export const ETCD_COMMON_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$'
const COMMON_NAME = new RegExp(ETCD_COMMON_NAME_PATTERN)

type EtcdAccessRepository = Pick<ClusterRepository, 'findCluster' | 'clusterNameTaken' | 'listPlacedMembers' | 'findCertificates' | 'findClusterPki'>

/**
 * Access to a provisioned cluster's etcd: where its members listen, and client certificates issued
 * under the cluster's etcd CA (whose key never leaves the engine): the engine's own, kept in memory
 * and issued again before it expires, and short-lived ones for operators' etcdctl, returned once and
 * kept nowhere. etcd runs without its own auth (as kubeadm sets it up): a certificate under the etcd
 * CA is full access, which is why an operator's is short-lived and its issue audited.
 */
export class EtcdAccess {
  private readonly engineCertificates = new Map<string, Promise<EtcdClientCertificate>>()

  constructor(
    private readonly repository: EtcdAccessRepository,
    private readonly pkiIssuer: Pick<ClusterPkiIssuer, 'issueLeaves'>,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Where the cluster's etcd listens and the engine's certificate for it (404 for no cluster, 409 for one registered by hand). */
  async connection(cluster: string): Promise<EtcdConnection> {
    const members = await this.provisionedMembers(cluster)
    const endpoints = members.filter((member) => member.role === 'control-plane' && member.ip).map((member) => `https://${member.ip}:${ETCD_CLIENT_PORT}`)
    if (endpoints.length === 0) throw conflict('ETCD_NOT_PROVISIONED', `cluster "${cluster}" has no control-plane member placed yet: it has no etcd to ask`)
    const { caPem, certificatePem, privateKeyPem } = await this.engineCertificate(cluster)
    return { endpoints, caPem, client: { certificatePem, privateKeyPem } }
  }

  /** A short-lived client certificate for an operator's etcdctl, with a fresh key; nothing of it is stored. */
  async issueClientCertificate(cluster: string, commonName: string, now: Date = this.clock()): Promise<EtcdClientCertificate> {
    if (!COMMON_NAME.test(commonName)) throw invalid('INVALID_COMMON_NAME', `common_name "${commonName}" may hold letters, digits and "._@:-" (at most 64, starting with a letter or digit)`)
    await this.provisionedMembers(cluster)
    return this.issue(cluster, commonName, now)
  }

  /** The engine's certificate for the cluster, issued again once half its life is gone or the cluster's etcd CA changed (a cluster destroyed and created again). */
  private async engineCertificate(cluster: string): Promise<EtcdClientCertificate> {
    const now = this.clock()
    const etcdCa = (await this.repository.findCertificates(cluster))?.etcdCa
    // A caller that comes while the certificate is being issued waits for that one.
    const current = await this.engineCertificates.get(cluster)?.catch(() => undefined)
    if (current && current.caPem === etcdCa && Date.parse(current.notAfter) - now.getTime() > ENGINE_REISSUE_LEFT_MS) return current
    const issuing = this.issue(cluster, `slipway-engine@${cluster}`, now)
    this.engineCertificates.set(cluster, issuing)
    issuing.catch(() => this.engineCertificates.get(cluster) === issuing && this.engineCertificates.delete(cluster))
    return issuing
  }

  private async issue(cluster: string, commonName: string, now: Date): Promise<EtcdClientCertificate> {
    const pki = await this.repository.findClusterPki(cluster)
    if (!pki) throw notFound('CLUSTER_NOT_FOUND', `cluster "${cluster}" does not exist`)
    const request: CertificateRequest = {
      name: 'etcd-client',
      file: 'etcd/client',
      kind: 'certificate',
      authority: 'etcd',
      commonName,
      organizations: [],
      usages: ['client'],
      dnsNames: [],
      ipAddresses: [],
      validForMs: ETCD_CLIENT_CERTIFICATE_LIFETIME_MS,
    }
    const [issued] = await this.pkiIssuer.issueLeaves(pki, [request], now)
    return { caPem: pki.etcdCa.certificatePem, certificatePem: issued!.certificatePem, privateKeyPem: issued!.privateKeyPem, notAfter: issued!.notAfter }
  }

  private async provisionedMembers(cluster: string) {
    if (!(await this.repository.findCluster(cluster))) {
      if (await this.repository.clusterNameTaken(cluster)) throw conflict('ETCD_NOT_PROVISIONED', `cluster "${cluster}" was registered by hand: the engine did not provision it and holds no etcd CA for it`)
      throw notFound('CLUSTER_NOT_FOUND', `cluster "${cluster}" does not exist`)
    }
    return this.repository.listPlacedMembers(cluster)
  }
}
