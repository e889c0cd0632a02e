import type { Logger } from 'pino'

/**
 * Whether this engine replica may run a job's background passes (src/jobs/job-lease.ts): with
 * replicas on one database, only the holder of the job's lease does.
 */
export interface JobGate {
  mayRun(): boolean
  /** A trigger arrived on a replica that may not run: pass it on to the one that may. */
  forward(reason: string): void
  /** Where the gate asks for a pass (this replica gained the lease, or another replica asked for one). */
  onWanted(pass: (reason: string) => void): void
}

export interface SerialJobOptions {
  /** Human name for the log ("scheduler", "drift re-check"). */
  name: string
  /** A pass every this many milliseconds; 0 runs passes only when triggered. */
  intervalMs: number
  /** Triggers come in bursts (a rack powering on, an operator editing files): one pass after the burst. */
  debounceMs: number
  logger: Logger
  /**
   * Whether triggers count before `start()`. The scheduler ignores them (tests drive it explicitly);
   * a re-check that only reads may run as soon as anything changes.
   */
  triggersBeforeStart?: boolean
  /**
   * Background passes (timer, start, triggers) run only while the gate allows; a trigger that may not
   * run here is forwarded. `runNow` (the API) is not gated: it answers on the replica that was asked.
   */
  gate?: JobGate
}

/**
 * A background job whose passes never overlap: on a timer, shortly after a trigger (debounced), and
 * on demand. Each pass waits for the one before, so a trigger that arrives during a pass is answered
 * by a pass that sees its change. A failing pass is logged and does not stop the job.
 */
export class SerialJob<T> {
  private tail: Promise<unknown> = Promise.resolve()
  private interval: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private started = false
  private stopped = false

  constructor(
    private readonly pass: (reason: string) => Promise<T>,
    protected readonly options: SerialJobOptions,
  ) {
    options.gate?.onWanted((reason) => this.trigger(reason))
  }

  start(): void {
    this.started = true
    if (this.options.intervalMs > 0) {
      this.interval = setInterval(() => this.runInBackground('interval'), this.options.intervalMs)
      this.interval.unref()
    }
    this.runInBackground('start')
  }

  /** Asks for a pass soon (debounced); ignored until the job is started. */
  trigger(reason: string): void {
    if ((!this.started && !this.options.triggersBeforeStart) || this.stopped || this.debounce) return
    this.debounce = setTimeout(() => {
      this.debounce = undefined
      this.runInBackground(reason, true)
    }, this.options.debounceMs)
    this.debounce.unref()
  }

  /** Runs a pass after any pass in progress and returns its result. */
  runNow(reason = 'api'): Promise<T> {
    const pass = this.tail.then(() => this.pass(reason))
    this.tail = pass.catch(() => undefined)
    return pass
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.interval)
    clearTimeout(this.debounce)
    await this.tail
  }

  private runInBackground(reason: string, triggered = false): void {
    if (this.stopped) return
    const gate = this.options.gate
    if (gate && !gate.mayRun()) {
      // Timer passes are the holder's own; a trigger (something changed here) is worth passing on.
      if (triggered) gate.forward(reason)
      return
    }
    this.runNow(reason).catch((error: unknown) => this.options.logger.error({ err: error, reason }, `${this.options.name} pass failed`))
  }
}
