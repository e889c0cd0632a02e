import { readFileSync } from 'node:fs'

/** The parts of a V8 `.cpuprofile` (from `node --cpu-prof`) this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[]
  samples: number[]
  timeDeltas: number[]
  /** Microseconds on the monotonic clock (CLOCK_MONOTONIC on Linux, as `process.hrtime`). */
  startTime: number
}

/** A time span in microseconds of the monotonic clock: `process.hrtime.bigint() / 1000n` in any process. */
export interface ProfileWindow {
  fromUs: number
  toUs: number
}

export interface ProfileSummary {
  totalMs: number
  /** Self time by function. */
  functions: { name: string; where: string; ms: number; share: number }[]
  /** Self time by origin: the engine's source, each dependency, node internals, GC, idle. */
  origins: { origin: string; ms: number; share: number }[]
  /**
   * Total time (self + callees) of the engine's own functions (`src/`). Only synchronous callees
   * count: a profile's stacks end at an `await`, so an async function's total covers its parts between awaits.
   */
  inclusive: { name: string; where: string; ms: number; share: number }[]
}

function originOf(url: string, name: string): string {
  if (name === '(garbage collector)') return '(gc)'
  if (name === '(idle)') return '(idle)'
  if (name === '(program)') return '(program)'
  if (!url) return '(native/v8)'
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (dependency) return dependency[1]!
  if (url.startsWith('node:')) return 'node internals'
  const source = /\/(src\/.+)$/.exec(url)
  if (source) return source[1]!.split('/').slice(0, 3).join('/')
  return url
}

/**
 * Self time per function and per origin; idle time is reported but not part of the shares. With a
 * `window`, only the samples taken within it count (e.g. one scheduling pass of a long run).
 */
export function summarizeCpuProfile(file: string, top = 25, window?: ProfileWindow): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfUs = new Map<number, number>()
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    if (window && (at < window.fromUs || at > window.toUs)) continue
    const id = profile.samples[i]!
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const functions = new Map<string, { name: string; where: string; us: number }>()
  const origins = new Map<string, number>()
  const parentOf = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
  const inclusive = new Map<string, { name: string; where: string; us: number }>()
  const whereOf = (url: string, lineNumber: number) =>
    url ? url.replace(/^file:\/\/.*?\/(node_modules|src)\//, '$1/') + (lineNumber > 0 ? `:${lineNumber + 1}` : '') : ''
  let busyUs = 0
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const name = functionName || '(anonymous)'
    const origin = originOf(url, name)
    if (origin !== '(idle)') busyUs += us
    if (origin !== '(idle)') {
      const counted = new Set<string>()
      for (let frame: number | undefined = id; frame !== undefined; frame = parentOf.get(frame)) {
        const call = byId.get(frame)!.callFrame
        if (!/\/src\//.test(call.url) || /node_modules/.test(call.url)) continue
        const frameName = call.functionName || '(anonymous)'
        const frameWhere = whereOf(call.url, call.lineNumber)
        const frameKey = `${frameName}@${frameWhere}`
        if (counted.has(frameKey)) continue
        counted.add(frameKey)
        const entry = inclusive.get(frameKey) ?? { name: frameName, where: frameWhere, us: 0 }
        entry.us += us
        inclusive.set(frameKey, entry)
      }
    }
    const where = whereOf(url, lineNumber)
    const key = `${name}@${where}`
    const entry = functions.get(key) ?? { name, where, us: 0 }
    entry.us += us
    functions.set(key, entry)
    origins.set(origin, (origins.get(origin) ?? 0) + us)
  }
  const share = (us: number) => (busyUs > 0 ? us / busyUs : 0)
  return {
    totalMs: busyUs / 1000,
    functions: [...functions.values()]
      .filter((entry) => entry.name !== '(idle)')
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((entry) => ({ name: entry.name, where: entry.where, ms: entry.us / 1000, share: share(entry.us) })),
    origins: [...origins.entries()]
      .filter(([origin]) => origin !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .map(([origin, us]) => ({ origin, ms: us / 1000, share: share(us) })),
    inclusive: [...inclusive.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((entry) => ({ name: entry.name, where: entry.where, ms: entry.us / 1000, share: share(entry.us) })),
  }
}
