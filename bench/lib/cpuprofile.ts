import { readFileSync } from 'node:fs'

/** The parts of a V8 `.cpuprofile` (from `node --cpu-prof`) this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[]
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileSummary {
  totalMs: number
  /** Self time by function. */
  functions: { name: string; where: string; ms: number; share: number }[]
  /** Self time by origin: the engine's source, each dependency, node internals, GC, idle. */
  origins: { origin: string; ms: number; share: number }[]
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

/** Self time per function and per origin; idle time is reported but not part of the shares. */
export function summarizeCpuProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfUs = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const functions = new Map<string, { name: string; where: string; us: number }>()
  const origins = new Map<string, number>()
  let busyUs = 0
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const name = functionName || '(anonymous)'
    const origin = originOf(url, name)
    if (origin !== '(idle)') busyUs += us
    const where = url ? url.replace(/^file:\/\/.*?\/(node_modules|src)\//, '$1/') + (lineNumber > 0 ? `:${lineNumber + 1}` : '') : ''
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
  }
}
