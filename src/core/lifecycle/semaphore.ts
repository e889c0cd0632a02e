import { conflict, invalid } from '../errors.ts'

/**
 * The reboot lock: a counting semaphore per named group, with owned, recursive slots (locksmith's
 * semantics, which FleetLock keeps). A holder that locks again keeps its one slot; only a holder can
 * unlock; a slot may carry a TTL after which it is taken back, so that a machine that died holding it
 * does not block the fleet forever. Pure: the store persists what these functions return.
 */
export interface LockHolder {
  id: string
  /** ISO 8601 UTC. */
  acquiredAt: string
  /** ISO 8601 UTC, or null for a slot kept until released. */
  expiresAt: string | null
}

export interface LockGroup {
  name: string
  slots: number
  /** Each new slot expires after this many seconds; null: never. */
  ttlSeconds: number | null
  holders: LockHolder[]
}

/** FleetLock's group syntax, used for every group. */
export const GROUP_NAME_PATTERN = /^[a-zA-Z0-9.-]{1,64}$/
/** FleetLock: any non-empty case-sensitive label; bounded here so that a holder list stays small. */
export const HOLDER_ID_PATTERN = /^[\x21-\x7e]{1,128}$/
export const MAX_SLOTS = 1000

export function checkGroupName(name: string): string {
  if (!GROUP_NAME_PATTERN.test(name)) {
    throw invalid('INVALID_LOCK_GROUP', `lock group "${name.slice(0, 80)}" must match [a-zA-Z0-9.-]{1,64} (FleetLock's group syntax)`)
  }
  return name
}

export function checkHolderId(id: string): string {
  if (!HOLDER_ID_PATTERN.test(id)) throw invalid('INVALID_LOCK_HOLDER', 'a lock holder id must be 1 to 128 printable characters without spaces')
  return id
}

export function checkSlots(slots: number): number {
  if (!Number.isInteger(slots) || slots < 0 || slots > MAX_SLOTS) throw invalid('INVALID_LOCK_SLOTS', `slots must be an integer from 0 to ${MAX_SLOTS} (0 stops every new lock)`)
  return slots
}

export function newGroup(name: string, slots: number, ttlSeconds: number | null = null): LockGroup {
  if (ttlSeconds !== null && (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)) throw invalid('INVALID_LOCK_TTL', 'ttl_seconds must be a positive integer or null')
  return { name: checkGroupName(name), slots: checkSlots(slots), ttlSeconds, holders: [] }
}

/** Drops holders whose slot expired; returns the group and who was dropped. */
export function expireHolders(group: LockGroup, now: Date): { group: LockGroup; expired: LockHolder[] } {
  const at = now.toISOString()
  const expired = group.holders.filter((holder) => holder.expiresAt !== null && holder.expiresAt <= at)
  if (expired.length === 0) return { group, expired }
  return { group: { ...group, holders: group.holders.filter((holder) => !expired.includes(holder)) }, expired }
}

/**
 * RecursiveLock. A holder locking again succeeds and keeps its slot (its TTL is renewed). A new holder
 * gets a slot only while holders < slots: lowering `slots` never evicts anyone, it only stops new
 * locks until enough holders have left. Throws 409 SEMAPHORE_FULL otherwise.
 */
export function lock(group: LockGroup, holderId: string, now: Date): { group: LockGroup; alreadyHeld: boolean } {
  const expiresAt = group.ttlSeconds === null ? null : new Date(now.getTime() + group.ttlSeconds * 1000).toISOString()
  const existing = group.holders.find((holder) => holder.id === holderId)
  if (existing) {
    return { group: { ...group, holders: group.holders.map((holder) => (holder === existing ? { ...holder, expiresAt } : holder)) }, alreadyHeld: true }
  }
  if (group.holders.length >= group.slots) {
    throw conflict('SEMAPHORE_FULL', `lock group "${group.name}" is full: ${group.holders.length} of ${group.slots} slot(s) held (${group.holders.map((holder) => holder.id).join(', ') || 'none'})`, {
      group: group.name,
      slots: group.slots,
      holders: group.holders.map((holder) => holder.id),
    })
  }
  const holder: LockHolder = { id: holderId, acquiredAt: now.toISOString(), expiresAt }
  return { group: { ...group, holders: [...group.holders, holder] }, alreadyHeld: false }
}

/** UnlockIfHeld (FleetLock's steady-state): releasing a slot one does not hold is not an error. */
export function unlockIfHeld(group: LockGroup, holderId: string): { group: LockGroup; released: boolean } {
  const remaining = group.holders.filter((holder) => holder.id !== holderId)
  return { group: { ...group, holders: remaining }, released: remaining.length !== group.holders.length }
}

/** locksmith's unlock: only a holder may unlock (409 NOT_LOCK_HOLDER otherwise). */
export function unlock(group: LockGroup, holderId: string): LockGroup {
  const { group: released, released: wasHeld } = unlockIfHeld(group, holderId)
  if (!wasHeld) {
    throw conflict('NOT_LOCK_HOLDER', `"${holderId}" holds no slot of lock group "${group.name}" (holders: ${group.holders.map((holder) => holder.id).join(', ') || 'none'})`, {
      group: group.name,
    })
  }
  return released
}
