/**
 * Restores a snapshot (from GET /api/v1/backup or POST /backup/db) as the engine's database, offline.
 *
 * Order of work: check the snapshot (integrity, foreign keys, a Slipway schema this engine knows),
 * make sure no engine has the database open (the engines' lock file, held until the end, and SQLite's
 * own locks), fold the current database's WAL into it and keep it aside as
 * `<db>.before-restore-<ts>`, then install a copy of the snapshot with one atomic rename.
 * Any failure before that rename leaves the current database exactly as it was.
 */
import { chmodSync, closeSync, copyFileSync, existsSync, fsyncSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { DatabaseLockedError, describeHolder, lockDatabase, type DatabaseLock } from './database-lock.ts'
import { MIGRATIONS_DIR } from './db.ts'
import { SecretBox } from './secret-box.ts'

export type RestoreErrorCode =
  | 'SNAPSHOT_NOT_FOUND'
  | 'SNAPSHOT_UNREADABLE'
  | 'SNAPSHOT_CORRUPT'
  | 'SNAPSHOT_NOT_SLIPWAY'
  | 'SNAPSHOT_TOO_NEW'
  | 'SNAPSHOT_OTHER_SECRETS_KEY'
  | 'DATABASE_IN_USE'

export class RestoreError extends Error {
  constructor(
    readonly code: RestoreErrorCode,
    message: string,
  ) {
    super(message)
    this.name = 'RestoreError'
  }
}

export interface RestoreOptions {
  snapshotFile: string
  /** The engine's database (`database.path`, by default `<dataDir>/slipway.db`). */
  databaseFile: string
  /**
   * The engine's secrets key file: when given, the snapshot's sealed values must open with it (an
   * engine cannot start on a database whose secrets it cannot read).
   */
  secretsKeyFile?: string
  now?: Date
}

export interface RestoreResult {
  /** Where the replaced database was kept; undefined when there was none. */
  previousDatabase?: string
  latestMigration: string
  migrations: number
}

/** Migration names this engine knows (the files in migrations/, without extension). */
export function knownMigrations(): string[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((file) => /\.(ts|js)$/.test(file) && !file.endsWith('.d.ts'))
    .map((file) => file.replace(/\.(ts|js)$/, ''))
    .sort()
}

/** Checks a snapshot without touching anything; throws RestoreError with what is wrong. */
export function checkSnapshot(snapshotFile: string, secretsKeyFile?: string): { latestMigration: string; migrations: number } {
  if (!existsSync(snapshotFile)) throw new RestoreError('SNAPSHOT_NOT_FOUND', `snapshot ${snapshotFile} does not exist`)
  let snapshot: SQLite.Database
  try {
    snapshot = new SQLite(snapshotFile, { readonly: true, fileMustExist: true })
    snapshot.prepare('select count(*) from sqlite_master').get()
  } catch (error) {
    throw new RestoreError('SNAPSHOT_UNREADABLE', `${snapshotFile} is not a SQLite database: ${(error as Error).message}`)
  }
  try {
    const integrity = snapshot.pragma('integrity_check', { simple: false }) as { integrity_check: string }[]
    if (integrity.length !== 1 || integrity[0]!.integrity_check !== 'ok') {
      throw new RestoreError('SNAPSHOT_CORRUPT', `${snapshotFile} fails PRAGMA integrity_check: ${integrity.slice(0, 5).map((row) => row.integrity_check).join('; ')}`)
    }
    const dangling = snapshot.pragma('foreign_key_check') as { table: string; parent: string }[]
    if (dangling.length > 0) {
      const first = dangling[0]!
      throw new RestoreError('SNAPSHOT_CORRUPT', `${snapshotFile} has ${dangling.length} row(s) whose foreign key points nowhere (first: ${first.table} -> ${first.parent})`)
    }
    const tables = new Set((snapshot.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map((row) => row.name))
    if (!tables.has('kysely_migration') || !tables.has('machines')) {
      throw new RestoreError('SNAPSHOT_NOT_SLIPWAY', `${snapshotFile} is a SQLite database but not Slipway's (no kysely_migration or machines table)`)
    }
    const applied = (snapshot.prepare('select name from kysely_migration order by name').all() as { name: string }[]).map((row) => row.name)
    const known = new Set(knownMigrations())
    const unknown = applied.filter((name) => !known.has(name))
    if (unknown.length > 0) {
      throw new RestoreError('SNAPSHOT_TOO_NEW', `${snapshotFile} was written by a newer engine (migrations this engine does not have: ${unknown.join(', ')}); restore it with that version or a newer one`)
    }
    if (applied.length === 0) throw new RestoreError('SNAPSHOT_NOT_SLIPWAY', `${snapshotFile} has no applied migration`)
    if (secretsKeyFile) checkSealedValuesOpen(snapshot, snapshotFile, secretsKeyFile)
    return { latestMigration: applied[applied.length - 1]!, migrations: applied.length }
  } finally {
    snapshot.close()
  }
}

/** The engine's own SSH key is sealed in every database that has run once: it tells whether the key fits. */
function checkSealedValuesOpen(snapshot: SQLite.Database, snapshotFile: string, secretsKeyFile: string): void {
  if (!existsSync(secretsKeyFile)) {
    throw new RestoreError('SNAPSHOT_OTHER_SECRETS_KEY', `secrets key file ${secretsKeyFile} does not exist: put the key file the snapshot's engine used there before restoring`)
  }
  const box = SecretBox.fromKeyFile(secretsKeyFile)
  const sealed = snapshot.prepare("select sealed from engine_secrets where name = 'engine-ssh-key'").get() as { sealed: Buffer } | undefined
  if (!sealed) return
  try {
    // The context the engine seals its SSH key with (storage/engine-ssh-key.ts).
    box.open(sealed.sealed, 'engine_secrets:engine-ssh-key')
  } catch {
    throw new RestoreError(
      'SNAPSHOT_OTHER_SECRETS_KEY',
      `the secrets in ${snapshotFile} do not open with ${secretsKeyFile}: restore the key file of the engine that took the snapshot (backups never contain it)`,
    )
  }
}

/**
 * Takes SQLite's exclusive lock on the database: it fails while any connection, in this process or
 * another, has the database open (an engine holds a shared WAL lock as long as it runs). A crashed
 * engine's locks die with its process, so nothing stale can block a restore.
 */
function lockExclusively(databaseFile: string): SQLite.Database {
  const database = new SQLite(databaseFile, { fileMustExist: true })
  try {
    database.pragma('busy_timeout = 0')
    database.pragma('locking_mode = EXCLUSIVE')
    database.exec('BEGIN EXCLUSIVE')
    database.exec('COMMIT')
    return database
  } catch (error) {
    database.close()
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
      throw new RestoreError('DATABASE_IN_USE', `${databaseFile} is open in a running engine (or another program): stop the engine, then restore`)
    }
    throw error
  }
}

const SIDE_FILES = ['-wal', '-shm', '-journal']

export function restoreDatabase(options: RestoreOptions): RestoreResult {
  const snapshotFile = path.resolve(options.snapshotFile)
  const databaseFile = path.resolve(options.databaseFile)
  const checked = checkSnapshot(snapshotFile, options.secretsKeyFile)
  const stamp = (options.now ?? new Date()).toISOString().replace(/[:.]/g, '-')
  const folder = path.dirname(databaseFile)
  const lock = lockAgainstEngines(databaseFile)
  try {
    return replaceDatabase(snapshotFile, databaseFile, folder, stamp, checked)
  } finally {
    lock.release()
  }
}

/** The engines' lock (database-lock.ts), held for the whole restore: no engine starts on a half-replaced database. */
function lockAgainstEngines(databaseFile: string): DatabaseLock {
  try {
    return lockDatabase(databaseFile, 'restore')
  } catch (error) {
    if (!(error instanceof DatabaseLockedError)) throw error
    throw new RestoreError('DATABASE_IN_USE', `${databaseFile} is ${describeHolder(error.holder)}: stop it, then restore`)
  }
}

function replaceDatabase(snapshotFile: string, databaseFile: string, folder: string, stamp: string, checked: { latestMigration: string; migrations: number }): RestoreResult {
  // Copy first, under a name no engine opens: the install below is then one rename.
  const incoming = path.join(folder, `.${path.basename(databaseFile)}.restoring-${stamp}`)
  copyFileSync(snapshotFile, incoming)
  // The restored database is the engine user's alone, whatever mode the snapshot file had.
  chmodSync(incoming, 0o600)
  const handle = openSync(incoming, 'r+')
  fsyncSync(handle)
  closeSync(handle)

  let previousDatabase: string | undefined
  try {
    if (existsSync(databaseFile)) {
      const current = lockExclusively(databaseFile)
      // Committed writes may still sit in the WAL of a killed engine: fold them into the file kept aside.
      try {
        current.pragma('wal_checkpoint(TRUNCATE)')
      } finally {
        current.close()
      }
      previousDatabase = `${databaseFile}.before-restore-${stamp}`
      renameSync(databaseFile, previousDatabase)
      for (const suffix of SIDE_FILES) {
        if (existsSync(databaseFile + suffix)) renameSync(databaseFile + suffix, previousDatabase + suffix)
      }
    } else {
      // A WAL without its database must not be replayed into the snapshot.
      for (const suffix of SIDE_FILES) rmSync(databaseFile + suffix, { force: true })
    }
    renameSync(incoming, databaseFile)
  } catch (error) {
    rmSync(incoming, { force: true })
    throw error
  }
  const folderHandle = openSync(folder, 'r')
  fsyncSync(folderHandle)
  closeSync(folderHandle)
  return { ...(previousDatabase ? { previousDatabase } : {}), latestMigration: checked.latestMigration, migrations: checked.migrations }
}
