/** Where the fakes write what they were asked, in order: an array does, or a test's own recorder. */
export interface CallJournal {
  push(call: string): unknown
}

/**
 * What the action fakes (drainer, shell, locks, applier) share: every call is written to `calls` as
 * one line ("drain n1"), and a test can script a given call to fail, or to wait until it lets it go
 * (to catch a worker in the middle of a phase, or to count what runs at once).
 */
export abstract class ScriptedFake {
  private readonly failures = new Map<string, unknown>()
  private readonly holds = new Map<string, { released: Promise<void>; release: () => void }>()

  constructor(readonly calls: CallJournal = []) {}

  /** Every call written `call` fails with `error` until `cure(call)`. */
  failOn(call: string, error: unknown = new Error(`${call}: failed (scripted)`)): this {
    this.failures.set(call, error)
    return this
  }

  cure(call: string): void {
    this.failures.delete(call)
  }

  /** Calls written `call` wait until the returned function is called (then go on, or fail if scripted to). */
  holdOn(call: string): () => void {
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const letGo = () => {
      this.holds.delete(call)
      release()
    }
    this.holds.set(call, { released, release: letGo })
    return letGo
  }

  /** Lets every held call go. */
  releaseAll(): void {
    for (const hold of [...this.holds.values()]) hold.release()
  }

  /** Records the call, then waits if it is held and fails if it is scripted to. */
  protected async called(call: string): Promise<void> {
    this.calls.push(call)
    const hold = this.holds.get(call)
    if (hold) await hold.released
    if (this.failures.has(call)) throw this.failures.get(call)
  }
}
