import { ConfigError, loadConfig, type ConfigSources } from './config.ts'
import { createEngine } from './engine.ts'
import { ContentFolderError } from './adapters/content/content-folders.ts'
import { createLogger } from './lib/logger.ts'
import { describeDatabase } from './storage/db.ts'

/**
 * Runs the engine until SIGTERM or SIGINT (then closes it gracefully and exits): what `npm start`
 * and `slipway serve` both do. Resolves once the engine is serving.
 */
export async function serve(sources: ConfigSources = {}): Promise<void> {
  const config = loadConfig(sources)
  const logger = createLogger(config.log.level)
  const engine = await createEngine(config, logger)
  if (engine.generatedAdminToken) {
    // Shown once, on the terminal only: the store keeps just its SHA-256.
    process.stderr.write(
      `\n  Slipway generated the admin API token (shown only now; keep it):\n\n    ${engine.generatedAdminToken}\n\n` +
        `  Use it as "Authorization: Bearer <token>" or SLIPWAY_TOKEN for the slipway CLI, or set auth.adminToken / SLIPWAY_AUTH_ADMIN_TOKEN.\n\n`,
    )
  }
  const address = await engine.start()
  logger.info({ address, database: describeDatabase(config.database), docs: `${address}/apidocs` }, 'slipway is serving')

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    const timer = setTimeout(() => process.exit(1), 10_000).unref()
    await engine.close()
    clearTimeout(timer)
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
}

/** What to print when the engine cannot start: the problems of a bad configuration or content folder, else the stack. */
export function startupFailureMessage(error: unknown): string {
  if (error instanceof ConfigError || error instanceof ContentFolderError) return `slipway: ${error.message}\n`
  return `slipway: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`
}
