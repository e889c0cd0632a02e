import type { OwnedObject, TenantDirectory } from '../../core/access/tenancy.ts'
import type { Db } from '../database.ts'

/** The core's tenant directory over kysely: clusters and releases carry a tenant, machines follow their cluster. */
export function tenantDirectory(db: Db): TenantDirectory {
  return {
    tenantOf: async (object: OwnedObject) => {
      switch (object.kind) {
        case 'cluster':
          return (await db.selectFrom('cluster_registry').select('tenant').where('name', '=', object.name).executeTakeFirst())?.tenant
        case 'release':
          return (await db.selectFrom('releases').select('tenant').where('namespace', '=', object.namespace).where('name', '=', object.name).executeTakeFirst())?.tenant
        case 'token':
          return (await db.selectFrom('api_tokens').select('tenant').where('name', '=', object.name).executeTakeFirst())?.tenant
        case 'machine': {
          if (!(await db.selectFrom('machines').select('uuid').where('uuid', '=', object.uuid).executeTakeFirst())) return undefined
          const member = await db
            .selectFrom('cluster_members')
            .innerJoin('cluster_registry', 'cluster_registry.name', 'cluster_members.cluster')
            .select('cluster_registry.tenant')
            .where('cluster_members.machine_uuid', '=', object.uuid)
            .executeTakeFirst()
          // A machine in no cluster is the fleet's.
          return member ? member.tenant : null
        }
      }
    },
    clusterTenants: async () => new Map((await db.selectFrom('cluster_registry').select(['name', 'tenant']).execute()).map((row) => [row.name, row.tenant])),
    machineTenants: async () =>
      new Map(
        (
          await db
            .selectFrom('cluster_members')
            .innerJoin('cluster_registry', 'cluster_registry.name', 'cluster_members.cluster')
            .select(['cluster_members.machine_uuid', 'cluster_registry.tenant'])
            .execute()
        ).map((row) => [row.machine_uuid, row.tenant]),
      ),
    stampCluster: async (name, tenant) => {
      await db.updateTable('cluster_registry').set({ tenant }).where('name', '=', name).execute()
    },
  }
}
