/**
 * A real IPMI 2.0 BMC for tests: OpenIPMI's ipmi_sim (Debian `openipmi`) on a UDP port of a loopback
 * address, speaking RMCP+ to whatever client asks. What it manages is given by a chassis-control
 * program (ipmi_sim's `chassis_control`, OpenIPMI's extcmd protocol: `<program> get power boot`
 * prints `power:1` and `boot:pxe`; `<program> set power "1"` acts). The default program here keeps a
 * stand-in machine, a process that runs while the machine is on; the lab gives one that runs a QEMU VM.
 * Each `set` is appended to `calls` with its time, so a test sees what the BMC was asked to do.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { until } from './wait.ts'

export interface IpmiSim {
  host: string
  port: number
  username: string
  password: string
  /** The `set` calls the BMC made of its chassis program: `power 1`, `boot pxe`, `reset 1`, `shutdown 1`. */
  calls(): string[]
  /** Whether the stand-in machine is running. */
  machineOn(): boolean
  /** The PID of the machine's process while it runs. */
  machinePid(): number | undefined
  /** The boot device the BMC last set (`none`, `pxe`, `default`: the disk). */
  bootDevice(): string
  /** While set, every change the BMC is asked for fails inside it (the BMC answers with an error). */
  refuseChanges(refuse: boolean): void
  /** Stops the BMC (and the machine it runs); the port stops answering. */
  stop(): Promise<void>
  /** Starts it again on the same port, as a BMC that rebooted. */
  restart(): Promise<void>
}

/** A started process as the caller's launcher gives it back (the lab's runs inside its namespace). */
export interface LaunchedProcess {
  pid: number
  hasExited(): boolean
  stop(): Promise<void>
}

export interface IpmiSimOptions {
  host?: string
  /** The UDP port; by default a free one on `host` (only knowable in this process's namespace). */
  port?: number
  /** Starts ipmi_sim with these arguments (the lab: inside its namespace); by default a child of this process. */
  launch?: (args: string[]) => LaunchedProcess
  username?: string
  password?: string
  /** Power the stand-in machine on at start. */
  poweredOn?: boolean
  /** A chassis-control program of the caller's (it gets the state folder as its first argument). */
  chassisProgram?: string
  /** What runs while the machine is on (default: a process that only waits); a lab passes its QEMU command. */
  machineCommand?: string[]
  /**
   * The LAN settings the BMC shows (`ipmitool lan print`), answered by a `lan_config_program`; by
   * default none (0.0.0.0, MAC 00:00:00:00:00:00, source Unspecified).
   */
  lanSettings?: { ipAddress: string; macAddress: string; source: 'static' | 'dhcp' }
}

const STAND_IN_MACHINE = `#!/bin/sh
# OpenIPMI extcmd: $0 <state dir> get <names...> | set <name> "<value>" [<name> "<value>" ...]
dir=$1; shift; op=$1; shift
running() { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }
start() { setsid sh "$dir/machine.sh" </dev/null >/dev/null 2>&1 & echo $! > "$dir/pid"; }
stop() { if [ -f "$dir/pid" ]; then kill "$(cat "$dir/pid")" 2>/dev/null; rm -f "$dir/pid"; fi; }
if [ "$op" = get ]; then
  for name in "$@"; do
    case $name in
      power) if running; then echo "power:1"; else echo "power:0"; fi ;;
      boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
      *) echo "$name:0" ;;
    esac
  done
  exit 0
fi
# A machine that refuses: ipmi_sim answers the client with an error completion code.
[ -f "$dir/refuse" ] && exit 1
while [ $# -gt 1 ]; do
  name=$1; value=$2; shift 2
  echo "$name $value" >> "$dir/calls"
  case $name in
    power) if [ "$value" = 1 ]; then running || start; else stop; fi ;;
    reset) if running; then stop; start; fi ;;
    shutdown) stop ;;
    boot) echo "$value" > "$dir/boot" ;;
  esac
done
`

export async function startIpmiSim(options: IpmiSimOptions = {}): Promise<IpmiSim> {
  const host = options.host ?? '127.0.0.1'
  const username = options.username ?? 'admin'
  const password = options.password ?? 'lab-bmc-pw'
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-ipmi-sim-'))
  const stateDir = path.join(dir, 'machine')
  const program = options.chassisProgram ?? path.join(dir, 'stand-in-machine.sh')
  if (!options.chassisProgram) {
    writeFileSync(program, STAND_IN_MACHINE)
    chmodSync(program, 0o755)
  }
  writeFileSync(path.join(dir, 'bmc.emu'), ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n'))
  mkdirSync(stateDir, { recursive: true })
  const port = options.port ?? (await freeUdpPort(host))
  const lanSettings = options.lanSettings
  if (lanSettings) {
    // OpenIPMI's lan_config_program protocol: `<program> <device> get <name>...` prints `<name>:<value>` lines.
    const answers = { ip_addr: lanSettings.ipAddress, ip_addr_src: lanSettings.source, mac_addr: lanSettings.macAddress, subnet_mask: '255.255.255.0' }
    const cases = Object.entries(answers).map(([name, value]) => `    ${name}) echo "${name}:${value}" ;;`)
    writeFileSync(path.join(dir, 'lan-settings.sh'), ['#!/bin/sh', 'shift; [ "$1" = get ] || exit 0; shift', 'for name in "$@"; do', '  case $name in', ...cases, '    *_mac_addr) echo "$name:00:00:00:00:00:00" ;;', '    *) echo "$name:0.0.0.0" ;;', '  esac', 'done', ''].join('\n'))
    chmodSync(path.join(dir, 'lan-settings.sh'), 0o755)
  }
  writeFileSync(
    path.join(dir, 'lan.conf'),
    [
      'name "slipway-test-bmc"',
      'set_working_mc 0x20',
      '  startlan 1',
      `    addr ${host} ${port}`,
      '    priv_limit admin',
      ...['callback', 'user', 'operator', 'admin'].map((level) => `    allowed_auths_${level} none md2 md5 straight`),
      '    guid a123456789abcdefa123456789abcdef',
      ...(lanSettings ? [`    lan_config_program "${path.join(dir, 'lan-settings.sh')} eth0"`] : []),
      '  endlan',
      `  chassis_control "${program} ${stateDir}"`,
      `  user 2 true "${username}" "${password}" admin 10 none md2 md5 straight`,
      '',
    ].join('\n'),
  )
  // `exec`: the machine's PID is the command's own, so power off ends the command itself.
  const quoted = (options.machineCommand ?? ['sleep', '1000000']).map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ')
  writeFileSync(path.join(stateDir, 'machine.sh'), `exec ${quoted}\n`)
  if (options.poweredOn) execFileSync(program, [stateDir, 'set', 'power', '1'])

  let child: LaunchedProcess | undefined
  const launch = async (): Promise<void> => {
    const args = ['-c', path.join(dir, 'lan.conf'), '-f', path.join(dir, 'bmc.emu'), '-s', path.join(dir, 'sim-state'), '-n', '-p']
    const started = options.launch ? options.launch(args) : spawnLocally(args)
    child = started
    // Up once its UDP port is bound, as its own network namespace sees it.
    await until('ipmi_sim listening', () => (started.hasExited() ? Promise.reject(new Error('ipmi_sim exited at start')) : udpPortBound(started.pid, host, port) || undefined), 10_000, 50)
  }
  await launch()

  const machinePid = (): number | undefined => (existsSync(path.join(stateDir, 'pid')) ? Number(readFileSync(path.join(stateDir, 'pid'), 'utf8')) : undefined)
  const stopChild = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running && !running.hasExited()) await running.stop()
  }
  return {
    host,
    port,
    username,
    password,
    calls: () => (existsSync(path.join(stateDir, 'calls')) ? readFileSync(path.join(stateDir, 'calls'), 'utf8').trim().split('\n').filter(Boolean) : []),
    machinePid,
    machineOn: () => {
      const pid = machinePid()
      if (pid === undefined) return false
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    },
    refuseChanges: (refuse) => {
      if (refuse) writeFileSync(path.join(stateDir, 'refuse'), '')
      else rmSync(path.join(stateDir, 'refuse'), { force: true })
    },
    bootDevice: () => (existsSync(path.join(stateDir, 'boot')) ? readFileSync(path.join(stateDir, 'boot'), 'utf8').trim() : 'default'),
    stop: async () => {
      await stopChild()
      if (!options.chassisProgram) {
        const pid = machinePid()
        if (pid !== undefined) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // already gone
          }
        }
        rmSync(dir, { recursive: true, force: true })
      }
    },
    restart: async () => {
      await stopChild()
      await launch()
    },
  }
}

/** A UDP port nothing holds on `host` now (the kernel's choice, released for ipmi_sim to take). */
async function freeUdpPort(host: string): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, host, resolve))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

function spawnLocally(args: string[]): LaunchedProcess {
  const started: ChildProcess = spawn('ipmi_sim', args, { stdio: ['ignore', 'ignore', 'ignore'] })
  const exited = once(started, 'exit')
  const hasExited = () => started.exitCode !== null || started.signalCode !== null
  return {
    pid: started.pid!,
    hasExited,
    stop: async () => {
      if (hasExited()) return
      started.kill('SIGTERM')
      await exited
    },
  }
}

/** Whether some socket is bound to UDP `host:port` in the network namespace of process `pid`. */
function udpPortBound(pid: number, host: string, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const hexHost = host.split('.').map((part) => Number(part).toString(16).toUpperCase().padStart(2, '0')).reverse().join('')
  try {
    return readFileSync(`/proc/${pid}/net/udp`, 'utf8').split('\n').some((line) => line.includes(`${hexHost}:${hexPort} `))
  } catch {
    return false
  }
}
