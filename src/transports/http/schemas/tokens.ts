import Type from 'typebox'
import { ROLES } from '../../../core/access/roles.ts'
import { TENANT_PATTERN } from '../../../core/access/tenancy.ts'
import type { TokenInfo } from '../../../core/access/token-service.ts'
import { Nullable } from '../../../lib/nullable.ts'

const TokenName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$', description: 'Letters, digits, ".", "_", "-"; at most 63.' })
export const TokenResponse = Type.Object({
  name: Type.String(),
  role: Type.Enum([...ROLES]),
  tenant: Nullable(Type.String()),
  created_at: Type.String(),
  last_used_at: Nullable(Type.String({ description: 'Recorded at most once a minute.' })),
})
export const CreateTokenBody = Type.Object(
  {
    name: TokenName,
    role: Type.Enum([...ROLES], { description: 'viewer: reads; operator: also changes machines, clusters, releases, charts, rollouts, locks, DNS, proxy routes; admin: everything.' }),
    tenant: Type.Optional(Nullable(Type.String({ pattern: TENANT_PATTERN, description: "The tenant the token acts for: it sees and changes that tenant's clusters, machines and releases only. Absent or null: the whole fleet." }))),
  },
  { additionalProperties: false },
)

export const toTokenResponse = (token: TokenInfo) => ({ name: token.name, role: token.role, tenant: token.tenant, created_at: token.createdAt, last_used_at: token.lastUsedAt })
