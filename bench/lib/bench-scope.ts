import { promises as fs, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { killAllSync, stopAll } from './processes.ts'

/**
 * What a benchmark run owns and must give back however it ends: every process it started (stopped
 * by PID), its temp folder, and whatever else it registers (`onCleanup`, e.g. network namespaces).
 * Ctrl-C and SIGTERM clean up and exit; process exit is the last resort for anything skipped.
 */
export class BenchScope {
  /** The run's temp folder, once made. */
  tmp: string | undefined
  /** Set when a signal ended the run: its handler cleans up and exits. */
  interrupted = false
  private cleaning: Promise<void> | undefined
  private readonly extra: { async: () => Promise<void> | void; sync: () => void }[] = []

  constructor(what = "the benchmark's processes and its temp folder") {
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      process.on(signal, () => {
        this.interrupted = true
        process.stderr.write(`\n${signal}: stopping ${what}\n`)
        void this.cleanup().finally(() => process.exit(code))
      })
    }
    process.on('exit', () => {
      killAllSync()
      for (const { sync } of this.extra) sync()
      if (this.tmp) rmSync(this.tmp, { recursive: true, force: true })
    })
  }

  async makeTemp(prefix: string): Promise<string> {
    this.tmp = await fs.mkdtemp(path.join(os.tmpdir(), prefix))
    return this.tmp
  }

  /** Registers more to give back: `sync` must also work from the exit handler. */
  onCleanup(sync: () => void, async: () => Promise<void> | void = sync): void {
    this.extra.push({ async, sync })
  }

  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      await stopAll()
      for (const { async } of this.extra) await async()
      if (this.tmp) await fs.rm(this.tmp, { recursive: true, force: true })
      this.tmp = undefined
    })()
    return this.cleaning
  }
}

/** The machine a result was measured on, for the results file. */
export function machineFacts(loadAverageAtStart: number[]) {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    availableParallelism: os.availableParallelism(),
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart,
  }
}

/** Writes `<resultsDir>/<name>.json` and says where. */
export async function writeResults(resultsDir: string, name: string, results: unknown, log: (message: string) => void): Promise<void> {
  await fs.mkdir(resultsDir, { recursive: true })
  const file = path.join(resultsDir, `${name}.json`)
  await fs.writeFile(file, JSON.stringify(results, null, 2) + '\n')
  log(`\nresults written to ${path.relative(process.cwd(), file) || file}`)
}

/** Copies the CPU profile an engine run with --cpu-prof wrote into `profDir` to `<resultsDir>/<name>-engine.cpuprofile`. */
export async function keepEngineProfile(profDir: string, resultsDir: string, name: string): Promise<string> {
  const profiles = (await fs.readdir(profDir).catch(() => [])).filter((file) => file.endsWith('.cpuprofile'))
  if (profiles.length === 0) throw new Error(`the engine wrote no CPU profile to ${profDir}`)
  const target = path.join(resultsDir, `${name}-engine.cpuprofile`)
  await fs.copyFile(path.join(profDir, profiles[0]!), target)
  return target
}

/** A benchmark that cannot run as set up (a missing tool, wrong answers): reported without a stack trace. */
export class SetupError extends Error {}

/** Runs a benchmark's `main`: gives back what the scope holds however it ends; a failure is said and exits 1. */
export function runBenchmark(scope: BenchScope, name: string, main: () => Promise<void>): void {
  main()
    .then(() => scope.cleanup())
    .catch(async (error: unknown) => {
      if (scope.interrupted) return // the signal handler cleans up and exits
      process.stderr.write(`\n${name} benchmark failed: ${error instanceof Error ? error.message : String(error)}\n`)
      if (!(error instanceof SetupError) && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`)
      await scope.cleanup()
      process.exitCode = 1
    })
}

/** The checked-out commit and any uncommitted change to what the engine runs, for the results file. */
export async function engineRevision(repo: string, paths = ['src', 'migrations', 'package.json', 'package-lock.json']): Promise<{ commit?: string; changedFiles: string[] }> {
  const { runTracked } = await import('./processes.ts')
  try {
    const commit = (await runTracked('git rev-parse', 'git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repo })).trim()
    const status = await runTracked('git status', 'git', ['status', '--porcelain', '--', ...paths], { cwd: repo })
    return { commit, changedFiles: status.split('\n').filter(Boolean).map((line) => line.slice(3)) }
  } catch {
    return { changedFiles: [] }
  }
}

/** A number from the environment (or `fallback`), checked: a bad value stops the benchmark with a clear message. */
export function envNumber(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER, integer = false } = {}): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new SetupError(`${name}=${raw} is not a valid ${integer ? 'integer' : 'number'} in [${min}, ${max}]`)
  }
  return value
}

/** `promise`, or the error of `timeout()` after `ms` (the timer does not keep the process alive). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timeout()), ms)))])
  } finally {
    clearTimeout(timer)
  }
}
