/**
 * PostgreSQL for tests: a fresh, empty database per call on a real server.
 *
 * - `SLIPWAY_TEST_POSTGRES_URL` (a superuser URL, e.g. `postgres://postgres@127.0.0.1:5432/postgres`):
 *   that server is used; CI starts Debian's cluster and sets it, so parallel test files share one server.
 * - Otherwise the first call in a test process starts a private server (initdb into a temporary folder,
 *   loopback, a free port, durability off: tests never survive a power cut) and stops it, by PID, when
 *   the process exits.
 *
 * Every database gets a unique name and is dropped by `drop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { sleep } from './wait.ts'

export interface PostgresDatabase {
  /** `postgres://...` of the new, empty database. */
  url: string
  name: string
  drop(): Promise<void>
}

export interface PostgresServer {
  /** A superuser URL to the server's `postgres` database. */
  adminUrl: string
  /** The installation's major version (`15`), or `external`. */
  version: string
}

export interface PrivatePostgresServer extends PostgresServer {
  /** Stops the server (fast shutdown, by PID) and removes its folder. */
  stop(): Promise<void>
}

export interface PrivateServerOptions {
  /**
   * Tests: no fsync at all (nothing must survive a power cut). Benchmarks: `durable`, fsync on and
   * synchronous_commit off, which is the durability SQLite's WAL with synchronous=NORMAL gives (a
   * committed write survives a process crash) and so a fair comparison.
   */
  durability: 'none' | 'durable'
}

let serverStarting: Promise<PostgresServer> | undefined
let databaseCounter = 0

/** A new empty database on the test server; the caller drops it (tap: `t.teardown(db.drop)`). */
export async function freshPostgresDatabase(): Promise<PostgresDatabase> {
  const server = await postgresServer()
  const name = `slipway_test_${process.pid}_${++databaseCounter}_${Math.random().toString(36).slice(2, 8)}`
  await withAdminClient(server, (client) => client.query(`create database ${name}`))
  const url = new URL(server.adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    name,
    drop: async () => {
      // `with (force)` ends connections a test left open (an engine that crashed on purpose).
      await withAdminClient(server, (client) => client.query(`drop database if exists ${name} with (force)`))
    },
  }
}

/** True when PostgreSQL tests can run here: a server URL is given or a PostgreSQL installation exists. */
export function postgresAvailable(): boolean {
  return Boolean(process.env.SLIPWAY_TEST_POSTGRES_URL) || postgresBinaries() !== undefined
}

function postgresServer(): Promise<PostgresServer> {
  serverStarting ??= process.env.SLIPWAY_TEST_POSTGRES_URL
    ? Promise.resolve({ adminUrl: process.env.SLIPWAY_TEST_POSTGRES_URL, version: 'external' })
    : startPrivatePostgres({ durability: 'none' })
  return serverStarting
}

export async function withAdminClient<T>(server: Pick<PostgresServer, 'adminUrl'>, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server.adminUrl })
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end()
  }
}

/** A PostgreSQL program (`pg_dump`, `pg_restore`) of the newest installation, as the tests' server runs it. */
export function postgresTool(name: string): string {
  const bin = postgresBinaries()
  if (!bin) throw new Error(`PostgreSQL is not installed: no ${name}`)
  return path.join(bin, name)
}

/** The newest Debian PostgreSQL installation's bin folder, else whatever `initdb` PATH has. */
function postgresBinaries(): string | undefined {
  const debianRoot = '/usr/lib/postgresql'
  if (existsSync(debianRoot)) {
    const versions = readdirSync(debianRoot).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))
    for (const version of versions) {
      const bin = path.join(debianRoot, version, 'bin')
      if (existsSync(path.join(bin, 'initdb')) && existsSync(path.join(bin, 'postgres'))) return bin
    }
  }
  const found = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).stdout.trim()
  return found ? path.dirname(found) : undefined
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}

/** PostgreSQL refuses to run as root: as root, its programs run as the `postgres` account (its pid is then the server's own). */
function serverAccount(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
  if (uid.status !== 0 || gid.status !== 0) throw new Error('running as root, PostgreSQL needs the postgres account (apt-get install postgresql creates it)')
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/**
 * A private PostgreSQL server: initdb into a temporary folder, loopback, a free port. It is stopped,
 * by PID, by `stop()` or at the latest when this process exits.
 */
export async function startPrivatePostgres(options: PrivateServerOptions): Promise<PrivatePostgresServer> {
  const bin = postgresBinaries()
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql) and no server URL is given')
  const version = path.basename(path.dirname(bin))
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'slipway-test-postgres-'))
  const account = serverAccount()
  if (account) chownSync(dataDir, account.uid, account.gid)
  const durable = options.durability === 'durable'
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', ...(durable ? [] : ['--no-sync']), '-E', 'UTF8', '--locale=C'], { encoding: 'utf8', ...account })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`)

  const port = await freeLoopbackPort()
  const settings = durable ? ['synchronous_commit=off'] : ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off']
  const server: ChildProcess = spawn(
    path.join(bin, 'postgres'),
    ['-D', dataDir, '-h', '127.0.0.1', '-p', String(port), '-k', dataDir, ...[...settings, 'max_connections=300'].flatMap((setting) => ['-c', setting])],
    { stdio: ['ignore', 'ignore', 'pipe'], ...account },
  )
  let serverLog = ''
  server.stderr?.on('data', (chunk: Buffer) => {
    serverLog = (serverLog + chunk.toString('utf8')).slice(-4000)
  })
  // The server must not keep a finished process alive: the exit handler below stops it.
  server.unref()
  ;(server.stderr as net.Socket | null)?.unref()
  const signalStop = () => {
    // SIGINT is PostgreSQL's "fast shutdown": it ends its sessions and leaves.
    if (server.exitCode === null && server.signalCode === null && server.pid) process.kill(server.pid, 'SIGINT')
  }
  const stopAtExit = () => {
    signalStop()
    // The server needs a moment to leave its folder; remove it once it has gone.
    spawnSync('sh', ['-c', `for i in $(seq 50); do [ -e "${dataDir}/postmaster.pid" ] || break; sleep 0.1; done; rm -rf "${dataDir}"`])
  }
  process.once('exit', stopAtExit)
  const stop = async () => {
    const exited = server.exitCode !== null || server.signalCode !== null ? Promise.resolve() : new Promise((resolve) => server.once('exit', resolve))
    // Referenced again while waiting: otherwise a process with nothing else to do would end first.
    server.ref()
    signalStop()
    await exited
    rmSync(dataDir, { recursive: true, force: true })
    process.off('exit', stopAtExit)
  }

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (server.exitCode !== null) {
      await stop()
      throw new Error(`PostgreSQL exited at start: ${serverLog}`)
    }
    try {
      await withAdminClient({ adminUrl }, (client) => client.query('select 1'))
      return { adminUrl, version, stop }
    } catch (error) {
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`PostgreSQL did not accept connections within 30 s: ${(error as Error).message}\n${serverLog}`)
      }
      await sleep(100)
    }
  }
}
