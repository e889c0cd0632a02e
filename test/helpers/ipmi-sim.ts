/**
 * A real IPMI 2.0 BMC for tests: OpenIPMI's ipmi_sim (Debian `openipmi`) on a UDP port of a loopback
 * address, speaking RMCP+ to whatever client asks. What it manages is a stand-in machine behind a
 * chassis-control program (chassis.ts: ipmi_sim's `chassis_control`, OpenIPMI's extcmd protocol), a
 * process that runs while the machine is on; the lab's runs a QEMU VM. Each change the BMC makes is
 * in `calls`, so a test sees what the BMC was asked to do.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { standInChassis } from './chassis.ts'
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
  /** Stops the BMC alone (its machine runs on, its settings stay), as a BMC that went down; `restart` brings it back. */
  crash(): Promise<void>
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
  /** What runs while the machine is on (default: a process that only waits); a lab passes its QEMU command. */
  machineCommand?: string[]
  /**
   * The LAN settings the BMC shows (`ipmitool lan print`), answered by a `lan_config_program`; by
   * default none (0.0.0.0, MAC 00:00:00:00:00:00, source Unspecified).
   */
  lanSettings?: { ipAddress: string; macAddress: string; source: 'static' | 'dhcp' }
}

export async function startIpmiSim(options: IpmiSimOptions = {}): Promise<IpmiSim> {
  const host = options.host ?? '127.0.0.1'
  const username = options.username ?? 'admin'
  const password = options.password ?? 'lab-bmc-pw'
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-ipmi-sim-'))
  const chassis = standInChassis(dir, options.machineCommand, options.poweredOn)
  const { program, stateDir } = chassis
  writeFileSync(path.join(dir, 'bmc.emu'), ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n'))
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

  let child: LaunchedProcess | undefined
  const launch = async (): Promise<void> => {
    const args = ['-c', path.join(dir, 'lan.conf'), '-f', path.join(dir, 'bmc.emu'), '-s', path.join(dir, 'sim-state'), '-n', '-p']
    const started = options.launch ? options.launch(args) : spawnLocally(args)
    child = started
    // Up once its UDP port is bound, as its own network namespace sees it.
    await until('ipmi_sim listening', () => (started.hasExited() ? Promise.reject(new Error('ipmi_sim exited at start')) : udpPortBound(started.pid, host, port) || undefined), 10_000, 50)
  }
  await launch()

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
    calls: chassis.calls,
    machinePid: chassis.machinePid,
    machineOn: chassis.machineOn,
    refuseChanges: chassis.refuseChanges,
    bootDevice: chassis.bootDevice,
    stop: async () => {
      await stopChild()
      chassis.kill()
      rmSync(dir, { recursive: true, force: true })
    },
    restart: async () => {
      await stopChild()
      await launch()
    },
    crash: stopChild,
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
