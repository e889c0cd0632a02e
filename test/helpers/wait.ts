/**
 * Waiting in tests: a plain pause, and polling a check until it holds. One copy for every test, so
 * that a timeout reads the same everywhere and says what was awaited and for how long.
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export interface UntilOptions {
  /** Asked after each unmet check: a reason ends the wait at once (a VM died, a child exited) instead of at the timeout. */
  abort?: () => string | undefined
}

/**
 * Calls `check` every `intervalMs` until it answers something other than `undefined` or `false`, and
 * returns that answer; throws `timed out after N ms waiting for <what>` once `timeoutMs` have passed.
 * The check runs once more after the deadline, so a slow last poll still counts.
 */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
  intervalMs = 50,
  options: UntilOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    // `false` is "not yet" too, so a boolean check needs no `|| undefined`.
    if (value !== undefined && value !== false) return value
    const reason = options.abort?.()
    if (reason) throw new Error(`gave up waiting for ${what}: ${reason}`)
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}
