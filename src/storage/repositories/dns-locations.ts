import type { DnsLocationRepository } from '../../core/dns/dns-locations.ts'
import type { Db } from '../database.ts'
import { inTransaction } from '../transactions.ts'

/** The location table over kysely. */
export function dnsLocationRepository(store: Db): DnsLocationRepository {
  return {
    list: async () => await store.selectFrom('dns_locations').selectAll().orderBy('subnet').execute(),
    replace: async (locations) => {
      await inTransaction(store, async (trx) => {
        await trx.deleteFrom('dns_locations').execute()
        for (let start = 0; start < locations.length; start += 500) await trx.insertInto('dns_locations').values(locations.slice(start, start + 500)).execute()
      })
    },
  }
}
