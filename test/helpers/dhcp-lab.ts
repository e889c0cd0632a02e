/**
 * Starting the engine's DHCP server and real DHCP clients inside a lab (see netns.ts), and reading
 * what they report.
 */
import type { ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Config } from '../../src/config.ts'
import { emptyPacket, OPTION, type DhcpPacket } from '../../src/transports/dhcp/dhcp-packet.ts'
import type { Lab } from './netns.ts'
import { sleep } from './wait.ts'

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

export function scratchDir(prefix = 'slipway-dhcp-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix))
}

let nextXid = 0x5100
/** A client's packet: message type, chaddr from hex, extra options and fields; each gets a new xid. */
export function clientPacket(type: number, macHex = '525400000a01', options: Array<[number, Buffer]> = [], fields: Partial<DhcpPacket> = {}): DhcpPacket {
  const packet = emptyPacket()
  packet.xid = nextXid++
  Buffer.from(macHex, 'hex').copy(packet.chaddr)
  Object.assign(packet, fields)
  packet.options.set(OPTION.MESSAGE_TYPE, Buffer.from([type]))
  for (const [code, value] of options) packet.options.set(code, value)
  return packet
}

export function dhcpSettings(overrides: Partial<Config['dhcp']>): Config['dhcp'] {
  return { mode: 'full', serverAddress: '', port: 67, subnet: '', rangeStart: '', rangeEnd: '', router: '', dnsServers: [], domain: '', leaseSeconds: 3600, ...overrides }
}

export interface ServerChild {
  child: ChildProcess
  logs(): string
  /** Stops it with SIGTERM and returns its final counters. */
  stop(): Promise<Record<string, unknown>>
  stats(): Promise<Record<string, unknown>>
}

/** Collects a child's output; resolves `waitFor` when a line matching the pattern appears. */
function collect(child: ChildProcess) {
  let stdout = ''
  let stderr = ''
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void; from: number }> = []
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    for (const waiter of [...waiters]) {
      const match = waiter.pattern.exec(stdout.slice(waiter.from))
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(match[0])
      }
    }
  })
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 4_000_000) stderr += chunk.toString()
  })
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor: (pattern: RegExp, timeoutMs: number, from = stdout.length) =>
      new Promise<string>((resolve, reject) => {
        const match = pattern.exec(stdout.slice(from))
        if (match) return resolve(match[0])
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; stderr: ${stderr.slice(-2000)}`)), timeoutMs)
        waiters.push({ pattern, from, resolve: (line) => (clearTimeout(timer), resolve(line)) })
        child.once('exit', () => setTimeout(() => reject(new Error(`process exited before ${pattern}; stderr: ${stderr.slice(-2000)}`)), 50))
      }),
  }
}

export async function startServerChild(
  lab: Lab,
  host: string,
  options: { db: string; settings: Config['dhcp']; reservations?: Array<{ mac: string; ip: string; hostname: string | null }>; logLevel?: string },
): Promise<ServerChild> {
  const child = lab.spawn(host, process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/helpers/dhcp-server-child.ts')], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      SLW_DHCP_DB: options.db,
      SLW_DHCP_SETTINGS: JSON.stringify(options.settings),
      SLW_DHCP_RESERVATIONS: JSON.stringify(options.reservations ?? []),
      SLW_DHCP_LOG_LEVEL: options.logLevel ?? 'info',
    },
  })
  const output = collect(child)
  await output.waitFor(/READY/, 20_000)
  const readStats = async (from: number) => JSON.parse((await output.waitFor(/STATS (\{.*\})\n/, 10_000, from)).slice(6)) as Record<string, unknown>
  return {
    child,
    logs: output.stderr,
    stats: async () => {
      const from = output.stdout().length
      child.kill('SIGUSR2')
      return readStats(from)
    },
    stop: async () => {
      const from = output.stdout().length
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const stats = await readStats(from)
      await exited
      return stats
    },
  }
}

/** Each run of a client script prints `BEGIN <event>`, the environment, `END`. */
export function writeEnvScript(dir: string, configureAddress = false): string {
  const script = path.join(dir, 'dhcp-env.sh')
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      // udhcpc passes the event as $1, dhclient as $reason.
      'echo "BEGIN ${1:-$reason}"',
      'env | sort',
      configureAddress ? 'if [ "$1" = bound ]; then ip addr add "$ip/$subnet" dev "$interface"; fi' : ':',
      'echo "END"',
      '',
    ].join('\n'),
  )
  chmodSync(script, 0o755)
  return script
}

export interface ClientEvent {
  event: string
  env: Record<string, string>
}

export function parseEvents(output: string): ClientEvent[] {
  const events: ClientEvent[] = []
  let current: ClientEvent | undefined
  for (const line of output.split('\n')) {
    if (line.startsWith('BEGIN ')) current = { event: line.slice(6).trim(), env: {} }
    else if (line === 'END' && current) {
      events.push(current)
      current = undefined
    } else if (current) {
      const equals = line.indexOf('=')
      if (equals > 0) current.env[line.slice(0, equals)] = line.slice(equals + 1)
    }
  }
  return events
}

export interface ClientRun {
  code: number | null
  stdout: string
  stderr: string
  events: ClientEvent[]
}

/** Runs a client to completion (or until `timeoutMs`, then SIGKILL). */
export function runToEnd(lab: Lab, host: string, command: string, args: string[], timeoutMs = 20_000): Promise<ClientRun> {
  const child = lab.spawn(host, command, args)
  const output = collect(child)
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      setTimeout(() => resolve({ code, stdout: output.stdout(), stderr: output.stderr(), events: parseEvents(output.stdout()) }), 20)
    })
  })
}

/** A long-running client whose events can be awaited. */
export function startClient(lab: Lab, host: string, command: string, args: string[]) {
  const child = lab.spawn(host, command, args)
  const output = collect(child)
  return {
    child,
    logs: () => output.stdout() + output.stderr(),
    events: () => parseEvents(output.stdout()),
    waitForEvent: async (event: string, timeoutMs = 15_000) => {
      await output.waitFor(new RegExp(`BEGIN ${event}\\n[\\s\\S]*?\\nEND\\n`), timeoutMs, 0)
      return parseEvents(output.stdout()).filter((item) => item.event === event).at(-1)!
    },
    waitForEventAfter: async (event: string, count: number, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline) {
        const matching = parseEvents(output.stdout()).filter((item) => item.event === event)
        if (matching.length > count) return matching.at(-1)!
        await sleep(100)
      }
      throw new Error(`no new ${event} event; output: ${output.stdout().slice(-2000)} ${output.stderr().slice(-1000)}`)
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

export interface ProbeSend {
  hex?: string
  file?: string
  to: { address: string; port: number }
  atMs: number
}

export interface ProbeReply {
  from: string
  port: number
  bytes: Buffer
}

/** Runs test/helpers/dhcp-probe-child.ts in `host`: sends datagrams, returns what came back on its port. */
export async function runProbe(lab: Lab, host: string, dir: string, spec: { sends: ProbeSend[]; listenMs: number; bindPort?: number; paceEvery?: number }, timeoutMs = 120_000): Promise<{ replies: ProbeReply[]; sent: number }> {
  const specFile = path.join(dir, `probe-${Date.now()}-${Math.random().toString(16).slice(2)}.json`)
  writeFileSync(specFile, JSON.stringify(spec))
  const run = await runToEnd(lab, host, process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/helpers/dhcp-probe-child.ts'), specFile], timeoutMs)
  const replies: ProbeReply[] = []
  let sent = -1
  for (const line of run.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const item = JSON.parse(line) as { from?: string; port?: number; hex?: string; done?: boolean; sent?: number }
    if (item.done) sent = item.sent ?? 0
    else replies.push({ from: item.from!, port: item.port!, bytes: Buffer.from(item.hex!, 'hex') })
  }
  if (sent < 0) throw new Error(`probe did not finish (exit ${run.code}): ${run.stderr.slice(-2000)}`)
  return { replies, sent }
}
