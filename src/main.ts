import { ConfigError, loadConfig } from './config.ts'
import { createEngine } from './engine.ts'
import { ContentFolderError } from './adapters/content/content-folders.ts'
import { createLogger } from './lib/logger.ts'

async function main(): Promise<void> {
  const config = loadConfig()
  const logger = createLogger(config.log.level)
  const engine = await createEngine(config, logger)
  if (engine.generatedAdminToken) {
    // Shown once, on the terminal only: the store keeps just its SHA-256.
    process.stderr.write(
      `\n  Slipway generated the admin API token (shown only now; keep it):\n\n    ${engine.generatedAdminToken}\n\n` +
        `  Use it as "Authorization: Bearer <token>", or set auth.adminToken / SLIPWAY_AUTH_ADMIN_TOKEN.\n\n`,
    )
  }
  const address = await engine.start()
  logger.info({ address, database: config.database.path, docs: `${address}/apidocs` }, 'slipway is serving')

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

main().catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof ContentFolderError) {
    process.stderr.write(`slipway: ${error.message}\n`)
  } else {
    process.stderr.write(`slipway: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  }
  process.exit(1)
})
