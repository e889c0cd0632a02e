import { chmodSync, closeSync, mkdirSync, openSync, promises as fs, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import SQLite from 'better-sqlite3'
import { Kysely, PostgresAdapter, PostgresDialect, sql, SqliteDialect } from 'kysely'
import { FileMigrationProvider, Migrator } from 'kysely/migration'
import pg from 'pg'
import type { Database, Db } from './database.ts'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url))

/** Which database the engine keeps its state in (config `database.*`); SQLite is the default. */
export interface DatabaseSettings {
  driver: 'sqlite' | 'postgres'
  /** SQLite file (or `:memory:`). */
  path: string
  /** `postgres://user:password@host:port/database`, for driver `postgres`. */
  url: string
  /** Connections to PostgreSQL at most. */
  poolSize: number
}

/**
 * Opens the configured store: a SQLite file (a path alone means SQLite) or a PostgreSQL database
 * through a connection pool. Both run the same migrations and repositories.
 */
export function openStore(settings: DatabaseSettings | string): Db {
  if (typeof settings === 'string') return openSqlite(settings)
  return settings.driver === 'postgres' ? openPostgres(settings.url, settings.poolSize) : openSqlite(settings.path)
}

/**
 * The embedded database: WAL so that readers never wait for the writer and a crash loses no
 * committed write, foreign keys on (SQLite leaves them off per connection), and a busy timeout so
 * that a second process (the CLI, a backup) does not fail on a momentary lock.
 */
function openSqlite(file: string): Db {
  if (file !== ':memory:') ownerOnly(file)
  const sqlite = new SQLite(file)
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('busy_timeout = 5000')
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) })
}

/**
 * The database holds sealed secrets and the whole inventory: its file is the engine user's alone
 * (0600, in a 0700 folder when the engine makes it). SQLite gives its -wal and -shm files the
 * database file's mode, and an older database's files are brought to 0600 as well.
 */
function ownerOnly(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  try {
    closeSync(openSync(file, 'wx', 0o600))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  for (const companion of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      if ((statSync(companion).mode & 0o077) !== 0) chmodSync(companion, 0o600)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
  }
}

/** int8 (bigint, count(*)) arrives as text from pg; every int8 here (byte sizes, counts) fits a double exactly. */
const INT8_OID = 20
const storeTypes: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) => (oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)),
}

function parseInt8(text: string): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value)) throw new RangeError(`bigint ${text} does not fit a JavaScript number exactly`)
  return value
}

function openPostgres(url: string, poolSize: number): Db {
  // The parser is the pool's own: other pg users in the process keep pg's defaults.
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types: storeTypes, application_name: 'slipway' })
  // A pooled connection the server dropped while idle (a restart, a failover) is discarded by the
  // pool and replaced on the next query; without a listener the 'error' event would end the process.
  pool.on('error', () => {})
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
}

/** True when the store (or a transaction of it) is PostgreSQL. */
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/** What the store is, safe for logs: a PostgreSQL URL loses its password and query string. */
export function describeDatabase(settings: DatabaseSettings): string {
  if (settings.driver !== 'postgres') return `sqlite:${settings.path}`
  try {
    const url = new URL(settings.url)
    return `${url.protocol}//${url.username ? `${decodeURIComponent(url.username)}@` : ''}${url.host}${url.pathname}`
  } catch {
    return 'postgres (unparsable URL)'
  }
}

/**
 * SQLite compares text byte by byte; PostgreSQL by the database's collation. Listings ordered by name
 * come out the same only under the C collation: a warning when the database was created otherwise.
 */
export async function collationWarning(store: Db): Promise<string | undefined> {
  if (!isPostgres(store)) return undefined
  const { rows } = await sql<{ collation: string }>`select datcollate as collation from pg_database where datname = current_database()`.execute(store)
  const collation = rows[0]?.collation ?? ''
  if (['C', 'POSIX', 'C.UTF-8', 'C.utf8', 'ucs_basic'].includes(collation)) return undefined
  return `the PostgreSQL database uses collation "${collation}": listings sorted by name may order differently than with SQLite; create the database with LC_COLLATE 'C' (createdb --locale=C --template=template0) for byte order`
}

/** Resolves when the database answers a trivial query (the readiness probe). */
export async function pingDatabase(store: Db): Promise<void> {
  await sql`select 1`.execute(store)
}

/** Applies every pending migration in `migrations/`; returns the names applied now. */
export async function migrateToLatest(store: Db): Promise<string[]> {
  // On PostgreSQL the migrator holds an advisory lock and runs in one transaction: replicas starting
  // together migrate once, the others wait and find nothing left to do.
  const migrator = new Migrator({
    db: store,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }),
  })
  const { error, results } = await migrator.migrateToLatest()
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`)
  }
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName)
}
