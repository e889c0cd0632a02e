import type { Db } from '../../src/storage/database.ts'
import { sleep } from './wait.ts'

export interface HolderSamples {
  samples: number
  /** The most holders the lock group had stored at any sample. */
  maxStored: number
}

/**
 * Counts a lock group's stored holders in a loop, through its own connection, until `stop()`: what
 * the semaphore tests compare with the group's slots while many lockers race.
 */
export function sampleLockHolders(watcher: Db, group: string, intervalMs: number): { stop(): Promise<HolderSamples> } {
  const result: HolderSamples = { samples: 0, maxStored: 0 }
  let done = false
  const sampling = (async () => {
    while (!done) {
      const { count } = await watcher.selectFrom('lock_holders').select((eb) => eb.fn.countAll<number>().as('count')).where('lock_group', '=', group).executeTakeFirstOrThrow()
      result.maxStored = Math.max(result.maxStored, Number(count))
      result.samples++
      await sleep(intervalMs)
    }
  })()
  return {
    stop: async () => {
      done = true
      await sampling
      return result
    },
  }
}
