import type { RolloutLocks } from '../../src/core/lifecycle/rollout-executor.ts'
import { lock, newGroup, unlockIfHeld, type LockGroup } from '../../src/core/lifecycle/semaphore.ts'
import { failing } from './intentional-error.ts'
import { ScriptedFake, type CallJournal } from './scripted-fake.ts'

/** The lock groups port of RolloutService (the run's parallelism becomes its clusters' slots). */
export interface LockGroupSlots {
  setSlots(group: string, slots: number): Promise<unknown>
}

/**
 * The reboot lock semaphore with the given groups (slots and holders), in memory. The counting is the
 * core's own (semaphore.ts: recursive, SEMAPHORE_FULL when no slot is free); a group locked before it
 * exists is created with `defaultSlots`, as LockService does. Calls can be scripted (ScriptedFake).
 */
export class FixedRolloutLocks extends ScriptedFake implements RolloutLocks, LockGroupSlots {
  private readonly groups = new Map<string, LockGroup>()

  constructor(
    groups: Record<string, { slots: number; holders?: string[] }> = {},
    calls: CallJournal = [],
    private readonly defaultSlots = 1,
  ) {
    super(calls)
    for (const [name, { slots, holders = [] }] of Object.entries(groups)) {
      this.groups.set(name, { ...newGroup(name, slots), holders: holders.map((id) => ({ id, acquiredAt: EPOCH, expiresAt: null })) })
    }
  }

  async lock(group: string, holder: string): Promise<unknown> {
    await this.called(`lock ${group} ${holder}`)
    const locked = lock(this.groups.get(group) ?? newGroup(group, this.defaultSlots), holder, new Date(EPOCH))
    this.groups.set(group, locked.group)
    return locked
  }

  async unlockIfHeld(group: string, holder: string): Promise<boolean> {
    await this.called(`unlock ${group} ${holder}`)
    const existing = this.groups.get(group)
    if (!existing) return false
    const result = unlockIfHeld(existing, holder)
    this.groups.set(group, result.group)
    return result.released
  }

  async setSlots(group: string, slots: number): Promise<unknown> {
    await this.called(`setSlots ${group} ${slots}`)
    const existing = this.groups.get(group) ?? newGroup(group, slots)
    this.groups.set(group, { ...existing, slots })
    return this.groups.get(group)
  }

  /** Who holds a slot of `group` now. */
  holders(group: string): string[] {
    return this.groups.get(group)?.holders.map((holder) => holder.id) ?? []
  }

  slots(group: string): number | undefined {
    return this.groups.get(group)?.slots
  }
}

/** No lock group exists yet: the first lock of a group creates it with one slot. */
export class EmptyRolloutLocks extends FixedRolloutLocks {
  constructor(calls: CallJournal = []) {
    super({}, calls)
  }
}

/** A lock store whose every call fails. */
export class BrokenRolloutLocks implements RolloutLocks, LockGroupSlots {
  lock(): Promise<unknown> {
    return failing('RolloutLocks.lock')
  }
  unlockIfHeld(): Promise<boolean> {
    return failing('RolloutLocks.unlockIfHeld')
  }
  setSlots(): Promise<unknown> {
    return failing('RolloutLocks.setSlots')
  }
}

const EPOCH = '2026-01-01T00:00:00.000Z'
