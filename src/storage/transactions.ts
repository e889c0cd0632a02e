import type { Kysely, Transaction } from 'kysely'
import { isPostgres } from './db.ts'

/**
 * Every read-then-write of the store (a discovery upsert, a scheduling pass, an install slot, a
 * release or registry change, a rollout step) runs through here, so that it is correct with two
 * engines on one database:
 *
 * - SQLite has one writer at a time and kysely gives each SQLite store one connection: a transaction
 *   is already serial.
 * - PostgreSQL runs it SERIALIZABLE and starts it again when the server reports a serialization
 *   failure (40001) or a deadlock (40P01). One rule for every transaction instead of a lock per
 *   read (`select ... for update` cannot lock a row that does not exist yet, nor "how many machines
 *   are installing"), at the price that a transaction may run more than once: the work must only
 *   touch the store (side effects come after the commit, as every caller here does).
 *
 * A transaction inside a transaction joins it (the retry belongs to the outermost one).
 */
export async function inTransaction<DB, T>(db: Kysely<DB>, work: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
  if (db.isTransaction) return work(db)
  if (!isPostgres(db)) return db.transaction().execute((trx: Transaction<DB>) => work(trx))
  const slots = transactionSlots(db)
  for (let attempt = 1; ; attempt++) {
    await slots.acquire()
    try {
      return await db.transaction().setIsolationLevel('serializable').execute((trx: Transaction<DB>) => work(trx))
    } catch (error) {
      if (!isRetryable(error) || attempt >= MAX_ATTEMPTS) throw error
      retriedTransactions++
    } finally {
      slots.release()
    }
    // Jittered and growing, so that the transactions that collided do not collide again.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(200, 2 ** attempt * 2)))
  }
}

/**
 * Transactions of one store (one replica) running at once: one, as on SQLite. Concurrent SERIALIZABLE
 * transactions on small tables share index pages and abort each other (page-level predicate locks):
 * measured on 500 discovery reports from 16 clients, 1 at a time did 415/s with no retry, 2 did
 * 262/s, 16 did 241/s with 274 retries. Replicas still run side by side, and retry when they collide.
 * A transaction must therefore never wait for another one on the same store (nested ones join).
 */
const POSTGRES_TRANSACTIONS_AT_ONCE = 1

class Slots {
  private free: number
  private readonly waiting: (() => void)[] = []
  constructor(size: number) {
    this.free = size
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--
      return Promise.resolve()
    }
    return new Promise((resolve) => this.waiting.push(resolve))
  }
  release(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.free++
  }
}

const slotsOfStore = new WeakMap<object, Slots>()

function transactionSlots(db: object): Slots {
  let slots = slotsOfStore.get(db)
  if (!slots) {
    slots = new Slots(POSTGRES_TRANSACTIONS_AT_ONCE)
    slotsOfStore.set(db, slots)
  }
  return slots
}

/** Enough for the busiest moments measured (hundreds of concurrent discovery reports); then the error is real. */
const MAX_ATTEMPTS = 30

let retriedTransactions = 0

/** How many PostgreSQL transactions this process started again after a serialization failure (for diagnosis). */
export function retriedTransactionCount(): number {
  return retriedTransactions
}

const RETRYABLE = new Set(['40001', '40P01'])

function isRetryable(error: unknown): boolean {
  return RETRYABLE.has((error as { code?: string } | undefined)?.code ?? '')
}

/**
 * A primary-key or unique violation, in either database's words (SQLite's error code, PostgreSQL's
 * SQLSTATE 23505 with the constraint's name), or undefined for any other error. A primary key is
 * `<table>_pkey` (declared on the column) or `<name>_pk` (declared on the table) on PostgreSQL.
 */
export function uniqueViolation(error: unknown): 'primary-key' | 'unique' | undefined {
  const { code, constraint } = (error ?? {}) as { code?: string; constraint?: string }
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'primary-key'
  if (code === 'SQLITE_CONSTRAINT_UNIQUE') return 'unique'
  if (code === '23505') return constraint && /_(pkey|pk)$/.test(constraint) ? 'primary-key' : 'unique'
  return undefined
}
