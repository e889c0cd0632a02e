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

export interface PostgresDatabase {
  /** `postgres://...` of the new, empty database. */
  url: string
  name: string
  drop(): Promise<void>
}

interface PostgresServer {
  adminUrl: string
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
    ? Promise.resolve({ adminUrl: process.env.SLIPWAY_TEST_POSTGRES_URL })
    : startPrivateServer()
  return serverStarting
}

async function withAdminClient<T>(server: PostgresServer, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server.adminUrl })
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end()
  }
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

async function startPrivateServer(): Promise<PostgresServer> {
  const bin = postgresBinaries()
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql) and SLIPWAY_TEST_POSTGRES_URL is not set')
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'slipway-test-postgres-'))
  const account = serverAccount()
  if (account) chownSync(dataDir, account.uid, account.gid)
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { encoding: 'utf8', ...account })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`)

  const port = await freeLoopbackPort()
  const server: ChildProcess = spawn(
    path.join(bin, 'postgres'),
    ['-D', dataDir, '-h', '127.0.0.1', '-p', String(port), '-k', dataDir,
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300'],
    { stdio: ['ignore', 'ignore', 'pipe'], ...account },
  )
  let serverLog = ''
  server.stderr?.on('data', (chunk: Buffer) => {
    serverLog = (serverLog + chunk.toString('utf8')).slice(-4000)
  })
  // The server must not keep a finished test process alive: the exit handler below stops it.
  server.unref()
  ;(server.stderr as net.Socket | null)?.unref()
  const stop = () => {
    // SIGINT is PostgreSQL's "fast shutdown": it ends its sessions and leaves.
    if (server.exitCode === null && server.pid) process.kill(server.pid, 'SIGINT')
  }
  process.once('exit', () => {
    stop()
    // The server needs a moment to leave its folder; remove it once it has gone.
    spawnSync('sh', ['-c', `for i in $(seq 50); do [ -e "${dataDir}/postmaster.pid" ] || break; sleep 0.1; done; rm -rf "${dataDir}"`])
  })

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (server.exitCode !== null) {
      rmSync(dataDir, { recursive: true, force: true })
      throw new Error(`PostgreSQL exited at start: ${serverLog}`)
    }
    try {
      await withAdminClient({ adminUrl }, (client) => client.query('select 1'))
      return { adminUrl }
    } catch (error) {
      if (Date.now() > deadline) {
        stop()
        throw new Error(`PostgreSQL did not accept connections within 30 s: ${(error as Error).message}\n${serverLog}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
