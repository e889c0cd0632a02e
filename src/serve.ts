import { chmodSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { ConfigError, loadConfig, type ConfigSources } from './config.ts'
import { createEngine, type Engine } from './engine.ts'
import { ContentFolderError } from './adapters/content/content-folders.ts'
import { ListenerError } from './lib/listener-error.ts'
import { createLogger } from './lib/logger.ts'
import { DatabaseLockedError, lockDatabase, type DatabaseLock } from './storage/database-lock.ts'
import { describeDatabase } from './storage/db.ts'

/**
 * Runs the engine until SIGTERM or SIGINT (then closes it gracefully and exits): what `npm start`
 * and `slipway serve` both do. Resolves once the engine is serving; rejects, with everything it had
 * started closed again, when the database is another engine's or a listener cannot open.
 */
export async function serve(sources: ConfigSources = {}): Promise<void> {
  const config = loadConfig(sources)
  const logger = createLogger(config.log.level)
  // One engine per SQLite file, taken before anything opens it (PostgreSQL replicas share theirs by design).
  const lock = config.database.driver === 'sqlite' && config.database.path !== ':memory:' ? lockDatabase(config.database.path, 'engine') : undefined

  // A signal that arrives while the engine starts is kept and acted on once it can close gracefully.
  let requested: string | undefined
  let stop = (signal: string) => void (requested ??= signal)
  const onSignal = (signal: NodeJS.Signals) => stop(signal)
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  const giveUp = async (engine: Engine | undefined) => {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    await closeAfterFailedStart(engine, lock, logger)
  }

  let engine: Engine
  try {
    engine = await createEngine(config, logger)
  } catch (error) {
    await giveUp(undefined)
    throw error
  }
  if (engine.generatedAdminToken) handOverGeneratedToken(engine.generatedAdminToken, config.dataDir, logger)
  let address: string
  try {
    address = await engine.start()
  } catch (error) {
    await giveUp(engine)
    throw error
  }
  logger.info({ address, database: describeDatabase(config.database), docs: `${address}/apidocs` }, 'slipway is serving')

  let stopping = false
  stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    setTimeout(() => process.exit(1), 10_000).unref()
    void engine
      .close()
      .then(() => {
        lock?.release()
        process.exit(0)
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'shutdown failed')
        process.exit(1)
      })
  }
  if (requested) stop(requested)
}

/** Closes what a start that failed had opened; a failure to close must not hide why the start failed. */
async function closeAfterFailedStart(engine: Engine | undefined, lock: DatabaseLock | undefined, logger: ReturnType<typeof createLogger>): Promise<void> {
  try {
    await engine?.close()
  } catch (error) {
    logger.warn({ err: error }, 'closing the engine after a failed start failed')
  } finally {
    lock?.release()
  }
}

/**
 * What to print when the engine cannot start: one line for what an operator fixes by hand (a bad
 * configuration or content folder, a listener that cannot open, a database another engine holds),
 * else the stack.
 */
export function startupFailureMessage(error: unknown): string {
  if (error instanceof ConfigError || error instanceof ContentFolderError) return `slipway: ${error.message}\n`
  if (error instanceof ListenerError || error instanceof DatabaseLockedError) return `slipway: cannot start: ${error.message}\n`
  return `slipway: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`
}

/** A start-up failure's stable code: what a supervisor or a log query matches on. */
export function startupFailureCode(error: unknown): string {
  if (error instanceof ConfigError) return 'CONFIG_INVALID'
  if (error instanceof ContentFolderError) return 'CONTENT_INVALID'
  if (error instanceof DatabaseLockedError) return error.code
  if (error instanceof ListenerError) return /\((E[A-Z_]+)\)/.exec(error.reason)?.[1] ?? 'LISTENER_FAILED'
  return 'START_FAILED'
}

/**
 * Tells why the engine could not start, both ways it is read: one JSON line on stdout at level fatal,
 * with a stable code, like every other line there (a log shipper or `journalctl -o json` sees it), and
 * the line for a person on stderr.
 */
export function reportStartupFailure(error: unknown, stderr: { write(text: string): unknown } = process.stderr): void {
  const message = startupFailureMessage(error).replace(/^slipway: /, '').trimEnd()
  const unexpected = !(error instanceof ConfigError || error instanceof ContentFolderError || error instanceof ListenerError || error instanceof DatabaseLockedError)
  createLogger('info').fatal({ code: startupFailureCode(error), ...(unexpected && error instanceof Error ? { err: error } : {}) }, unexpected ? message.split('\n')[0]! : message)
  stderr.write(startupFailureMessage(error))
}

/**
 * The admin token generated at the first start, shown once and never logged (the store keeps just its
 * SHA-256): on the terminal when standard error is one; under a service manager, whose journal keeps
 * both output streams, in a file only the engine's user can read, which the log names.
 */
function handOverGeneratedToken(token: string, dataDir: string, logger: ReturnType<typeof createLogger>): void {
  const usage = 'Use it as "Authorization: Bearer <token>" or SLIPWAY_TOKEN for the slipway CLI, or set auth.adminToken / SLIPWAY_AUTH_ADMIN_TOKEN.'
  if (process.stderr.isTTY) {
    process.stderr.write(`\n  Slipway generated the admin API token (shown only now; keep it):\n\n    ${token}\n\n  ${usage}\n\n`)
    return
  }
  const file = path.join(dataDir, GENERATED_TOKEN_FILE)
  writeFileSync(file, `${token}\n`, { mode: 0o600 })
  chmodSync(file, 0o600)
  logger.warn({ file }, `the generated admin API token is in ${file} (mode 0600): read it, keep it elsewhere and delete the file. ${usage}`)
}

/** Where the generated admin token is written when no terminal shows it. */
export const GENERATED_TOKEN_FILE = 'generated-admin-token'
