/**
 * The quorum sampler: what a client of the lab's etcd sees while machines restart. Every interval it
 * writes a new value through the cluster (a quorum write: it commits only when a majority agrees),
 * reads it back through another member (a linearizable read, which also needs the quorum), and asks
 * each member's /health on its own. Run inside the lab's network namespace:
 *
 *   ip netns exec <ns> node --import tsx lab/etcd-sampler.ts --endpoints https://10.0.0.2:2379,... \
 *     --cacert ca.crt --cert client.crt --key client.key [--interval-ms 200]
 *
 * It prints one JSON line a sample (`{"at":..,"write":"ok"|"failed",..,"members":{url:true|false}}`)
 * until SIGTERM, then a summary line (`{"summary":...}`), which `summarizeSamples` also computes.
 *
 * A write counts as failed when no member committed it within WRITE_DEADLINE_MS, retrying across
 * members as etcd's own client does (a leader change answers one request with an error, and the
 * client sends it again): what an API server writing through etcd would have seen as a failed write.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'

export interface Sample {
  at: number
  write: 'ok' | 'failed'
  read: 'ok' | 'failed' | 'stale'
  writeMs: number
  /** The member that committed the write, or the last error. */
  detail: string
  /** Each member's own /health answer at this sample. */
  members: Record<string, boolean>
}

export interface SamplerSummary {
  samples: number
  failedWrites: number
  failedReads: number
  /** The longest time the cluster took a write (ms). */
  slowestWriteMs: number
  /** Per member: the longest run of samples in which its /health was not healthy, in ms (first to last such sample, plus one interval). */
  longestMemberUnavailableMs: Record<string, number>
  firstAt: number
  lastAt: number
}

const WRITE_DEADLINE_MS = 2_000
const REQUEST_TIMEOUT_MS = 1_000

export function summarizeSamples(samples: readonly Sample[], intervalMs: number): SamplerSummary {
  const longest: Record<string, number> = {}
  const downSince: Record<string, number | undefined> = {}
  for (const sample of samples) {
    for (const [member, healthy] of Object.entries(sample.members)) {
      longest[member] ??= 0
      if (!healthy) downSince[member] ??= sample.at
      const since = downSince[member]
      if (since !== undefined) longest[member] = Math.max(longest[member], sample.at - since + intervalMs)
      if (healthy) downSince[member] = undefined
    }
  }
  return {
    samples: samples.length,
    failedWrites: samples.filter((sample) => sample.write === 'failed').length,
    failedReads: samples.filter((sample) => sample.read !== 'ok').length,
    slowestWriteMs: Math.max(0, ...samples.map((sample) => sample.writeMs)),
    longestMemberUnavailableMs: longest,
    firstAt: samples[0]?.at ?? 0,
    lastAt: samples.at(-1)?.at ?? 0,
  }
}

const base64 = (text: string) => Buffer.from(text).toString('base64')

async function post(agent: Agent, endpoint: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const answer = await request(`${endpoint}${path}`, { method: 'POST', dispatcher: agent, body: JSON.stringify(body), headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const text = await answer.body.text()
  const parsed = JSON.parse(text) as Record<string, unknown>
  if (answer.statusCode !== 200 || parsed.error || parsed.code) throw new Error(`${answer.statusCode} ${text.slice(0, 200)}`)
  return parsed
}

async function healthOf(agent: Agent, endpoint: string): Promise<boolean> {
  try {
    const answer = await request(`${endpoint}/health`, { dispatcher: agent, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    return answer.statusCode === 200 && (JSON.parse(await answer.body.text()) as { health?: string }).health === 'true'
  } catch {
    return false
  }
}

async function sample(agent: Agent, endpoints: string[], sequence: number, preferred: { index: number }): Promise<Sample> {
  const at = Date.now()
  const value = `${sequence}@${at}`
  const [members, write] = await Promise.all([
    Promise.all(endpoints.map(async (endpoint) => [endpoint, await healthOf(agent, endpoint)] as const)),
    (async () => {
      let detail = ''
      // Member after member, from the last one that worked, until the deadline.
      for (let attempt = 0; Date.now() - at < WRITE_DEADLINE_MS; attempt++) {
        const endpoint = endpoints[(preferred.index + attempt) % endpoints.length]!
        try {
          await post(agent, endpoint, '/v3/kv/put', { key: base64('slipway-lab/sampler'), value: base64(value) })
          preferred.index = endpoints.indexOf(endpoint)
          return { ok: true, detail: endpoint, ms: Date.now() - at }
        } catch (error) {
          detail = `${endpoint}: ${error instanceof Error ? error.message : String(error)}`
          if (attempt % endpoints.length === endpoints.length - 1) await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      return { ok: false, detail, ms: Date.now() - at }
    })(),
  ])
  let read: Sample['read'] = 'failed'
  if (write.ok) {
    // Through another member than the one that took the write: it must see the write (linearizable).
    const reader = endpoints[(endpoints.indexOf(write.detail) + 1) % endpoints.length]!
    for (const endpoint of [reader, ...endpoints.filter((candidate) => candidate !== reader)]) {
      try {
        const answer = await post(agent, endpoint, '/v3/kv/range', { key: base64('slipway-lab/sampler') })
        const kvs = (answer.kvs as { value: string }[] | undefined) ?? []
        read = kvs.length === 1 && Buffer.from(kvs[0]!.value, 'base64').toString() === value ? 'ok' : 'stale'
        break
      } catch {
        // the next member
      }
    }
  }
  return { at, write: write.ok ? 'ok' : 'failed', read, writeMs: write.ms, detail: write.detail, members: Object.fromEntries(members) }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { endpoints: { type: 'string' }, cacert: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, 'interval-ms': { type: 'string', default: '200' } },
  })
  if (!values.endpoints || !values.cacert || !values.cert || !values.key) {
    console.error('usage: etcd-sampler --endpoints URL[,URL...] --cacert FILE --cert FILE --key FILE [--interval-ms 200]')
    process.exit(2)
  }
  const endpoints = values.endpoints.split(',')
  const intervalMs = Number(values['interval-ms'])
  // A member whose machine is gone does not refuse connections, it never answers them: bounded too.
  const agent = new Agent({ connect: { ca: readFileSync(values.cacert), cert: readFileSync(values.cert), key: readFileSync(values.key), timeout: REQUEST_TIMEOUT_MS }, keepAliveTimeout: 5_000 })
  const samples: Sample[] = []
  let stopping = false
  process.on('SIGTERM', () => void (stopping = true))
  process.on('SIGINT', () => void (stopping = true))
  const preferred = { index: 0 }
  for (let sequence = 0; !stopping; sequence++) {
    const started = Date.now()
    const result = await sample(agent, endpoints, sequence, preferred)
    samples.push(result)
    process.stdout.write(`${JSON.stringify(result)}\n`)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, intervalMs - (Date.now() - started))))
  }
  process.stdout.write(`${JSON.stringify({ summary: summarizeSamples(samples, intervalMs) })}\n`)
  await agent.close()
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
