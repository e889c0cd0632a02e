import Type from 'typebox'
import { TENANT_PATTERN } from '../../../core/access/tenancy.ts'
import { ClusterDocument } from '../../../core/clusters/cluster.ts'

// mexosagent's POST /v1/provision and /v1/destroy.

const MAX_PROVISIONS = 100
// mexosagent's items name their tenant: a tenant token may name only its own; a fleet token any (or none).
const Tenant = Type.Optional(Type.String({ pattern: TENANT_PATTERN, description: 'The tenant that owns the cluster.' }))
const ProvisionItem = Type.Object({ ...ClusterDocument.properties, tenant: Tenant }, { additionalProperties: false })
export const ProvisionBody = Type.Object({ provisions: Type.Array(ProvisionItem, { minItems: 1, maxItems: MAX_PROVISIONS }) }, { additionalProperties: false })
// mexosagent sends the same item shape to destroy; only the name matters.
const DestroyItem = Type.Object({ ...ClusterDocument.properties, flavor: Type.Optional(ClusterDocument.properties.flavor), tenant: Tenant }, { additionalProperties: false })
export const DestroyBody = Type.Object({ provisions: Type.Array(DestroyItem, { minItems: 1, maxItems: MAX_PROVISIONS }) }, { additionalProperties: false })
export const ProvisionResultsResponse = Type.Object({
  results: Type.Array(
    Type.Object({
      name: Type.String(),
      ok: Type.Boolean(),
      code: Type.Optional(Type.String({ description: 'Stable error code when ok is false, e.g. FLAVOR_NOT_FOUND.' })),
      message: Type.Optional(Type.String()),
    }),
  ),
})
