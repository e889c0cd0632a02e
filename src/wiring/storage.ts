import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { readContentFolders } from '../adapters/content/content-folders.ts'
import { syncFolderContent } from '../storage/content-sync.ts'
import { collationWarning, migrateToLatest, openStore } from '../storage/db.ts'
import type { Db } from '../storage/database.ts'
import { SecretBox } from '../storage/secret-box.ts'

export interface EngineStorage {
  store: Db
  /** Seals secrets at rest (cluster PKI, kubeconfigs, the engine's SSH key, UI sessions). */
  secrets: SecretBox
}

/**
 * The store the engine runs on: opened, migrated to the latest schema, and holding what the content
 * folders hold (groups, profiles, templates; what the API changed takes precedence). Closed again
 * when any of that fails.
 */
export async function openStorage(config: Config, logger: Logger): Promise<EngineStorage> {
  const store = openStore(config.database)
  try {
    const applied = await migrateToLatest(store)
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated')
    const collation = await collationWarning(store)
    if (collation) logger.warn(collation)

    const content = await readContentFolders(config.content)
    const sync = await syncFolderContent(store, content, new Date().toISOString())
    logger.info(sync.imported, 'content folders loaded')
    for (const item of sync.shadowed) logger.warn({ item }, 'file ignored: this object was changed through the API, which takes precedence')
    for (const item of sync.removed) logger.info({ item }, 'removed: its file no longer exists')

    return { store, secrets: SecretBox.fromKeyFile(config.secrets.keyFile) }
  } catch (error) {
    await store.destroy()
    throw error
  }
}
