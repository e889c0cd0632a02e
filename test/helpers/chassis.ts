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
# The machine's process is known by its PID and its start time: a machine that stopped by itself
# leaves its PID behind, and the kernel gives PIDs out again (a long test run wraps them), so a PID
# alone could name, and kill, another test's process.
stat_of() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $1, $20}'; }
running() {
  [ -f "$dir/pid" ] || return 1
  read -r pid started < "$dir/pid"
  set -- $(stat_of "$pid")
  [ -n "\${2:-}" ] && [ "$2" = "$started" ] && [ "$1" != Z ]
}
start() { setsid sh "$dir/machine.sh" </dev/null >/dev/null 2>&1 & pid=$!; set -- $(stat_of "$pid"); echo "$pid \${2:-0}" > "$dir/pid"; }
stop() { if running; then kill "$pid" 2>/dev/null; fi; rm -f "$dir/pid"; }
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
  // The PID file holds `<pid> <start time>`: only a live process with that start time is the machine.
  const machinePid = (): number | undefined => {
    const file = path.join(stateDir, 'pid')
    if (!existsSync(file)) return undefined
    const [pid, started] = readFileSync(file, 'utf8').trim().split(' ').map(Number)
    const stat = processStat(pid!)
    return stat && stat.startTime === started && stat.state !== 'Z' ? pid : undefined
  }
  return {
    program,
    stateDir,
    calls: () => (existsSync(path.join(stateDir, 'calls')) ? readFileSync(path.join(stateDir, 'calls'), 'utf8').trim().split('\n').filter(Boolean) : []),
    machinePid,
    machineOn: () => machinePid() !== undefined,
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

/** A process's state letter and start time (clock ticks after boot), from /proc; undefined when there is none. */
function processStat(pid: number): { state: string; startTime: number } | undefined {
  try {
    // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')
    return { state: fields[0]!, startTime: Number(fields[19]) }
  } catch {
    return undefined
  }
}
