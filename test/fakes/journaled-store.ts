/**
 * The transactions of the in-memory Fixed* repositories, as SQLite gives them to the real ones: one
 * at a time, on a snapshot taken when it starts, all of their writes or none. Writes outside a
 * transaction land at once and are not lost when one commits: a commit replays the transaction's
 * writes instead of copying its snapshot back.
 */
export abstract class JournaledStore<S> {
  private tail: Promise<unknown> = Promise.resolve()
  /** Set on a transaction's draft: its writes, replayed on the store at commit. */
  private journal: Array<(state: S) => void> | undefined

  protected constructor(protected readonly state: S) {}

  /** A store of the same kind over a copy of the state, deep enough that writing to it leaves this one alone. */
  protected abstract snapshot(): JournaledStore<S>

  protected write(change: (state: S) => void): void {
    change(this.state)
    this.journal?.push(change)
  }

  protected serially<T, R extends JournaledStore<S>>(this: R, work: (draft: R) => Promise<T>): Promise<T> {
    // A nested transaction joins the outer one, as the real repositories' do.
    if (this.journal) return work(this)
    const run = this.tail.then(async () => {
      const draft = this.snapshot() as R
      draft.journal = []
      const result = await work(draft)
      for (const change of draft.journal) change(this.state)
      return result
    })
    this.tail = run.catch(() => {})
    return run
  }
}
