import { setTimeout as sleep } from 'node:timers/promises'
import { CliError, EXIT, type ExitCode } from './cli-error.ts'
import type { OutputStream } from './output.ts'
import { cellText, truncate } from './table.ts'

/** Where a fan-out (clusters of a release) or a rollout (machines of a run) stands. */
export interface ProgressCounts {
  /** Finished well: clusters ready at the current revision, machines done. */
  done: number
  failed: number
  total: number
  /** What moves now, e.g. "applying: eu-1, eu-2" or "paused". */
  detail?: string
}

const BAR_WIDTH = 24

/** "3/5 ready, 1 failed" (the noun says what done means). */
export function describeCounts(counts: ProgressCounts, doneWord: string): string {
  const failed = counts.failed > 0 ? `, ${counts.failed} failed` : ''
  return `${counts.done}/${counts.total} ${doneWord}${failed}${counts.detail ? ` (${counts.detail})` : ''}`
}

/**
 * A progress bar redrawn in place with \r on a terminal; on a pipe or file, a plain line each time
 * the counts change (and never the same line twice), so that logs stay readable.
 */
export class ProgressDisplay {
  private lastLine = ''
  private barShown = false

  constructor(
    private readonly stream: OutputStream,
    private readonly label: string,
    private readonly doneWord: string,
  ) {}

  update(counts: ProgressCounts): void {
    const text = describeCounts(counts, this.doneWord)
    if (!this.stream.isTTY) {
      const line = `${this.label}: ${text}`
      if (line !== this.lastLine) this.stream.write(`${line}\n`)
      this.lastLine = line
      return
    }
    const filled = counts.total === 0 ? BAR_WIDTH : Math.round((BAR_WIDTH * (counts.done + counts.failed)) / counts.total)
    const failedCells = counts.total === 0 ? 0 : Math.min(filled, Math.round((BAR_WIDTH * counts.failed) / counts.total))
    const bar = `[${'#'.repeat(filled - failedCells)}${'x'.repeat(failedCells)}${'.'.repeat(BAR_WIDTH - filled)}]`
    const line = truncate(`${this.label} ${bar} ${text}`, Math.max(20, (this.stream.columns ?? 80) - 1))
    // \x1b[K clears what a longer previous line left on the right.
    this.stream.write(`\r${line}\x1b[K`)
    this.lastLine = line
    this.barShown = true
  }

  /** A line above the bar (an event), which the bar is then redrawn under. */
  log(line: string): void {
    const text = cellText(line)
    if (this.stream.isTTY && this.barShown) {
      this.stream.write(`\r\x1b[K${text}\n${this.lastLine}`)
    } else {
      this.stream.write(`${text}\n`)
    }
  }

  /** Leaves the bar's last state on its own line. */
  end(): void {
    if (this.stream.isTTY && this.barShown) this.stream.write('\n')
    this.barShown = false
  }
}

/** One look at the watched thing: its progress, new event lines, and whether it has ended. */
export interface WatchStep {
  counts: ProgressCounts
  events: string[]
  /** undefined while it goes on. */
  outcome?: 'succeeded' | 'failed'
}

export interface WatchOptions {
  display: ProgressDisplay
  poll: (signal: AbortSignal) => Promise<WatchStep>
  intervalMs: number
  /** 0: no limit. */
  timeoutMs: number
  /** Said when the wait ends early, e.g. "the rollout goes on; slipway rollouts show <id>". */
  goesOn: string
}

/**
 * Polls until the watched operation ends. Exit code: 0 succeeded, 1 failed, 7 timed out,
 * 130 interrupted (Ctrl-C stops watching, not the operation).
 */
export async function watch(options: WatchOptions): Promise<ExitCode> {
  const interrupt = new AbortController()
  const onSignal = () => interrupt.abort()
  process.once('SIGINT', onSignal)
  const deadline = options.timeoutMs > 0 ? Date.now() + options.timeoutMs : Infinity
  try {
    for (;;) {
      const step = await options.poll(interrupt.signal)
      for (const event of step.events) options.display.log(event)
      options.display.update(step.counts)
      if (step.outcome) {
        options.display.end()
        return step.outcome === 'succeeded' ? EXIT.ok : EXIT.failed
      }
      if (Date.now() + options.intervalMs > deadline) {
        options.display.end()
        throw new CliError(EXIT.waitTimeout, 'WAIT_TIMEOUT', `still in progress when --wait-timeout ran out; ${options.goesOn}`)
      }
      await sleep(options.intervalMs, undefined, { signal: interrupt.signal })
    }
  } catch (error) {
    if (interrupt.signal.aborted) {
      options.display.end()
      throw new CliError(EXIT.interrupted, 'INTERRUPTED', `stopped watching; ${options.goesOn}`)
    }
    throw error
  } finally {
    process.removeListener('SIGINT', onSignal)
  }
}

/** Remembers which events were printed, so each poll prints only the new ones. */
export class EventTail {
  private readonly seen = new Set<string>()
  private first = true

  /** On the first call only the last `backlog` events are returned (the context); later, every new one. */
  take<E>(events: E[], key: (event: E) => string, render: (event: E) => string, backlog = 5): string[] {
    const fresh = events.filter((event) => !this.seen.has(key(event)))
    for (const event of fresh) this.seen.add(key(event))
    const shown = this.first ? fresh.slice(-backlog) : fresh
    this.first = false
    return shown.map(render)
  }
}
