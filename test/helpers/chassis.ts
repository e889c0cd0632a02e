/**
 * The machine behind a test BMC: a chassis-control program speaking OpenIPMI's extcmd protocol
 * (`<program> <state dir> get power boot` prints `power:1` and `boot:pxe`; `<program> <state dir> set
 * power "1"` acts), keeping a stand-in machine: a process that runs while the machine is on (a lab
 * passes its QEMU command). ipmi_sim drives it through its `chassis_control` setting; the Redfish BMC
 * double through `chassisControl` below, so that both BMCs power a lab VM the same way. Each `set`
 * is appended to the state folder's `calls`, so a test sees what the BMC was asked to do.
 */
import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

const exec = promisify(execFile)

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

export interface StandInChassis {
  /** The extcmd program and its first argument, the machine's state folder. */
  program: string
  stateDir: string
  /** The `set` calls made of the chassis: `power 1`, `boot pxe`, `reset 1`, `shutdown 1`. */
  calls(): string[]
  machineOn(): boolean
  machinePid(): number | undefined
  /** The boot device last set (`none`, `pxe`, `default`: the disk). */
  bootDevice(): string
  /** While set, every change fails inside the chassis. */
  refuseChanges(refuse: boolean): void
  /** Ends the machine's process, if it runs. */
  kill(): void
}

/** Writes the program and a machine running `machineCommand` (default: a process that only waits) into `dir`. */
export function standInChassis(dir: string, machineCommand: string[] = ['sleep', '1000000'], poweredOn = false): StandInChassis {
  const program = path.join(dir, 'stand-in-machine.sh')
  const stateDir = path.join(dir, 'machine')
  writeFileSync(program, STAND_IN_MACHINE)
  chmodSync(program, 0o755)
  mkdirSync(stateDir, { recursive: true })
  // `exec`: the machine's PID is the command's own, so power off ends the command itself.
  const quoted = machineCommand.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ')
  writeFileSync(path.join(stateDir, 'machine.sh'), `exec ${quoted}\n`)
  if (poweredOn) execFileSync(program, [stateDir, 'set', 'power', '1'])
  return chassisAt(program, stateDir)
}

/** The view of a chassis whose program and state folder exist already (a caller's own program). */
export function chassisAt(program: string, stateDir: string): StandInChassis {
  const machinePid = (): number | undefined => (existsSync(path.join(stateDir, 'pid')) ? Number(readFileSync(path.join(stateDir, 'pid'), 'utf8')) : undefined)
  return {
    program,
    stateDir,
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
    bootDevice: () => (existsSync(path.join(stateDir, 'boot')) ? readFileSync(path.join(stateDir, 'boot'), 'utf8').trim() : 'default'),
    refuseChanges: (refuse) => {
      if (refuse) writeFileSync(path.join(stateDir, 'refuse'), '')
      else rmSync(path.join(stateDir, 'refuse'), { force: true })
    },
    kill: () => {
      const pid = machinePid()
      if (pid === undefined) return
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    },
  }
}

/** What a BMC double needs of its machine: the power state, power on or off, the next boot device. */
export interface ChassisControl {
  powerOn(): Promise<boolean>
  setPower(on: boolean): Promise<void>
  setBootDevice(device: 'pxe' | 'disk' | 'none'): Promise<void>
}

/** A chassis driven through its extcmd program, as ipmi_sim drives it. */
export function chassisControl(program: string, stateDir: string): ChassisControl {
  return {
    powerOn: async () => (await exec(program, [stateDir, 'get', 'power'])).stdout.includes('power:1'),
    setPower: async (on) => void (await exec(program, [stateDir, 'set', 'power', on ? '1' : '0'])),
    setBootDevice: async (device) => void (await exec(program, [stateDir, 'set', 'boot', device === 'disk' ? 'default' : device])),
  }
}
