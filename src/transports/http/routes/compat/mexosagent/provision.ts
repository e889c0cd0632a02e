import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { ClusterService } from '../../../../../core/clusters/cluster-service.ts'
import { SlipwayError } from '../../../../../core/errors.ts'
import { adminErrors } from '../../../schemas/common.ts'
import { DestroyBody, ProvisionBody, ProvisionResultsResponse } from '../../../schemas/provision.ts'
import { tenancyOf } from '../../../auth.ts'
import { operate } from '../../../../../core/access/route-policy.ts'

const tags = ['mexosagent']

/**
 * mexosagent's POST /v1/provision and /v1/destroy, for its callers. Each item succeeds or fails on
 * its own and the answer is a result per item (one bad name does not abort the rest); unexpected
 * failures are still thrown. Admin actions: app.ts puts /v1/ behind the bearer token like /api/.
 */
export const provisionRoutes: FastifyPluginAsyncTypebox<{ clusters: ClusterService }> = async (app, { clusters }) => {
  const eachItem = async <T extends { name: string }>(items: T[], work: (item: T) => Promise<unknown>) => {
    const results = []
    for (const item of items) {
      try {
        await work(item)
        results.push({ name: item.name, ok: true })
      } catch (error) {
        if (!(error instanceof SlipwayError) || error.kind === 'configuration') throw error
        results.push({ name: item.name, ok: false, code: error.code, message: error.message })
      }
    }
    return { results }
  }

  app.post(
    '/v1/provision',
    { config: { access: operate('tenant') }, schema: { tags, summary: 'Create clusters from flavors (mexosagent shape); the scheduler gives them machines', body: ProvisionBody, response: { 200: ProvisionResultsResponse, ...adminErrors } } },
    async (request) =>
      eachItem(request.body.provisions, async ({ tenant: requested, ...document }) => {
        const tenant = tenancyOf(request).ownerForCreate(requested)
        await clusters.createCluster(document)
        await tenancyOf(request).stampCluster(document.name, tenant)
      }),
  )

  app.post(
    '/v1/destroy',
    { config: { access: operate('tenant') }, schema: { tags, summary: 'Destroy clusters by name (mexosagent shape); their machines return to discovered', body: DestroyBody, response: { 200: ProvisionResultsResponse, ...adminErrors } } },
    async (request) =>
      eachItem(request.body.provisions, async (item) => {
        // Another tenant's cluster answers as one that does not exist.
        await tenancyOf(request).require({ kind: 'cluster', name: item.name })
        await clusters.destroyCluster(item.name)
      }),
  )
}
