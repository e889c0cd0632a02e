import { EtcdJsonGateway } from '../adapters/etcd/etcd-json-gateway.ts'
import { x509ClusterPkiIssuer } from '../adapters/pki/x509-cluster-pki.ts'
import { EtcdAccess } from '../core/clusters/etcd-access.ts'
import { EtcdMembers } from '../core/clusters/etcd-members.ts'
import { EtcdQuorum, type EtcdGateway } from '../core/clusters/etcd-quorum.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { clusterRepository } from '../storage/repositories/clusters.ts'
import type { Capability, WiringBasics } from './capability.ts'
import type { Provisioning } from './provisioning.ts'

/** How often replacements still waiting to join their cluster's etcd are tried again. */
const MEMBERSHIP_RETRY_MS = 5_000

/** The real one speaks etcd's v3 JSON gateway; tests without an etcd substitute their own. */
export type EtcdAdapter = EtcdGateway & { close?(): Promise<void> }

/**
 * Provisioned clusters' etcd, asked live: the engine's client certificates under each cluster's etcd
 * CA (in memory only), the gateway that asks the members over mutual TLS, and the quorum checks
 * every membership change goes through. Rolling updates gate control-plane members on it; operators
 * see it through the cluster routes.
 */
export function wireEtcd({ store, secrets, logger, events, jobLeases }: WiringBasics, provisioning: Pick<Provisioning, 'clusters'>, adapter?: EtcdAdapter) {
  const access = new EtcdAccess(clusterRepository(store, secrets), x509ClusterPkiIssuer)
  const gateway = adapter ?? new EtcdJsonGateway((cluster) => access.connection(cluster))
  const quorum = new EtcdQuorum(gateway)
  // A replacement placed into a running control plane is added to its etcd before its config is served.
  const members = new EtcdMembers(quorum, provisioning.clusters)
  const joins = new SerialJob(
    async (reason) => {
      for (const change of await members.reconcile()) {
        const line = { component: 'etcd', reason, cluster: change.cluster, hostname: change.hostname, outcome: change.outcome }
        if (change.outcome === 'failed') logger.warn(line, `${change.hostname} is not in the etcd of cluster ${change.cluster} yet (tried again in ${MEMBERSHIP_RETRY_MS / 1000} s): ${change.message}`)
        else logger.info(line, `${change.hostname}: ${change.message}`)
      }
    },
    { name: 'etcd membership', intervalMs: MEMBERSHIP_RETRY_MS, debounceMs: 200, logger, gate: jobLeases.lease('etcd-membership') },
  )
  events.on('certificates issued', (reason) => joins.trigger(reason))
  const capability: Capability = { jobs: [joins], listeners: [], close: async () => gateway.close?.() }
  return { access, quorum, members, ...capability }
}
