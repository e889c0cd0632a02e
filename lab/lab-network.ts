/**
 * A private boot network for end-to-end PXE tests: one network namespace with a bridge and tap devices,
 * so that DHCP, TFTP and HTTP traffic between the engine and QEMU never leaves it. Everything it starts
 * is tracked by PID and killed by PID; cleanup deletes the namespace.
 *
 * Needs root, `ip` (iproute2) and /dev/net/tun. `assertLabPrerequisites()` fails with a clear message
 * when any of them is missing rather than letting a test skip silently.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { accessSync, constants, existsSync } from 'node:fs'
import { promisify } from 'node:util'

const exec = promisify(execFile)

/** Throws one error listing everything the lab needs but lacks. */
export function assertLabPrerequisites(extraBinaries: string[] = []): void {
  const problems: string[] = []
  if (typeof process.getuid === 'function' && process.getuid() !== 0) problems.push('must run as root (network namespaces, taps, DHCP on port 67)')
  if (!existsSync('/dev/net/tun')) problems.push('/dev/net/tun is missing (load the tun module or run the container with --device /dev/net/tun)')
  else {
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK)
    } catch {
      problems.push('/dev/net/tun is not readable and writable')
    }
  }
  for (const binary of ['ip', ...extraBinaries]) {
    if (!findInPath(binary)) problems.push(`${binary} is not installed (not found in PATH)`)
  }
  if (problems.length > 0) {
    throw new Error(
      `the PXE lab cannot run on this machine:\n  - ${problems.join('\n  - ')}\n` +
        `Install on Debian: apt-get install --no-install-recommends iproute2 qemu-system-x86 ipxe-qemu ipxe ovmf dnsmasq-base`,
    )
  }
}

export function findInPath(binary: string): string | undefined {
  if (binary.includes('/')) return existsSync(binary) ? binary : undefined
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])
  for (const dir of dirs) {
    const candidate = `${dir}/${binary}`
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // next
    }
  }
  return undefined
}

export interface LabProcess {
  child: ChildProcess
  pid: number
  name: string
  /** Everything written to stdout and stderr so far. */
  stdout(): string
  stderr(): string
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string | null>
  hasExited(): boolean
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>
}

export interface LabNetwork {
  /** Namespace name, `slw-lab-<random>`. */
  ns: string
  bridge: string
  /** The bridge's IPv4 address, e.g. 10.78.123.1. */
  bridgeAddress: string
  /** The /24, e.g. 10.78.123.0/24. */
  subnet: string
  /** First three octets, e.g. `10.78.123`. */
  prefix: string
  /** A ULA /64 on the bridge (for router advertisements only), e.g. fd78:7b::1. */
  bridgeAddress6: string
  /** Creates a tap device attached to the bridge and returns its name. */
  addTap(): Promise<string>
  /** Runs a command to completion inside the namespace. */
  exec(command: string, args: string[]): Promise<{ stdout: string; stderr: string }>
  /** Starts a long-running process inside the namespace, tracked for cleanup. */
  spawn(name: string, command: string, args: string[], options?: SpawnOptions): LabProcess
  /** Kills every process this lab started (by PID) and deletes the namespace. Idempotent. */
  cleanup(): Promise<void>
}

interface Teardownable {
  teardown(fn: () => unknown): void
}

async function ip(args: string[]): Promise<void> {
  try {
    await exec('ip', args)
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? ''
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || (error as Error).message}`)
  }
}

/**
 * Creates the namespace with lo up and br0 (STP off, forward delay 0) holding a private /24 and a ULA
 * /64. When `t` is given, cleanup is registered with `t.teardown`, so it runs even if the test fails.
 */
export async function createLabNetwork(t?: Teardownable): Promise<LabNetwork> {
  assertLabPrerequisites()
  const ns = `slw-lab-${randomBytes(4).toString('hex')}`
  const octet = randomInt(2, 254)
  const prefix = `10.78.${octet}`
  const bridge = 'br0'
  const bridgeAddress = `${prefix}.1`
  const bridgeAddress6 = `fd78:${octet.toString(16)}::1`
  const processes = new Set<LabProcess>()
  let taps = 0
  let cleaned = false

  // If the process ends before `cleanup` (a test runner's timeout, Ctrl-C), kill what this lab started
  // and delete its namespace synchronously on the way out.
  const lastResort = () => {
    for (const proc of processes) {
      try {
        process.kill(proc.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    try {
      execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' })
    } catch {
      // already deleted
    }
  }
  guardUntilCleaned(lastResort)
  const cleanup = async () => {
    if (cleaned) return
    cleaned = true
    releaseGuard(lastResort)
    await Promise.all([...processes].map((proc) => proc.stop(2000).catch(() => undefined)))
    await exec('ip', ['netns', 'delete', ns]).catch(() => undefined)
  }
  if (t) t.teardown(cleanup)

  await ip(['netns', 'add', ns])
  try {
    await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
    await ip(['-n', ns, 'link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0'])
    await ip(['-n', ns, 'addr', 'add', `${bridgeAddress}/24`, 'dev', bridge])
    await ip(['-n', ns, '-6', 'addr', 'add', `${bridgeAddress6}/64`, 'dev', bridge, 'nodad'])
    await ip(['-n', ns, 'link', 'set', bridge, 'up'])
  } catch (error) {
    await cleanup()
    throw error
  }

  const lab: LabNetwork = {
    ns,
    bridge,
    bridgeAddress,
    bridgeAddress6,
    subnet: `${prefix}.0/24`,
    prefix,
    async addTap() {
      const name = `tap${taps++}`
      await ip(['-n', ns, 'tuntap', 'add', 'dev', name, 'mode', 'tap'])
      await ip(['-n', ns, 'link', 'set', name, 'master', bridge])
      await ip(['-n', ns, 'link', 'set', name, 'up'])
      return name
    },
    async exec(command, args) {
      return exec('ip', ['netns', 'exec', ns, command, ...args])
    },
    spawn(name, command, args, options = {}) {
      if (cleaned) throw new Error(`lab ${ns} is already cleaned up`)
      // `ip netns exec` and setpriv exec the command in place: the PID we get is the command's own.
      // `--pdeathsig KILL`: it dies with this process even when this one is killed before its cleanup
      // runs (a test runner's timeout), instead of serving on in a namespace nobody removes.
      const child = spawn('ip', ['netns', 'exec', ns, 'setpriv', '--pdeathsig', 'KILL', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options })
      const proc = trackProcess(name, child)
      processes.add(proc)
      void proc.exited.then(() => processes.delete(proc))
      return proc
    },
    cleanup,
  }
  return lab
}

const guards = new Set<() => void>()
let guardsInstalled = false

/** Runs `lastResort` if the process exits, or is told to stop, while a lab is still up. */
function guardUntilCleaned(lastResort: () => void): void {
  guards.add(lastResort)
  if (guardsInstalled) return
  guardsInstalled = true
  const runAll = () => {
    for (const guard of guards) guard()
    guards.clear()
  }
  process.on('exit', runAll)
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const onSignal = () => {
      // A program with its own handler (npm run lab) cleans up gracefully; otherwise a signal would
      // end the process without 'exit' handlers.
      if (process.listenerCount(signal) > 1) return
      runAll()
      process.exit(code)
    }
    process.on(signal, onSignal)
  }
}

function releaseGuard(lastResort: () => void): void {
  guards.delete(lastResort)
}

function trackProcess(name: string, child: ChildProcess): LabProcess {
  let stdout = ''
  let stderr = ''
  let done = false
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | string | null>((resolve) => {
    child.once('error', (error) => {
      stderr += `\n[spawn error] ${error.message}`
      done = true
      resolve(null)
    })
    child.once('exit', (code, signal) => {
      done = true
      resolve(code ?? signal)
    })
  })
  const pid = child.pid ?? -1
  return {
    child,
    pid,
    name,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    hasExited: () => done,
    async stop(graceMs = 3000) {
      if (done || pid <= 0) return
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        return
      }
      const timer = setTimeout(() => {
        if (!done) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // already gone
          }
        }
      }, graceMs)
      await exited
      clearTimeout(timer)
    },
  }
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  options: { intervalMs?: number; abort?: () => string | undefined } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    const aborted = options.abort?.()
    if (aborted) throw new Error(`gave up waiting for ${what}: ${aborted}`)
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200))
  }
}
