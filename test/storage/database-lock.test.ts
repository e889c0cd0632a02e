/**
 * The one-process-per-SQLite-database lock against real files and real processes: refused while
 * held (in this process or another), free again the moment its holder is SIGKILLed, not fooled by a
 * row naming a live but unrelated PID, one winner among processes racing, and a 0600 file.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t, { type Test } from 'tap'
import { createHolderTable, DatabaseLockedError, lockDatabase, lockFileOf } from '../../src/storage/database-lock.ts'
import { REPO_ROOT } from '../helpers/engine.ts'

function scratch(t: Test): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return path.join(dir, 'var', 'slipway.db')
}

const LOCK_MODULE = path.join(REPO_ROOT, 'src', 'storage', 'database-lock.ts')

/**
 * A process that tries to take the lock, reports `held <pid>` or `refused <message>`, and keeps it until
 * killed. It does not keep the returned object (as a careless caller would); with `collect`, it also
 * forces garbage collection before it says it holds the lock.
 */
function holder(t: Test, databaseFile: string, options: { collect?: boolean } = {}): { child: ChildProcess; outcome: Promise<string> } {
  const collect = options.collect ? 'globalThis.gc(); globalThis.gc();' : ''
  const code = `import(${JSON.stringify(LOCK_MODULE)}).then(({ lockDatabase }) => {
    try { lockDatabase(${JSON.stringify(databaseFile)}, 'engine'); ${collect} console.log('held ' + process.pid); setInterval(() => {}, 60000) }
    catch (error) { console.log('refused ' + error.message); process.exit(3) }
  })`
  const child = spawn(process.execPath, [...(options.collect ? ['--expose-gc'] : []), '--import', 'tsx', '-e', code], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  })
  let output = ''
  const outcome = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('\n')) resolve(output.trim())
    })
    child.once('exit', (code) => setTimeout(() => reject(new Error(`exited ${code} before reporting: ${output}`)), 100))
  })
  return { child, outcome }
}

function refusal(run: () => unknown): DatabaseLockedError {
  try {
    run()
  } catch (error) {
    if (error instanceof DatabaseLockedError) return error
    throw error
  }
  throw new Error('not refused')
}

t.test('held in this process: a second claim is refused naming the holder; released, it can be taken again', async (t) => {
  const database = scratch(t)
  const first = lockDatabase(database, 'engine')
  t.equal(first.file, `${database}.lock`)
  const refused = refusal(() => lockDatabase(database, 'engine'))
  t.match(refused.holder, { pid: process.pid, purpose: 'engine', hostname: os.hostname() })
  t.match(refused.message, new RegExp(`is in use by another Slipway engine \\(PID ${process.pid}, since `))
  first.release()
  first.release()
  const restore = lockDatabase(database, 'restore')
  t.match(refusal(() => lockDatabase(database, 'engine')).message, /is being restored by slipway restore \(PID \d+/)
  restore.release()
})

t.test('held by another process; SIGKILLed, it blocks nothing', async (t) => {
  const database = scratch(t)
  const other = holder(t, database)
  t.equal(await other.outcome, `held ${other.child.pid}`)
  const refused = refusal(() => lockDatabase(database, 'engine'))
  t.equal(refused.holder?.pid, other.child.pid, 'names the PID of the holder')
  const killed = once(other.child, 'exit')
  other.child.kill('SIGKILL')
  await killed
  const started = Date.now()
  const mine = lockDatabase(database, 'engine')
  t.ok(Date.now() - started < 1000, `taken at once after the holder died (${Date.now() - started} ms)`)
  mine.release()
})

t.test('a row naming a live process that does not hold the lock (a reused PID) does not block', async (t) => {
  const database = scratch(t)
  lockDatabase(database, 'engine').release()
  const file = new SQLite(lockFileOf(database))
  // PID 1 is alive and is no engine: what a crashed engine's PID reused by another program looks like.
  file.prepare("insert or replace into holder (id, pid, hostname, purpose, since, token, claimed_at) values (1, 1, ?, 'engine', '2020-01-01T00:00:00.000Z', 'stale', 0)").run(os.hostname())
  file.close()
  const started = Date.now()
  const mine = lockDatabase(database, 'engine')
  t.ok(Date.now() - started < 1000, `taken at once (${Date.now() - started} ms)`)
  mine.release()

  // A claim written a moment ago is given the moment it needs to take the lock, then taken over.
  const young = new SQLite(lockFileOf(database))
  young.prepare("insert or replace into holder (id, pid, hostname, purpose, since, token, claimed_at) values (1, 1, ?, 'engine', '2020-01-01T00:00:00.000Z', 'young', ?)").run(os.hostname(), Date.now())
  young.close()
  const waited = Date.now()
  lockDatabase(database, 'engine').release()
  t.ok(Date.now() - waited >= 1500 && Date.now() - waited < 5000, `taken after the claim's grace (${Date.now() - waited} ms)`)
})

t.test('the lock outlives the object it was returned in: a collected connection would have let it go', async (t) => {
  const database = scratch(t)
  const other = holder(t, database, { collect: true })
  t.match(await other.outcome, /^held \d+$/)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.throws(() => lockDatabase(database, 'engine'), DatabaseLockedError, 'still held after garbage collection in the holder')
})

t.test('processes racing for a fresh lock: exactly one holds it, every other names that one', async (t) => {
  const database = scratch(t)
  const racers = Array.from({ length: 5 }, () => holder(t, database))
  const outcomes = await Promise.all(racers.map((racer) => racer.outcome))
  const held = outcomes.filter((outcome) => outcome.startsWith('held '))
  t.equal(held.length, 1, outcomes.join('\n'))
  const winner = held[0]!.slice(5)
  for (const outcome of outcomes) if (outcome.startsWith('refused ')) t.match(outcome, new RegExp(`\\(PID ${winner},`))
})

t.test('a start that read the lock file before a racing start created its table still reads who holds it', async (t) => {
  // The window the racing test above hits now and then: this start loaded the lock file's schema
  // while it was empty, then another start created the table and took the lock for good. Compiled
  // against the stale schema, "create table if not exists" is a write and waits on that lock until
  // the deadline: the start is then refused without the holder's name.
  const database = scratch(t)
  lockDatabase(database, 'engine').release()
  rmSync(lockFileOf(database))
  writeFileSync(lockFileOf(database), '', { mode: 0o600 })
  const stale = new SQLite(lockFileOf(database), { timeout: 2_000 })
  t.teardown(() => stale.close())
  t.same(stale.prepare('select count(*) as tables from sqlite_schema').get(), { tables: 0 }, 'the schema is loaded while the file is empty')
  const other = holder(t, database)
  t.equal(await other.outcome, `held ${other.child.pid}`)
  t.doesNotThrow(() => createHolderTable(stale, database), 'the table is seen, not written')
  t.match(refusal(() => lockDatabase(database, 'engine')).message, new RegExp(`\\(PID ${other.child.pid},`))
})

t.test('a start that found no table, then lost the race to create it, reads who holds it instead of failing on "already exists"', async (t) => {
  // The other half of the window above, which the full suite hit: this start's read found no table,
  // and a racing start created it before this start's own "create table" ran.
  const database = scratch(t)
  const lockFile = lockFileOf(database)
  lockDatabase(database, 'engine').release()
  rmSync(lockFile)
  writeFileSync(lockFile, '', { mode: 0o600 })
  const late = new SQLite(lockFile, { timeout: 2_000 })
  t.teardown(() => late.close())
  const racer = new SQLite(lockFile)
  t.teardown(() => racer.close())
  const prepare = late.prepare.bind(late)
  let raced = false
  // Between this start's read and its write, the racer creates the table.
  const losing = new Proxy(late, {
    get(target, property) {
      if (property === 'exec') return (sql: string) => {
        if (!raced && /create table holder/.test(sql)) {
          raced = true
          racer.exec('create table holder (id integer primary key check (id = 1), pid integer not null, hostname text not null, purpose text not null, since text not null, token text not null, claimed_at integer not null)')
        }
        return target.exec(sql)
      }
      if (property === 'prepare') return prepare
      return Reflect.get(target, property, target)
    },
  })
  t.doesNotThrow(() => createHolderTable(losing, database), 'the table the racer created is the table')
  t.ok(raced, 'the race window was hit')
  const other = holder(t, database)
  t.equal(await other.outcome, `held ${other.child.pid}`)
  t.match(refusal(() => lockDatabase(database, 'engine')).message, new RegExp(`\\(PID ${other.child.pid},`))
})

t.test('a lock file another process keeps busy is refused as locked, never with SQLite\'s own "database is locked"', async (t) => {
  const database = scratch(t)
  lockDatabase(database, 'engine').release()
  // Another process in the middle of a write to the lock file (a racing start creating it, a claim
  // committing) for longer than one busy timeout: what a loaded machine showed in the full suite.
  const busy = new SQLite(lockFileOf(database))
  busy.exec('begin exclusive')
  t.teardown(() => busy.close())
  const started = Date.now()
  t.throws(() => lockDatabase(database, 'engine'), { name: 'DatabaseLockedError', code: 'DATABASE_LOCKED', message: /is in use by another Slipway process: stop it first/ })
  t.ok(Date.now() - started >= 9_000, `it waited for the write to settle before giving up (${Date.now() - started} ms)`)
})

t.test('the lock file is 0600 whatever the umask', async (t) => {
  const database = scratch(t)
  const umask = process.umask(0)
  t.teardown(() => void process.umask(umask))
  const lock = lockDatabase(database, 'engine')
  t.equal(statSync(lock.file).mode & 0o777, 0o600)
  lock.release()
  t.equal(statSync(lock.file).mode & 0o777, 0o600, 'and stays so')
})
