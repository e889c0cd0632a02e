import type { RolloutPower } from '../../src/core/lifecycle/rollout-executor.ts'
import { ScriptedFake, type CallJournal } from './scripted-fake.ts'

/**
 * Machines' BMCs as the rollout executor sees them, in memory: each machine with a BMC is on or off;
 * `on` powers it on and `cycle` leaves it on (a real BMC's cycle ends with the machine on). Told of
 * every power change, so that a test's machine can boot (report its config) when it is powered on.
 * Calls are journaled as `power <on|cycle> <uuid>` (state reads are not: polls would flood the journal).
 */
export class FixedRolloutPower extends ScriptedFake implements RolloutPower {
  private readonly states = new Map<string, 'on' | 'off'>()

  constructor(
    machines: readonly string[],
    calls: CallJournal = [],
    private readonly poweredOn: (uuid: string, action: 'on' | 'cycle') => void = () => {},
  ) {
    super(calls)
    for (const uuid of machines) this.states.set(uuid, 'on')
  }

  /** The machine turned itself off (its OS ran `poweroff`). */
  turnedOff(uuid: string): void {
    if (this.states.has(uuid)) this.states.set(uuid, 'off')
  }

  stateOf(uuid: string): 'on' | 'off' | undefined {
    return this.states.get(uuid)
  }

  async hasBmc(uuid: string): Promise<boolean> {
    return this.states.has(uuid)
  }

  async state(uuid: string): Promise<'on' | 'off' | 'unknown'> {
    return this.states.get(uuid) ?? 'unknown'
  }

  async power(uuid: string, action: 'on' | 'cycle'): Promise<void> {
    await this.called(`power ${action} ${uuid}`)
    this.states.set(uuid, 'on')
    this.poweredOn(uuid, action)
  }
}
