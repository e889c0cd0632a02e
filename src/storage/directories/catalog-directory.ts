import { Catalog, type CatalogSource } from '../../core/boot/catalog.ts'
import type { Db } from '../database.ts'
import { listGroups } from '../repositories/groups.ts'
import { listProfiles } from '../repositories/profiles.ts'
import { listTemplates } from '../repositories/templates.ts'
import { inTransaction } from '../transactions.ts'

/** The catalog (groups, profiles, templates) in memory; `refresh` after every write swaps in a new snapshot. */
export class CatalogDirectory implements CatalogSource {
  private catalog: Catalog = new Catalog([], [], [])

  constructor(private readonly db: Db) {}

  current(): Catalog {
    return this.catalog
  }

  async refresh(): Promise<void> {
    // One read transaction so that groups, profiles and templates come from the same moment.
    this.catalog = await inTransaction(this.db, async (trx) => {
      const [groups, profiles, templates] = [await listGroups(trx), await listProfiles(trx), await listTemplates(trx)]
      return new Catalog(groups, profiles, templates)
    })
  }
}
