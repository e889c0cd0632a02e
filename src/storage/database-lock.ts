/**
 * One process at a time on a SQLite database: the engine for as long as it runs, `slipway restore`
 * while it replaces the file. Two engines on one file would each run the scheduler, the rollout
 * runner and the health sweep, and answer the same machine differently.
 *
 * The lock is `<database>.lock` (0600), a small SQLite database of its own. The mutual exclusion is
 * SQLite's RESERVED lock on it (a POSIX record lock), held by an open write transaction for the
 * holder's lifetime: the kernel drops it when the process ends however it ends, so a SIGKILLed or
 * crashed holder leaves nothing that blocks the next start, a reused PID proves nothing, and of two
 * processes racing only one can hold it. RESERVED still lets others read, so the file also names its
 * holder (PID, host, since when) for the message of whoever is refused. The PostgreSQL backend has no
 * such lock: its replicas share the database by design.
 */
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import SQLite from 'better-sqlite3'

export type LockPurpose = 'engine' | 'restore'

export interface LockHolder {
  pid: number
  hostname: string
  purpose: LockPurpose
  /** ISO time the holder took the lock. */
  since: string
}

export interface DatabaseLock {
  /** The lock file, `<database>.lock`. */
  readonly file: string
  readonly holder: LockHolder
  /** Gives the lock up (idempotent); the process ending does the same. */
  release(): void
}

/** The database is held by another process: `holder` names it when the lock file says who. */
export class DatabaseLockedError extends Error {
  readonly code = 'DATABASE_LOCKED'
  constructor(
    readonly databaseFile: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(`${databaseFile} is ${describeHolder(holder)}: stop it first, or give this engine its own data folder (SLIPWAY_DATA_DIR or database.path)`)
    this.name = 'DatabaseLockedError'
  }
}

/** `in use by another Slipway engine (PID 4242, since <time>)`, for the messages of whoever is refused. */
export function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'in use by another Slipway process'
  const where = holder.hostname === os.hostname() ? '' : ` on host ${holder.hostname}`
  const who = holder.purpose === 'restore' ? 'being restored by slipway restore' : 'in use by another Slipway engine'
  return `${who} (PID ${holder.pid}${where}, since ${holder.since})`
}

export function lockFileOf(databaseFile: string): string {
  return `${databaseFile}.lock`
}

interface HolderRow {
  pid: number
  hostname: string
  purpose: LockPurpose
  since: string
  token: string
  claimed_at: number
}

/** How long a claim written but not yet held counts as in progress (its writer re-takes the lock at once). */
const CLAIM_GRACE_MS = 2_000
/** How long a start waits, at most, for a claim in progress to settle before it gives up. */
const SETTLE_MS = 10_000
const WAIT_MS = 25

/**
 * Takes the lock of `databaseFile` or throws DatabaseLockedError naming the holder. Synchronous: it
 * runs before anything opens the database, and in the CLI's synchronous restore.
 */
/** The connections that hold a lock, kept reachable for as long as they hold it. */
const HELD_LOCKS = new Set<SQLite.Database>()

export function lockDatabase(databaseFile: string, purpose: LockPurpose): DatabaseLock {
  const file = lockFileOf(path.resolve(databaseFile))
  mkdirSync(path.dirname(file), { recursive: true })
  createPrivately(file)
  const db = new SQLite(file, { timeout: 2_000 })
  try {
    createHolderTable(db, databaseFile)
    const me: HolderRow = { pid: process.pid, hostname: os.hostname(), purpose, since: new Date().toISOString(), token: randomBytes(12).toString('hex'), claimed_at: 0 }
    claim(db, me, databaseFile)
    // The lock is the open transaction on this connection: it must live until release() or the
    // process's end, even if the caller drops the returned object (a collected connection closes).
    HELD_LOCKS.add(db)
    const holder: LockHolder = { pid: me.pid, hostname: me.hostname, purpose, since: me.since }
    let released = false
    return {
      file,
      holder,
      release() {
        if (released) return
        released = true
        try {
          // Still inside the held transaction: the row goes with the lock.
          db.prepare('delete from holder where token = ?').run(me.token)
          db.exec('commit')
        } catch {
          // A row left behind names a process that no longer holds the lock: the next claim replaces it.
        } finally {
          HELD_LOCKS.delete(db)
          db.close()
        }
      },
    }
  } catch (error) {
    db.close()
    throw error
  }
}

/** The lock file's one table, created by whichever racing start comes first. */
export function createHolderTable(db: SQLite.Database, databaseFile: string): void {
  // Racing starts create the table at once; one that waits out the busy timeout tries again. The read
  // comes first: a connection that loaded the schema while the file was empty compiles "create table
  // if not exists" as a write, which waits on the lock the racing winner now holds for good. Reading
  // sqlite_schema checks the schema cookie and reloads it, and a table that exists is never written.
  untilNotBusy(Date.now() + SETTLE_MS, databaseFile, () => {
    if (db.prepare("select 1 from sqlite_schema where type = 'table' and name = 'holder'").get()) return
    try {
      db.exec(`create table holder (
        id integer primary key check (id = 1),
        pid integer not null, hostname text not null, purpose text not null, since text not null,
        token text not null, claimed_at integer not null)`)
    } catch (error) {
      // A racing start created it between the read and this write: the table is there, as wanted.
      if (!/table holder already exists/.test((error as Error).message)) throw error
    }
  })
}

/**
 * The claim: take RESERVED; if the row already names us, keep it (that is the lock); else write our
 * row, commit, and take RESERVED again. Whoever finds RESERVED taken reads who holds it.
 */
function claim(db: SQLite.Database, me: HolderRow, databaseFile: string): void {
  const deadline = Date.now() + SETTLE_MS
  let busyWith: string | undefined
  for (;;) {
    if (!tryBeginImmediate(db)) {
      // The holder's row is read while another claim may be committing: busy is "ask again", never an error.
      const row = untilNotBusy(deadline, databaseFile, () => readHolder(db))
      // Refused only when the same live holder is seen twice: a claim in progress settles first.
      if (row && holderAlive(row) && busyWith === row.token) throw new DatabaseLockedError(databaseFile, publicHolder(row))
      busyWith = row?.token
      if (Date.now() > deadline) throw new DatabaseLockedError(databaseFile, row && publicHolder(row))
      sleep(WAIT_MS)
      continue
    }
    busyWith = undefined
    const row = readHolder(db)
    if (row?.token === me.token) return
    // We hold RESERVED, so whoever the row names does not: it is gone, or it is between writing its
    // row and taking the lock again (then it is young, and we give it the moment it needs).
    if (row && holderAlive(row) && Date.now() - row.claimed_at < CLAIM_GRACE_MS && Date.now() < deadline) {
      db.exec('rollback')
      sleep(WAIT_MS + Math.floor(Math.random() * WAIT_MS))
      continue
    }
    db.prepare('insert or replace into holder (id, pid, hostname, purpose, since, token, claimed_at) values (1, ?, ?, ?, ?, ?, ?)').run(me.pid, me.hostname, me.purpose, me.since, me.token, Date.now())
    db.exec('commit')
  }
}

const isBusy = (error: unknown) => Boolean((error as { code?: string }).code?.startsWith('SQLITE_BUSY'))

/**
 * Runs `work` again while SQLite answers busy (each try waits the connection's busy timeout); past
 * `deadline`, the database is taken by a process this one could not even read the name of.
 */
function untilNotBusy<T>(deadline: number, databaseFile: string, work: () => T): T {
  for (;;) {
    try {
      return work()
    } catch (error) {
      if (!isBusy(error)) throw error
      if (Date.now() > deadline) throw new DatabaseLockedError(databaseFile, undefined)
      sleep(WAIT_MS)
    }
  }
}

function tryBeginImmediate(db: SQLite.Database): boolean {
  db.pragma('busy_timeout = 0')
  try {
    db.exec('begin immediate')
    return true
  } catch (error) {
    if (isBusy(error)) return false
    throw error
  } finally {
    db.pragma('busy_timeout = 2000')
  }
}

function readHolder(db: SQLite.Database): HolderRow | undefined {
  return db.prepare('select pid, hostname, purpose, since, token, claimed_at from holder where id = 1').get() as HolderRow | undefined
}

function publicHolder(row: HolderRow): LockHolder {
  return { pid: row.pid, hostname: row.hostname, purpose: row.purpose, since: row.since }
}

/** A process on another host cannot be checked: it counts as alive. */
function holderAlive(row: HolderRow): boolean {
  if (row.hostname !== os.hostname()) return true
  try {
    process.kill(row.pid, 0)
    return true
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM'
  }
}

/**
 * Created 0600 before SQLite opens it (SQLite would create it with the umask's mode). Never opened
 * and closed with plain fs once it exists: closing any descriptor of a file drops the process's
 * POSIX locks on it, this process's own lock included.
 */
function createPrivately(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600))
  } catch (error) {
    if ((error as { code?: string }).code !== 'EEXIST') throw error
    try {
      chmodSync(file, 0o600)
    } catch {
      // Another user's file: SQLite reports what matters when it opens it.
    }
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}
