import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ClusterDocument } from '../../../core/clusters/cluster.ts'
import type { ClusterService } from '../../../core/clusters/cluster-service.ts'
import { SlipwayError } from '../../../core/errors.ts'
import { adminErrors } from '../schemas/common.ts'
import { TENANT_PATTERN } from '../../../core/access/tenancy.ts'
import { tenancyOf } from '../auth.ts'
import { operate } from '../../../core/access/route-policy.ts'

const MAX_PROVISIONS = 100
// mexosagent's items name their tenant: a tenant token may name only its own; a fleet token any (or none).
const Tenant = Type.Optional(Type.String({ pattern: TENANT_PATTERN, description: 'The tenant that owns the cluster.' }))
const ProvisionItem = Type.Object({ ...ClusterDocument.properties, tenant: Tenant }, { additionalProperties: false })
const ProvisionBody = Type.Object({ provisions: Type.Array(ProvisionItem, { minItems: 1, maxItems: MAX_PROVISIONS }) }, { additionalProperties: false })
// mexosagent sends the same item shape to destroy; only the name matters.
const DestroyItem = Type.Object({ ...ClusterDocument.properties, flavor: Type.Optional(ClusterDocument.properties.flavor), tenant: Tenant }, { additionalProperties: false })
const DestroyBody = Type.Object({ provisions: Type.Array(DestroyItem, { minItems: 1, maxItems: MAX_PROVISIONS }) }, { additionalProperties: false })
const ResultsResponse = Type.Object({
  results: Type.Array(
    Type.Object({
      name: Type.String(),
      ok: Type.Boolean(),
      code: Type.Optional(Type.String({ description: 'Stable error code when ok is false, e.g. FLAVOR_NOT_FOUND.' })),
      message: Type.Optional(Type.String()),
    }),
  ),
})
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
    { config: { access: operate('tenant') }, schema: { tags, summary: 'Create clusters from flavors (mexosagent shape); the scheduler gives them machines', body: ProvisionBody, response: { 200: ResultsResponse, ...adminErrors } } },
    async (request) =>
      eachItem(request.body.provisions, async ({ tenant: requested, ...document }) => {
        const tenant = tenancyOf(request).ownerForCreate(requested)
        await clusters.createCluster(document)
        await tenancyOf(request).stampCluster(document.name, tenant)
      }),
  )

  app.post(
    '/v1/destroy',
    { config: { access: operate('tenant') }, schema: { tags, summary: 'Destroy clusters by name (mexosagent shape); their machines return to discovered', body: DestroyBody, response: { 200: ResultsResponse, ...adminErrors } } },
    async (request) =>
      eachItem(request.body.provisions, async (item) => {
        // Another tenant's cluster answers as one that does not exist.
        await tenancyOf(request).require({ kind: 'cluster', name: item.name })
        await clusters.destroyCluster(item.name)
      }),
  )
}
