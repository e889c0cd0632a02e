/**
 * The store's two backends for tests: the same test body runs on a SQLite file and on a fresh
 * PostgreSQL database (test/helpers/postgres.ts), and engines started by `startTestEngine` run on
 * PostgreSQL when `SLIPWAY_TEST_BACKEND=postgres`.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import { migrateToLatest, openStore, type DatabaseSettings } from '../../src/storage/db.ts'
import type { Db } from '../../src/storage/database.ts'
import { freshPostgresDatabase, postgresAvailable } from './postgres.ts'

export type BackendName = 'sqlite' | 'postgres'

export const BACKENDS: readonly BackendName[] = ['sqlite', 'postgres']

export interface TestDatabase {
  settings: DatabaseSettings
  /** Opens one more store on the same database (a second engine, a second process's view). */
  open(): Db
}

/**
 * A new empty database of `backend`, removed when `t` ends; stores opened through it are closed
 * first. Tests that call `open()` themselves may close earlier: closing twice is harmless.
 */
export async function testDatabase(t: Test, backend: BackendName): Promise<TestDatabase> {
  const opened: Db[] = []
  let settings: DatabaseSettings
  if (backend === 'postgres') {
    const database = await freshPostgresDatabase()
    settings = { driver: 'postgres', url: database.url, path: '', poolSize: 10 }
    t.teardown(async () => {
      for (const store of opened.splice(0)) await store.destroy()
      await database.drop()
    })
  } else {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-store-'))
    settings = { driver: 'sqlite', url: '', path: path.join(dir, 'slipway.db'), poolSize: 1 }
    t.teardown(async () => {
      for (const store of opened.splice(0)) await store.destroy()
      rmSync(dir, { recursive: true, force: true })
    })
  }
  return {
    settings,
    open: () => {
      const store = openStore(settings)
      opened.push(store)
      return store
    },
  }
}

/** A migrated store on a new database of `backend`, closed and removed when `t` ends. */
export async function testStore(t: Test, backend: BackendName): Promise<Db> {
  const store = (await testDatabase(t, backend)).open()
  await migrateToLatest(store)
  return store
}

/**
 * Runs `body` once per backend as subtests named `<name> (<backend>)`. Without PostgreSQL here
 * (no server URL, no installation) its subtest is skipped, saying so.
 */
export function forEachBackend(t: Test, name: string, body: (t: Test, backend: BackendName) => Promise<void>): void {
  for (const backend of BACKENDS) {
    if (backend === 'postgres' && !postgresAvailable()) {
      t.test(`${name} (postgres)`, { skip: 'PostgreSQL is not installed and SLIPWAY_TEST_POSTGRES_URL is not set' }, async () => {})
      continue
    }
    t.test(`${name} (${backend})`, (t) => body(t, backend))
  }
}

/** The backend startTestEngine uses: `SLIPWAY_TEST_BACKEND` (sqlite by default). */
export function testEngineBackend(): BackendName {
  const wanted = process.env.SLIPWAY_TEST_BACKEND ?? 'sqlite'
  if (wanted !== 'sqlite' && wanted !== 'postgres') throw new Error(`SLIPWAY_TEST_BACKEND=${wanted}: expected sqlite or postgres`)
  return wanted
}

const enginesDatabases: { drop(): Promise<void> }[] = []
let dropOnExitRegistered = false

/**
 * The environment that points a test engine at its database: nothing for SQLite (a file in the data
 * folder), a fresh PostgreSQL database otherwise. A restart on the same data folder finds the same
 * database again (its URL is kept in the folder); the databases are dropped when the test process
 * has nothing left to do.
 */
export async function testEngineDatabaseEnv(dataDir: string): Promise<Record<string, string>> {
  if (testEngineBackend() !== 'postgres') return {}
  const urlFile = path.join(dataDir, 'test-postgres-url')
  let url: string
  if (existsSync(urlFile)) {
    url = readFileSync(urlFile, 'utf8').trim()
  } else {
    const database = await freshPostgresDatabase()
    url = database.url
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(urlFile, `${url}\n`)
    enginesDatabases.push(database)
    if (!dropOnExitRegistered) {
      dropOnExitRegistered = true
      process.on('beforeExit', () => {
        const dropping = enginesDatabases.splice(0)
        if (dropping.length) void Promise.allSettled(dropping.map((database) => database.drop()))
      })
    }
  }
  return { SLIPWAY_DATABASE_DRIVER: 'postgres', SLIPWAY_DATABASE_URL: url }
}
