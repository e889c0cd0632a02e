/**
 * Operating the engine as an operator does, each engine a real process on loopback: `npm start`
 * stopped by a signal to its PID, one engine per SQLite data folder (a second is refused naming the
 * first, a SIGKILLed one leaves nothing that blocks the next start, two racing starts leave one), and
 * a start that cannot open one of its listeners exiting at once with one line that says which.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { ADMIN_TOKEN, copySampleContent, REPO_ROOT, removeTree } from '../helpers/engine.ts'
import { freePort } from '../helpers/engine-process.ts'
import { sleep } from '../helpers/wait.ts'

interface Ports {
  http: number
  proxy: number
  dns: number
  tftp: number
}

interface Folder {
  dir: string
  dataDir: string
  env: Record<string, string>
}

/** A scratch folder with its own content, an empty configuration file and a data folder. */
function scratch(t: Test): Folder {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-operate-'))
  t.teardown(() => removeTree(dir))
  const content = path.join(dir, 'content')
  copySampleContent(content)
  mkdirSync(path.join(dir, 'ipxe'))
  writeFileSync(path.join(dir, 'slipway.yaml'), '{}\n')
  const dataDir = path.join(dir, 'var')
  return {
    dir,
    dataDir,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? dir,
      SLIPWAY_CONFIG: path.join(dir, 'slipway.yaml'),
      SLIPWAY_DATA_DIR: dataDir,
      SLIPWAY_AUTH_ADMIN_TOKEN: ADMIN_TOKEN,
      SLIPWAY_CONTENT_PROFILES_DIR: path.join(content, 'profiles'),
      SLIPWAY_CONTENT_IGNITION_DIR: path.join(content, 'ignition'),
      SLIPWAY_CONTENT_IPXE_DIR: path.join(content, 'ipxe'),
      SLIPWAY_CONTENT_GENERIC_DIR: path.join(content, 'generic'),
      SLIPWAY_CONTENT_ASSETS_DIR: path.join(content, 'assets'),
      SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
      SLIPWAY_LOG_LEVEL: 'info',
    },
  }
}

async function freePorts(): Promise<Ports> {
  const taken = new Set<number>()
  const next = async () => {
    for (;;) {
      const port = await freePort()
      if (!taken.has(port)) {
        taken.add(port)
        return port
      }
    }
  }
  return { http: await next(), proxy: await next(), dns: await next(), tftp: await next() }
}

/** Every listener on 127.0.0.1, on the given ports; TFTP too, so that its failure can be tested. */
function listenerEnv(ports: Ports, folder: Folder): Record<string, string> {
  return {
    SLIPWAY_HTTP_HOST: '127.0.0.1',
    SLIPWAY_HTTP_PORT: String(ports.http),
    SLIPWAY_PROXY_HOST: '127.0.0.1',
    SLIPWAY_PROXY_PORT: String(ports.proxy),
    SLIPWAY_DNS_HOST: '127.0.0.1',
    SLIPWAY_DNS_PORT: String(ports.dns),
    SLIPWAY_TFTP_ENABLED: 'true',
    SLIPWAY_TFTP_HOST: '127.0.0.1',
    SLIPWAY_TFTP_PORT: String(ports.tftp),
    SLIPWAY_TFTP_IPXE_DIR: path.join(folder.dir, 'ipxe'),
  }
}

interface Running {
  child: ChildProcess
  /** Standard output and error, interleaved as they came. */
  output: () => string
  /** Standard output alone: the engine's log, JSON lines. */
  stdout: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Lines of `text` that are not one JSON object each. */
const nonJsonLines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.trim())
    .filter((line) => {
      try {
        return typeof JSON.parse(line) !== 'object'
      } catch {
        return true
      }
    })

/** `command` in its own process; stopped (SIGKILL, by PID) at the end of the test if still running. */
function run(t: Test, command: string, args: string[], env: Record<string, string>): Running {
  const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let stdout = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString()
    stdout += chunk.toString()
  })
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return { child, output: () => output, stdout: () => stdout, exited }
}

/** The engine as `npm start` runs it, without npm (the script's command). */
const engine = (t: Test, env: Record<string, string>) => run(t, process.execPath, ['--import', 'tsx', 'src/main.ts'], env)

async function healthy(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/healthz`).then(
    (response) => response.ok,
    () => false,
  )
}

async function waitServing(running: Running, port: number): Promise<void> {
  for (let attempt = 0; attempt < 1200; attempt++) {
    if (await healthy(port)) return
    if (running.child.exitCode !== null || running.child.signalCode !== null) throw new Error(`the engine exited: ${running.output().slice(-3000)}`)
    await sleep(50)
  }
  throw new Error(`the engine did not start: ${running.output().slice(-3000)}`)
}

async function exitWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not exit within ${ms} ms`)), ms)))
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Whether a UDP socket is bound to 127.0.0.1:port (binding it ourselves fails). */
async function udpBound(port: number): Promise<boolean> {
  const socket = dgram.createSocket('udp4')
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(port, '127.0.0.1', () => resolve())
    })
    return false
  } catch {
    return true
  } finally {
    socket.close()
  }
}

async function nothingListens(t: Test, ports: Ports, what: string): Promise<void> {
  t.notOk(await tcpOpen(ports.http), `${what}: nothing on the HTTP port`)
  t.notOk(await tcpOpen(ports.proxy), `${what}: nothing on the proxy port`)
  t.notOk(await tcpOpen(ports.dns), `${what}: nothing on the DNS TCP port`)
  t.notOk(await udpBound(ports.dns), `${what}: nothing on the DNS UDP port`)
  t.notOk(await udpBound(ports.tftp), `${what}: nothing on the TFTP port`)
}

/** The PIDs of `pid` and all its descendants (Linux /proc). */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)])
    } catch {
      // The process ended while we looked.
    }
  }
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []))
  return tree
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

t.test('npm start: SIGTERM to the PID of npm stops the engine, and nothing is left running or listening', async (t) => {
  const folder = scratch(t)
  const ports = await freePorts()
  const npm = run(t, 'npm', ['start'], { ...folder.env, ...listenerEnv(ports, folder) })
  await waitServing(npm, ports.http)
  t.ok(await tcpOpen(ports.proxy), 'the proxy listens')
  t.ok(await udpBound(ports.dns), 'DNS listens')
  const tree = processTree(npm.child.pid!)
  t.ok(tree.length >= 2, `npm runs the engine as a child (${tree.join(' -> ')})`)
  t.teardown(() => {
    // Whatever is left of the tree is the test's to stop.
    for (const pid of tree) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })

  process.kill(npm.child.pid!, 'SIGTERM')
  const { code, signal } = await exitWithin(npm.exited, 20_000, 'npm start')
  t.ok(code === 0 || signal === 'SIGTERM', `npm ended (code ${code}, signal ${signal})`)
  for (let attempt = 0; attempt < 100 && tree.some(alive); attempt++) await sleep(50)
  t.same(tree.filter(alive), [], 'no process of the tree is left')
  await nothingListens(t, ports, 'after SIGTERM to npm')
  t.match(npm.output(), /"msg":"shutting down"/, 'the engine shut down gracefully')
})

t.test('its log reader gone (a broken pipe on stdout), the engine still stops on SIGTERM, and the next start opens the store', async (t) => {
  // What a log collector that dies, or `slipway serve | head`, leaves behind: the process reading
  // the engine's stdout is gone. pino's exit flush met EPIPE there and retried for ever: SIGTERM
  // never ended the engine.
  const folder = scratch(t)
  const ports = await freePorts()
  const reader = `const { spawn } = require('node:child_process')
    const engine = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { stdio: ['ignore', 'pipe', 'pipe'] })
    engine.stdout.on('data', (chunk) => { if (String(chunk).includes('slipway is serving')) { console.log(engine.pid); process.exit(0) } })`
  const logReader = run(t, process.execPath, ['-e', reader], { ...folder.env, ...listenerEnv(ports, folder) })
  await exitWithin(logReader.exited, 60_000, 'the log reader')
  const pid = Number(logReader.stdout().trim())
  t.ok(pid > 0 && alive(pid), `the engine serves, its log reader gone (PID ${pid})`)
  t.teardown(() => {
    if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  process.kill(pid, 'SIGTERM')
  for (let waited = 0; waited < 15_000 && alive(pid); waited += 100) await sleep(100)
  t.notOk(alive(pid), 'it stopped within 15 s of SIGTERM')
  await nothingListens(t, ports, 'after SIGTERM with a broken stdout')
  const next = engine(t, { ...folder.env, ...listenerEnv(ports, folder) })
  await waitServing(next, ports.http)
  t.pass('the next engine took the store and serves')
})

t.test('one engine per SQLite data folder: a second is refused naming the first; a SIGKILLed one does not block the next', async (t) => {
  const folder = scratch(t)
  const first = await freePorts()
  const firstEngine = engine(t, { ...folder.env, ...listenerEnv(first, folder) })
  await waitServing(firstEngine, first.http)
  const lockFile = path.join(folder.dataDir, 'slipway.db.lock')
  t.ok(existsSync(lockFile), 'the lock file is beside the database')
  t.equal(statSync(lockFile).mode & 0o777, 0o600, 'the lock file is 0600')

  const second = await freePorts()
  const secondEngine = engine(t, { ...folder.env, ...listenerEnv(second, folder) })
  const refused = await exitWithin(secondEngine.exited, 30_000, 'the second engine')
  t.not(refused.code, 0, 'the second engine exits non-zero')
  t.match(secondEngine.output(), new RegExp(`in use by another Slipway engine \\(PID ${firstEngine.child.pid}\\b`), 'naming the PID of the first')
  t.notMatch(secondEngine.output(), /\n\s+at /, 'no stack trace')
  await nothingListens(t, second, 'the refused engine')
  t.ok(await healthy(first.http), 'the first keeps serving')

  // The offline restore is refused as well while the engine holds the database.
  const snapshot = path.join(folder.dir, 'snapshot.sqlite3')
  const backup = await fetch(`http://127.0.0.1:${first.http}/api/v1/backup`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(backup.status, 200)
  writeFileSync(snapshot, Buffer.from(await backup.arrayBuffer()))
  const restore = run(t, process.execPath, ['bin/slipway.js', 'restore', '--from', snapshot], folder.env)
  const restored = await exitWithin(restore.exited, 30_000, 'slipway restore')
  t.not(restored.code, 0, 'restore refuses while the engine runs')
  t.match(restore.output(), new RegExp(`PID ${firstEngine.child.pid}\\b`), 'naming the engine that holds the database')

  firstEngine.child.kill('SIGKILL')
  await firstEngine.exited
  t.ok(existsSync(lockFile), 'a SIGKILLed engine leaves its lock file behind')
  const third = engine(t, { ...folder.env, ...listenerEnv(first, folder) })
  await waitServing(third, first.http)
  t.pass('a new engine starts on the folder of the killed one')
  third.child.kill('SIGTERM')
  t.equal((await exitWithin(third.exited, 20_000, 'the third engine')).code, 0)

  // Offline, the restore runs (and the engine refused it only because it ran).
  const offline = run(t, process.execPath, ['bin/slipway.js', 'restore', '--from', snapshot], folder.env)
  t.equal((await exitWithin(offline.exited, 30_000, 'slipway restore')).code, 0, offline.output())
})

t.test('two engines started at once on one data folder: one serves, the other exits naming it', async (t) => {
  const folder = scratch(t)
  const ports = [await freePorts(), await freePorts()]
  const engines = ports.map((p) => engine(t, { ...folder.env, ...listenerEnv(p, folder) }))
  const outcome = await exitWithin(Promise.race(engines.map((running, index) => running.exited.then((exit) => ({ index, exit })))), 60_000, 'either engine')
  const loser = engines[outcome.index]!
  const winner = engines[1 - outcome.index]!
  t.not(outcome.exit.code, 0, 'one exits non-zero')
  t.match(loser.output(), new RegExp(`PID ${winner.child.pid}\\b`), 'naming the other')
  await waitServing(winner, ports[1 - outcome.index]!.http)
  t.pass('the other serves')
  await nothingListens(t, ports[outcome.index]!, 'the engine that lost')
})

const PORT_TAKEN: ['http' | 'proxy' | 'dns' | 'tftp', 'npm start' | 'slipway serve'][] = [
  ['http', 'npm start'],
  ['proxy', 'npm start'],
  ['dns', 'npm start'],
  ['tftp', 'npm start'],
  // The CLI returns an exit code instead of exiting: only closing everything lets the process end.
  ['dns', 'slipway serve'],
  ['proxy', 'slipway serve'],
]

for (const [listener, entry] of PORT_TAKEN) {
  t.test(`${entry}: a ${listener} port taken before start fails the start at once, with one line naming it, and nothing stays open`, async (t) => {
    const folder = scratch(t)
    const ports = await freePorts()
    let release: () => Promise<void>
    if (listener === 'dns' || listener === 'tftp') {
      const socket = dgram.createSocket('udp4')
      await new Promise<void>((resolve) => socket.bind(ports[listener], '127.0.0.1', () => resolve()))
      release = () => new Promise<void>((resolve) => socket.close(() => resolve()))
    } else {
      const server = net.createServer().listen(ports[listener], '127.0.0.1')
      await once(server, 'listening')
      release = () => new Promise<void>((resolve) => server.close(() => resolve()))
    }
    t.teardown(() => release())

    const env = { ...folder.env, ...listenerEnv(ports, folder) }
    const running = entry === 'npm start' ? engine(t, env) : run(t, process.execPath, ['bin/slipway.js', 'serve'], env)
    const { code } = await exitWithin(running.exited, 60_000, 'the engine')
    t.not(code, 0, 'exits non-zero')
    const name = { http: 'HTTP', proxy: 'reverse proxy', dns: 'DNS', tftp: 'TFTP' }[listener]
    const errorLines = running
      .output()
      .split('\n')
      .filter((line) => line.startsWith('slipway:'))
    t.equal(errorLines.length, 1, `one line: ${running.output().slice(-2000)}`)
    t.match(errorLines[0], new RegExp(`^slipway: cannot start: the ${name} listener cannot listen on 127\\.0\\.0\\.1:${ports[listener]}\\b.*address already in use \\(EADDRINUSE\\)`))
    t.notMatch(running.output(), /\n\s+at .*\(.*:\d+:\d+\)/, 'no stack trace')
    // And as one JSON line among the engine's logs, with a code a supervisor or a log query matches on.
    const fatal = running
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{"level":60'))
      .map((line) => JSON.parse(line) as { code?: string; msg?: string })
    t.equal(fatal.length, 1, 'one fatal log line')
    t.same(nonJsonLines(running.stdout()), [], "every line on the engine's stdout is JSON")
    t.match(fatal[0], { code: 'EADDRINUSE', msg: new RegExp(`^cannot start: the ${name} listener cannot listen on 127\\.0\\.0\\.1:${ports[listener]}\\b`) })
    await release()
    release = async () => {}
    await nothingListens(t, ports, `${listener} taken`)
  })
}
