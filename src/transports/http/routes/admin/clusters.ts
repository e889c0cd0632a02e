import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { BootstrapProgressService } from '../../../../core/clusters/bootstrap-progress.ts'
import { FlavorDocument } from '../../../../core/clusters/cluster.ts'
import type { ClusterService, ScheduleReport } from '../../../../core/clusters/cluster-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import {
  BootstrapResponse,
  CertificateRenewalResponse,
  CertificatesResponse,
  ClusterNameParams,
  FlavorResponse,
  ScheduleResponse,
  toBootstrapResponse,
  toCertificateRenewalResponse,
  toCertificatesResponse,
  toFlavorResponse,
  toScheduleResponse,
} from '../../schemas/clusters.ts'
import { clusterOwner, operate, read } from '../../../../core/access/route-policy.ts'

export const clusterRoutes: FastifyPluginAsyncTypebox<{ clusters: ClusterService; bootstrap: BootstrapProgressService; scheduler: { runNow(reason?: string): Promise<ScheduleReport[]> } }> = async (
  app,
  { clusters, bootstrap, scheduler },
) => {
  app.get('/flavors', { config: { access: read('tenant') }, schema: { tags: ['clusters'], summary: 'List flavors (cluster shapes)', response: { 200: Type.Array(FlavorResponse), ...adminErrors } } }, async () =>
    (await clusters.listFlavors()).map(toFlavorResponse),
  )

  app.post(
    '/flavors',
    { config: { access: operate() }, schema: { tags: ['clusters'], summary: 'Create a flavor (409 FLAVOR_EXISTS)', body: FlavorDocument, response: { 201: FlavorResponse, ...adminErrors } } },
    async (request, reply) => reply.status(201).send(toFlavorResponse(await clusters.createFlavor(request.body))),
  )

  app.get(
    '/clusters/:name/certificates',
    {
      config: { access: read('tenant', clusterOwner) },
      schema: {
        tags: ['clusters'],
        summary: "The cluster's public certificates (generated with the cluster; private keys are encrypted at rest and never returned)",
        params: ClusterNameParams,
        response: { 200: CertificatesResponse, ...adminErrors },
      },
    },
    async (request) => toCertificatesResponse(await clusters.certificates(request.params.name)),
  )

  app.get(
    '/clusters/:name/bootstrap',
    {
      config: { access: read('tenant', clusterOwner) },
      schema: {
        tags: ['clusters'],
        summary: "Where each member is in its kubeadm bootstrap (waiting for the endpoint, init or join running, done, failed with kubeadm's last lines), as the members report it",
        params: ClusterNameParams,
        response: { 200: Type.Array(BootstrapResponse), ...adminErrors },
      },
    },
    async (request) => {
      await clusters.certificates(request.params.name) // 404 CLUSTER_NOT_FOUND for an unknown name
      return (await bootstrap.list(request.params.name)).map(toBootstrapResponse)
    },
  )

  app.post(
    '/clusters/:name/certificates/renew',
    {
      config: { access: operate('tenant', clusterOwner) },
      schema: {
        tags: ['clusters'],
        summary:
          "Renew now, with new keys, every certificate the engine issued for the cluster (members' leaf certificates and kubeconfigs, the engine's admin certificate); the members' configs change and reach them by a rolling update. The CAs stay.",
        params: ClusterNameParams,
        response: { 200: CertificateRenewalResponse, ...adminErrors },
      },
    },
    async (request) => toCertificateRenewalResponse(await clusters.ca.renew(request.params.name)),
  )

  app.post(
    '/scheduler/run',
    { config: { access: operate() }, schema: { tags: ['clusters'], summary: 'Run one scheduling pass over every cluster; returns what it assigned', response: { 200: ScheduleResponse, ...adminErrors } } },
    async () => toScheduleResponse(await scheduler.runNow('api')),
  )
}
