import { EtcdJsonGateway } from '../adapters/etcd/etcd-json-gateway.ts'
import { x509ClusterPkiIssuer } from '../adapters/pki/x509-cluster-pki.ts'
import { EtcdAccess } from '../core/clusters/etcd-access.ts'
import { EtcdQuorum, type EtcdGateway } from '../core/clusters/etcd-quorum.ts'
import { clusterRepository } from '../storage/repositories/clusters.ts'
import type { Capability, WiringBasics } from './capability.ts'

/** The real one speaks etcd's v3 JSON gateway; tests without an etcd substitute their own. */
export type EtcdAdapter = EtcdGateway & { close?(): Promise<void> }

/**
 * Provisioned clusters' etcd, asked live: the engine's client certificates under each cluster's etcd
 * CA (in memory only), the gateway that asks the members over mutual TLS, and the quorum checks
 * every membership change goes through. Rolling updates gate control-plane members on it; operators
 * see it through the cluster routes.
 */
export function wireEtcd({ store, secrets }: WiringBasics, adapter?: EtcdAdapter) {
  const access = new EtcdAccess(clusterRepository(store, secrets), x509ClusterPkiIssuer)
  const gateway = adapter ?? new EtcdJsonGateway((cluster) => access.connection(cluster))
  const capability: Capability = { jobs: [], listeners: [], close: async () => gateway.close?.() }
  return { access, quorum: new EtcdQuorum(gateway), ...capability }
}
