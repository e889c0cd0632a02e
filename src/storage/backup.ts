/**
 * Online snapshots of the SQLite database, taken while the engine keeps serving and writing.
 *
 * Why `VACUUM INTO` and not the backup API (`db.backup()`): `VACUUM INTO` reads the whole database in
 * ONE read transaction, so the copy is the database as of one commit, and in WAL mode it never blocks
 * the engine's writer. The backup API copies page batches in separate steps and starts over whenever
 * another connection writes between two steps, so under a discovery storm it may never finish (unless
 * done in one step, which then gives the same guarantee as `VACUUM INTO` without its benefits). The
 * output of `VACUUM INTO` is also compacted and self-contained: no free pages, no -wal file beside it.
 *
 * The snapshot runs on a worker thread with its own connection: better-sqlite3 is synchronous, and a
 * large database must not stall the engine's event loop (DHCP, TFTP and HTTP share it).
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Worker } from 'node:worker_threads'

export interface Snapshot {
  /** The snapshot file (a complete SQLite database). */
  file: string
  bytes: number
  /** When the snapshot's read transaction began (ISO 8601 UTC): it holds every commit before. */
  takenAt: string
  /** The newest migration the snapshot's schema has. */
  latestMigration: string | null
  /** Removes the snapshot and its temporary folder (a no-op when `into` was given). */
  dispose(): void
}

/** The SQLite driver is loaded by path inside the worker: the worker's code is plain JavaScript. */
const DRIVER_PATH = createRequire(import.meta.url).resolve('better-sqlite3')

/** Runs in the worker: VACUUM INTO, then a quick check of what was written, and the schema's level. */
const SNAPSHOT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const SQLite = require(workerData.driverPath)
let source
try {
  source = new SQLite(workerData.databaseFile, { readonly: true, fileMustExist: true })
  source.pragma('busy_timeout = 10000')
  const takenAt = new Date().toISOString()
  source.prepare('VACUUM INTO ?').run(workerData.snapshotFile)
  source.close()
  source = undefined
  const copy = new SQLite(workerData.snapshotFile, { readonly: true, fileMustExist: true })
  const check = copy.pragma('quick_check', { simple: true })
  const hasMigrations = copy.prepare("select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'").get()
  const latest = hasMigrations ? copy.prepare('select name from kysely_migration order by name desc limit 1').get() : undefined
  copy.close()
  parentPort.postMessage({ ok: check === 'ok', check, takenAt, latestMigration: latest ? latest.name : null })
} catch (error) {
  if (source) source.close()
  parentPort.postMessage({ ok: false, error: String(error && error.message || error), code: error && error.code })
}
`

interface WorkerAnswer {
  ok: boolean
  check?: string
  takenAt?: string
  latestMigration?: string | null
  error?: string
  code?: string
}

export class BackupError extends Error {
  constructor(
    readonly code: 'BACKUP_FAILED' | 'BACKUP_NOT_SUPPORTED',
    message: string,
  ) {
    super(message)
    this.name = 'BackupError'
  }
}

export const snapshotFileName = (takenAt: string) => `slipway-${takenAt.replace(/[:.]/g, '-')}.sqlite3`

/**
 * Writes a consistent snapshot of `databaseFile`. Without `into` it goes to a fresh temporary folder
 * next to the database (same file system, no surprise about /tmp's size), removed by `dispose()`.
 */
export async function takeSnapshot(options: { databaseFile: string; into?: string }): Promise<Snapshot> {
  const { databaseFile } = options
  if (databaseFile === ':memory:') throw new BackupError('BACKUP_NOT_SUPPORTED', 'an in-memory database has no file to snapshot')
  let folder: string
  let temporary = false
  if (options.into) {
    folder = options.into
    mkdirSync(folder, { recursive: true, mode: 0o700 })
  } else {
    folder = mkdtempSync(path.join(path.dirname(databaseFile), '.snapshot-'))
    temporary = true
  }
  // The final name needs the time the read began: write under a provisional name, rename after.
  const provisional = path.join(folder, `.partial-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.sqlite3`)
  const removeAll = () => (temporary ? rmSync(folder, { recursive: true, force: true }) : rmSync(provisional, { force: true }))
  // A snapshot holds what the database holds: created 0600 before VACUUM INTO fills it (it takes an empty file).
  closeSync(openSync(provisional, 'wx', 0o600))
  let answer: WorkerAnswer
  try {
    answer = await runWorker({ driverPath: DRIVER_PATH, databaseFile, snapshotFile: provisional })
  } catch (error) {
    removeAll()
    throw new BackupError('BACKUP_FAILED', `snapshot of ${path.basename(databaseFile)} failed: ${(error as Error).message}`)
  }
  if (!answer.ok) {
    removeAll()
    const reason = answer.error ?? `the copy failed its check: ${answer.check}`
    throw new BackupError('BACKUP_FAILED', `snapshot of ${path.basename(databaseFile)} failed: ${reason}`)
  }
  const takenAt = answer.takenAt!
  const file = path.join(folder, snapshotFileName(takenAt))
  renameSync(provisional, file)
  return {
    file,
    bytes: statSync(file).size,
    takenAt,
    latestMigration: answer.latestMigration ?? null,
    dispose: () => {
      if (temporary) rmSync(folder, { recursive: true, force: true })
    },
  }
}

function runWorker(workerData: { driverPath: string; databaseFile: string; snapshotFile: string }): Promise<WorkerAnswer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(SNAPSHOT_WORKER, { eval: true, workerData })
    let answered = false
    worker.once('message', (answer: WorkerAnswer) => {
      answered = true
      resolve(answer)
    })
    worker.once('error', reject)
    worker.once('exit', (code) => {
      if (!answered) reject(new Error(`the snapshot worker exited with code ${code}`))
    })
  })
}
