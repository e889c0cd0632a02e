import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { administer, clusterOwner, operate } from '../../../../core/access/route-policy.ts'
import type { EtcdAccess } from '../../../../core/clusters/etcd-access.ts'
import type { EtcdQuorum } from '../../../../core/clusters/etcd-quorum.ts'
import { ClusterNameParams } from '../../schemas/clusters.ts'
import { adminErrors, ErrorResponse } from '../../schemas/common.ts'
import { EtcdClientCertificateBody, EtcdClientCertificateResponse, EtcdResponse, toEtcdClientCertificateResponse, toEtcdResponse } from '../../schemas/etcd.ts'

/** etcd could not be asked (502), or not in time (504). */
const etcdErrors = { 502: ErrorResponse, 504: ErrorResponse }

/** A provisioned cluster's etcd, asked live, and short-lived client certificates for operators' etcdctl. */
export const clusterEtcdRoutes: FastifyPluginAsyncTypebox<{ etcd: { quorum: Pick<EtcdQuorum, 'look'>; access: Pick<EtcdAccess, 'issueClientCertificate'> } }> = async (app, { etcd }) => {
  app.get(
    '/clusters/:name/etcd',
    {
      config: { access: operate('tenant', clusterOwner) },
      schema: {
        tags: ['clusters'],
        summary:
          "The cluster's etcd members as etcd reports them now: each member's health, raft indexes and term, the leader (502 ETCD_UNREACHABLE or ETCD_BAD_ANSWER when no member can be asked, 504 when none answers in time; 409 ETCD_NOT_PROVISIONED for a cluster registered by hand)",
        params: ClusterNameParams,
        response: { 200: EtcdResponse, ...adminErrors, ...etcdErrors },
      },
    },
    async (request) => toEtcdResponse(await etcd.quorum.look(request.params.name)),
  )

  app.post(
    '/clusters/:name/etcd/client-certificate',
    {
      config: { access: administer('tenant', clusterOwner) },
      schema: {
        tags: ['clusters'],
        summary:
          "A client certificate for etcdctl under the cluster's etcd CA, valid 24 hours, with a new private key that is returned once and kept nowhere. etcd trusts any certificate under its CA fully: the issue is audited.",
        params: ClusterNameParams,
        body: EtcdClientCertificateBody,
        response: { 200: EtcdClientCertificateResponse, ...adminErrors },
      },
    },
    async (request, reply) => {
      // The default names whose it is: the token that asked for it.
      const commonName = request.body?.common_name ?? `operator:${request.principal!.name}`.slice(0, 64)
      const issued = await etcd.access.issueClientCertificate(request.params.name, commonName)
      void reply.header('cache-control', 'no-store')
      return toEtcdClientCertificateResponse(commonName, issued)
    },
  )
}
