import type { CommandResult, MachineShell, SshTarget } from '../../src/core/lifecycle/ports.ts'
import { failing } from './intentional-error.ts'
import { ScriptedFake, type CallJournal } from './scripted-fake.ts'

export interface FakeMachine {
  /** What the apply command exits with; null (the default): the connection drops as the machine restarts. */
  exitCode?: number | null
  stderr?: string
  /** The host key the machine presents. */
  hostKey?: string
}

/** What SSH reports for an address where nothing answers. */
export const connectionRefused = (host: string) => Object.assign(new Error(`connect ECONNREFUSED ${host}:22`), { code: 'ECONNREFUSED' })

/**
 * The machines reachable over SSH, by address: files written are kept in `files`, a command run ends
 * as the machine says (by default the connection drops, as a reboot does, and `restarted` is told the
 * host so that a test can make the machine report its new config). An unknown address refuses the
 * connection. Calls are written "writeFile <host> <path>" and "run <host> <command>" and can be
 * scripted to fail or wait (ScriptedFake).
 */
export class FixedMachineShell extends ScriptedFake implements MachineShell {
  readonly files = new Map<string, { content: string; mode: number }>()

  constructor(
    private readonly machines: Record<string, FakeMachine> = {},
    calls: CallJournal = [],
    private readonly restarted: (host: string, command: string) => void = () => {},
  ) {
    super(calls)
  }

  async run(target: SshTarget, command: string): Promise<CommandResult & { hostKey: string }> {
    await this.called(`run ${target.host} ${command}`)
    const machine = this.machine(target.host)
    const hostKey = machine.hostKey ?? `ssh-ed25519 AAAAfake${target.host}`
    const exitCode = machine.exitCode ?? null
    if (exitCode !== null) return { exitCode, stdout: '', stderr: machine.stderr ?? '', hostKey }
    this.restarted(target.host, command)
    return { exitCode: null, signal: 'SIGHUP', stdout: '', stderr: '', hostKey }
  }

  async writeFile(target: SshTarget, path: string, content: string, mode: number): Promise<void> {
    await this.called(`writeFile ${target.host} ${path}`)
    this.machine(target.host)
    this.files.set(`${target.host}:${path}`, { content, mode })
  }

  /** Changes how a machine answers from now on. */
  setMachine(host: string, machine: FakeMachine): void {
    this.machines[host] = machine
  }

  private machine(host: string): FakeMachine {
    const machine = this.machines[host]
    if (!machine) throw connectionRefused(host)
    return machine
  }
}

/** No machine answers: every connection is refused. */
export class EmptyMachineShell extends FixedMachineShell {
  constructor(calls: CallJournal = []) {
    super({}, calls)
  }
}

/** A shell whose every call fails. */
export class BrokenMachineShell implements MachineShell {
  run(): Promise<CommandResult & { hostKey: string }> {
    return failing('MachineShell.run')
  }
  writeFile(): Promise<void> {
    return failing('MachineShell.writeFile')
  }
}
