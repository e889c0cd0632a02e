/**
 * How the benchmarks write what they measured: numbers for people (en-US grouping, fixed digits),
 * simple statistics, and the printout of an engine CPU profile, so that every benchmark reads alike.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { summarizeCpuProfile, type ProfileSummary, type ProfileWindow } from './cpuprofile.ts'

/** Progress goes to stderr: stdout carries the results. */
export const log = (message: string) => process.stderr.write(`${message}\n`)

/** `value` with `digits` decimals and thousands separators; `-` for a figure that was not measured. */
export const fmt = (value: number | undefined, digits = 0) =>
  value === undefined || Number.isNaN(value) ? '-' : value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
export const mb = (bytes: number) => `${fmt(bytes / 1e6, 1)} MB`
export const kb = (bytes: number) => `${fmt(bytes / 1e3, 1)} kB`

/** Microseconds of the monotonic clock, the clock V8 stamps CPU profile samples with. */
export const nowUs = () => Number(process.hrtime.bigint() / 1000n)

/** The nearest-rank percentile `p` of ascending `sorted` values; 0 for none. */
export const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0
export const mean = (values: number[]) => (values.length ? values.reduce((sum, value) => sum + value, 0) / values.length : 0)

/** How many entries of each list of a CPU profile summary to print; a list left out is not printed (functions: all). */
export interface ProfileTop {
  origins: number
  functions?: number
  inclusive?: number
}

const share = (value: number) => `${(value * 100).toFixed(1).padStart(5)}%`

/** A CPU profile summary under `heading` (which ends "self time by origin:"): origins, top functions, and the engine's functions by total time. */
export function profileLines(heading: string, summary: ProfileSummary, top: ProfileTop): string[] {
  const out = ['', heading]
  for (const o of summary.origins.slice(0, top.origins)) out.push(`  ${share(o.share)}  ${o.origin}`)
  out.push('Top functions by self time:')
  for (const f of summary.functions.slice(0, top.functions)) out.push(`  ${share(f.share)}  ${f.name}  ${f.where}`)
  if (top.inclusive !== undefined) {
    out.push("The engine's functions by total time (self + synchronous callees):")
    for (const f of summary.inclusive.slice(0, top.inclusive)) out.push(`  ${share(f.share)}  ${f.name}  ${f.where}`)
  }
  return out
}

/** Where the profile is kept and how to read it; the figures of a profiled run are not the benchmark's. */
export const profileFooter = (file: string) => [
  `(profile saved to ${path.relative(process.cwd(), file)}; open it in Chrome DevTools > Performance)`,
  'Note: profiling slows the engine; use the figures of a run without BENCH_CPU_PROF.',
]

export interface WindowedProfile {
  file: string
  /** This process's nowUs() when the profiled process started (or started profiling). */
  startedUs: number
  /** The profile's start, in seconds from `startedUs`, within which both are taken to share one clock. */
  sameClock: { from: number; to: number }
  /** What to print: one summary per time window of this process's clock... */
  windows: [title: string, window: ProfileWindow][]
  /** ...or, when the clocks differ, one of the whole profile under this title, after a note saying why (`skewNote`, unless false). */
  whole: string
  skewNote: 'run' | 'profile' | false
  heading: (title: string, summary: ProfileSummary) => string
  top: ProfileTop
}

/**
 * The printout of a profile cut into time windows (a phase, a sweep, a run). V8 stamps samples with
 * the monotonic clock, as process.hrtime: windows measured here apply only when the clocks agree.
 */
export function windowedProfileLines(profile: WindowedProfile): string[] {
  const { startTime } = JSON.parse(readFileSync(profile.file, 'utf8')) as { startTime: number }
  const skewSeconds = (startTime - profile.startedUs) / 1e6
  const out: string[] = []
  const print = (title: string, summary: ProfileSummary) => out.push(...profileLines(profile.heading(title, summary), summary, profile.top))
  if (skewSeconds > profile.sameClock.from && skewSeconds < profile.sameClock.to) {
    for (const [title, window] of profile.windows) print(title, summarizeCpuProfile(profile.file, 30, window))
  } else {
    if (profile.skewNote) out.push('', `(the profile's clock is ${fmt(skewSeconds)} s away from this process's: showing the whole ${profile.skewNote})`)
    print(profile.whole, summarizeCpuProfile(profile.file, 30))
  }
  return out
}
