import { forbidden } from '../errors.ts'

/**
 * Roles, weakest first: a viewer reads; an operator also changes machines, clusters, releases,
 * charts, rollouts, locks, DNS, proxy routes and runs the scheduler; an admin may do everything,
 * including tokens, content (groups, profiles, templates), the audit log and backups.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const
export type Role = (typeof ROLES)[number]

/** What a route does, as far as authorization cares. */
export const ACCESS_LEVELS = ['read', 'operate', 'administer'] as const
export type AccessLevel = (typeof ACCESS_LEVELS)[number]

/** The weakest role that holds each access level. */
export const ROLE_NEEDED: Record<AccessLevel, Role> = { read: 'viewer', operate: 'operator', administer: 'admin' }

/** The identity behind a token: its name, role and tenant (null: the whole fleet). */
export interface Principal {
  name: string
  role: Role
  tenant: string | null
}

export const mayAccess = (role: Role, level: AccessLevel): boolean => ROLES.indexOf(role) >= ROLES.indexOf(ROLE_NEEDED[level])

/** 403 FORBIDDEN naming the role needed, unless the principal's role holds the level. */
export function requireLevel(principal: Principal, level: AccessLevel): void {
  if (mayAccess(principal.role, level)) return
  const needed = ROLE_NEEDED[level]
  throw forbidden('FORBIDDEN', `this call needs the ${needed} role${needed === 'admin' ? '' : ' or higher'}; token "${principal.name}" has the ${principal.role} role`, { required_role: needed, role: principal.role })
}
