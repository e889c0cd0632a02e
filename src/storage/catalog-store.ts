import { Catalog, type CatalogSource } from '../core/boot/catalog.ts'
import type { Store } from './db.ts'
import { listGroups } from './repositories/groups.ts'
import { listProfiles } from './repositories/profiles.ts'
import { listTemplates } from './repositories/templates.ts'
import { inTransaction } from './transactions.ts'

/** Keeps the current catalog in memory; `refresh` after every write swaps in a new snapshot. */
export class CatalogStore implements CatalogSource {
  private catalog: Catalog = new Catalog([], [], [])

  constructor(private readonly db: Store) {}

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
