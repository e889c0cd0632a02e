import { notFound, conflict } from '../errors.ts'
import { checkGroupName, checkHolderId, checkSlots, expireHolders, lock, newGroup, unlock, unlockIfHeld, type LockGroup } from './semaphore.ts'

/** The store port for lock groups; storage implements it. */
export interface LockRepository {
  /**
   * The group. Inside `transaction` the group is also kept from every other transaction's changes
   * until this one ends (a row lock on PostgreSQL), so that concurrent engines read, decide and write
   * one after the other.
   */
  findGroup(name: string): Promise<LockGroup | undefined>
  /** Stores `group` unless a group of its name exists (two first uses at once create it once); returns the stored group as `findGroup` does. */
  createGroup(group: LockGroup): Promise<LockGroup>
  /** Inserts or updates the group and replaces its holders. */
  saveGroup(group: LockGroup): Promise<void>
  listGroups(): Promise<LockGroup[]>
  deleteGroup(name: string): Promise<void>
  /** Runs `work` atomically: every read and write of a lock operation is one compare-and-swap. */
  transaction<T>(work: (repository: LockRepository) => Promise<T>): Promise<T>
}

export interface LockSettings {
  /** Slots of a group created on first use (Zincati's `default` group, or any group a client names). */
  defaultSlots: number
  /** TTL of slots in groups created on first use; null: none. */
  defaultTtlSeconds: number | null
}

/** Told after every committed change, e.g. for metrics and the log. */
export type LockObserver = (event: { group: string; holder: string; action: 'locked' | 'relocked' | 'released' | 'expired' | 'force_released' }) => void

/**
 * The lock semaphore in the store. Every operation reads, decides (semaphore.ts) and writes in one
 * transaction that holds the group (`findGroup`), so concurrent lockers, in one engine or in replicas
 * sharing a database, can never take more slots than there are: the transaction is the
 * compare-and-swap locksmith did against etcd.
 */
export class LockService {
  constructor(
    private readonly repository: LockRepository,
    private readonly settings: LockSettings,
    private readonly clock: () => Date = () => new Date(),
    private readonly observe: LockObserver = () => {},
  ) {}

  async lock(groupName: string, holderId: string, now: Date = this.clock()): Promise<{ group: LockGroup; alreadyHeld: boolean }> {
    checkGroupName(groupName)
    checkHolderId(holderId)
    const result = await this.repository.transaction(async (repository) => {
      const { group, expired } = await this.current(repository, groupName, now)
      const locked = lock(group, holderId, now)
      await repository.saveGroup(locked.group)
      return { ...locked, expired }
    })
    for (const holder of result.expired) this.observe({ group: groupName, holder: holder.id, action: 'expired' })
    this.observe({ group: groupName, holder: holderId, action: result.alreadyHeld ? 'relocked' : 'locked' })
    return { group: result.group, alreadyHeld: result.alreadyHeld }
  }

  /** FleetLock's steady-state: success whether or not the slot was held. */
  async unlockIfHeld(groupName: string, holderId: string, now: Date = this.clock()): Promise<boolean> {
    checkGroupName(groupName)
    checkHolderId(holderId)
    const released = await this.repository.transaction(async (repository) => {
      const existing = await repository.findGroup(groupName)
      if (!existing) return false
      const result = unlockIfHeld(expireHolders(existing, now).group, holderId)
      await repository.saveGroup(result.group)
      return result.released
    })
    if (released) this.observe({ group: groupName, holder: holderId, action: 'released' })
    return released
  }

  /** locksmith's unlock: 409 NOT_LOCK_HOLDER for a non-holder, 404 for an unknown group. */
  async unlock(groupName: string, holderId: string, now: Date = this.clock()): Promise<LockGroup> {
    const group = await this.repository.transaction(async (repository) => {
      const existing = await this.existing(repository, groupName)
      const released = unlock(expireHolders(existing, now).group, holderId)
      await repository.saveGroup(released)
      return released
    })
    this.observe({ group: groupName, holder: holderId, action: 'released' })
    return group
  }

  /** An operator clears a holder that will never come back (a dead machine). */
  async forceRelease(groupName: string, holderId: string): Promise<LockGroup> {
    const group = await this.repository.transaction(async (repository) => {
      const existing = await this.existing(repository, groupName)
      const result = unlockIfHeld(existing, holderId)
      if (!result.released) throw notFound('LOCK_HOLDER_NOT_FOUND', `"${holderId}" holds no slot of lock group "${groupName}"`)
      await repository.saveGroup(result.group)
      return result.group
    })
    this.observe({ group: groupName, holder: holderId, action: 'force_released' })
    return group
  }

  /**
   * Creates a group or changes its slots and TTL. Fewer slots than holders is allowed: nobody is
   * evicted, new locks wait until enough holders leave. A new TTL applies to slots taken from now on.
   */
  async putGroup(groupName: string, slots: number, ttlSeconds: number | null): Promise<LockGroup> {
    checkGroupName(groupName)
    checkSlots(slots)
    return this.repository.transaction(async (repository) => {
      const existing = (await repository.findGroup(groupName)) ?? (await repository.createGroup(newGroup(groupName, slots, ttlSeconds)))
      const group = { ...newGroup(groupName, slots, ttlSeconds), holders: existing.holders }
      await repository.saveGroup(group)
      return group
    })
  }

  /** Sets a group's slots, keeping its TTL and holders (created with the default TTL if missing). */
  async setSlots(groupName: string, slots: number): Promise<LockGroup> {
    checkGroupName(groupName)
    checkSlots(slots)
    return this.repository.transaction(async (repository) => {
      const existing = (await repository.findGroup(groupName)) ?? (await repository.createGroup(newGroup(groupName, slots, this.settings.defaultTtlSeconds)))
      const group = { ...existing, slots }
      await repository.saveGroup(group)
      return group
    })
  }

  async getGroup(groupName: string, now: Date = this.clock()): Promise<LockGroup> {
    checkGroupName(groupName)
    return expireHolders(await this.existing(this.repository, groupName), now).group
  }

  async listGroups(now: Date = this.clock()): Promise<LockGroup[]> {
    return (await this.repository.listGroups()).map((group) => expireHolders(group, now).group)
  }

  async deleteGroup(groupName: string): Promise<void> {
    await this.repository.transaction(async (repository) => {
      const existing = await this.existing(repository, groupName)
      if (existing.holders.length) {
        throw conflict('LOCK_GROUP_HELD', `lock group "${groupName}" has holders (${existing.holders.map((holder) => holder.id).join(', ')}); release them first`)
      }
      await repository.deleteGroup(groupName)
    })
  }

  private async existing(repository: LockRepository, groupName: string): Promise<LockGroup> {
    const group = await repository.findGroup(checkGroupName(groupName))
    if (!group) throw notFound('LOCK_GROUP_NOT_FOUND', `lock group "${groupName}" does not exist`)
    return group
  }

  /** The group with expired slots dropped, created with the defaults if it does not exist yet. */
  private async current(repository: LockRepository, groupName: string, now: Date) {
    const existing = (await repository.findGroup(groupName)) ?? (await repository.createGroup(newGroup(groupName, this.settings.defaultSlots, this.settings.defaultTtlSeconds)))
    return expireHolders(existing, now)
  }
}
