/**
 * The clock and sleep ports of the executors, on a time that moves only when a sleep asks it to: a
 * worker polling every 500 ms for fifteen minutes gets there in a few milliseconds, and a timeout is
 * exact. A sleep resolves on the next turn of the event loop so that every other worker runs first.
 */
export class ManualClock {
  private time: number

  constructor(start = '2026-11-21T10:00:00.000Z') {
    this.time = Date.parse(start)
  }

  readonly now = (): Date => new Date(this.time)

  readonly sleep = async (ms: number): Promise<void> => {
    this.time += ms
    await new Promise<void>((resolve) => setImmediate(resolve))
  }

  advance(ms: number): void {
    this.time += ms
  }

  /** The current time in ISO form, `ms` from now. */
  iso(ms = 0): string {
    return new Date(this.time + ms).toISOString()
  }
}
