/**
 * What every Broken* fake fails with, as matchbox's BrokenStore answers `errIntentional`: one error a
 * test can tell from a real failure, naming the port and method that was called.
 */
export class IntentionalError extends Error {
  readonly code = 'INTENTIONAL_ERROR'

  constructor(readonly call: string) {
    super(`${call}: intentional error of a broken fake`)
    this.name = 'IntentionalError'
  }
}

/** A rejected call of a broken fake. */
export const failing = (call: string): Promise<never> => Promise.reject(new IntentionalError(call))
