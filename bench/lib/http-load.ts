import http from 'node:http'

/**
 * A fixed sequence of POST requests over N keep-alive connections, one request in flight per
 * connection, with plain node:http (no undici, no pipelining). Request i of the sequence is always
 * sent i-th, whatever the server, so two servers see exactly the same requests in the same order;
 * every answer is checked. Used where wrk cannot be: each request has its own body and its answer
 * must be read (e.g. "the first report of this machine is new").
 */
export interface PostLoadOptions {
  /** http://127.0.0.1:<port> (only 127.0.0.1 is allowed). */
  baseUrl: string
  path: string
  bodies: readonly Buffer[]
  connections: number
  contentType?: string
  /** Per request; a request that takes longer counts as failed. */
  timeoutMs?: number
  /** A description of what is wrong with answer `index`, or undefined when it is right. */
  check: (index: number, status: number, body: string) => string | undefined
}

export interface PostLoadResult {
  requests: number
  durationSeconds: number
  requestsPerSecond: number
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number }
  /** Requests that failed: socket error, timeout, or an answer `check` refused. */
  failures: number
  /** The first few failures, with the request index. */
  failureExamples: string[]
  statusCounts: Record<string, number>
  /** TCP connections opened (N when keep-alive held for the whole run). */
  connectionsOpened: number
  bytesSent: number
  bytesReceived: number
}

export async function runPostLoad(options: PostLoadOptions): Promise<PostLoadResult> {
  const base = new URL(options.baseUrl)
  if (base.protocol !== 'http:' || base.hostname !== '127.0.0.1' || base.pathname !== '/') {
    throw new Error(`refusing to load ${options.baseUrl}: only http://127.0.0.1:<port>`)
  }
  const total = options.bodies.length
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections, maxFreeSockets: options.connections, scheduling: 'fifo' })
  const latencies = new Float64Array(total)
  const statusCounts: Record<string, number> = {}
  const failureExamples: string[] = []
  let failures = 0
  let connectionsOpened = 0
  let bytesSent = 0
  let bytesReceived = 0
  const fail = (index: number, problem: string) => {
    failures++
    if (failureExamples.length < 5) failureExamples.push(`request #${index}: ${problem}`)
  }
  const headersOf = (length: number) => ({ 'content-type': options.contentType ?? 'application/json', 'content-length': String(length) })

  const send = (index: number) =>
    new Promise<void>((resolve) => {
      const body = options.bodies[index]!
      const started = process.hrtime.bigint()
      let settled = false
      const done = (problem?: string) => {
        if (settled) return
        settled = true
        latencies[index] = Number(process.hrtime.bigint() - started) / 1e6
        if (problem !== undefined) fail(index, problem)
        resolve()
      }
      const request = http.request(
        { host: base.hostname, port: base.port, path: options.path, method: 'POST', agent, headers: headersOf(body.length) },
        (response) => {
          if (!request.reusedSocket) connectionsOpened++
          const chunks: Buffer[] = []
          response.on('data', (chunk: Buffer) => chunks.push(chunk))
          response.on('error', (error) => done(error.message))
          response.on('end', () => {
            const status = response.statusCode ?? 0
            statusCounts[status] = (statusCounts[status] ?? 0) + 1
            const raw = Buffer.concat(chunks)
            bytesReceived += raw.length
            const text = raw.toString('utf8')
            done(options.check(index, status, text))
          })
        },
      )
      request.setTimeout(options.timeoutMs ?? 30_000, () => request.destroy(new Error(`no answer within ${options.timeoutMs ?? 30_000} ms`)))
      request.on('error', (error) => done(error.message))
      bytesSent += body.length
      request.end(body)
    })

  let next = 0
  const worker = async () => {
    for (;;) {
      const index = next++
      if (index >= total) return
      await send(index)
    }
  }
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: Math.min(options.connections, total) }, worker))
  const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9
  agent.destroy()

  const sorted = Float64Array.from(latencies).sort()
  const at = (percent: number) => (total ? sorted[Math.max(0, Math.ceil((percent / 100) * total) - 1)]! : 0)
  const mean = total ? sorted.reduce((sum, value) => sum + value, 0) / total : 0
  return {
    requests: total,
    durationSeconds,
    requestsPerSecond: durationSeconds > 0 ? total / durationSeconds : 0,
    latencyMs: { mean, p50: at(50), p90: at(90), p99: at(99), max: total ? sorted[total - 1]! : 0 },
    failures,
    failureExamples,
    statusCounts,
    connectionsOpened,
    bytesSent,
    bytesReceived,
  }
}

/** One admin or probe call without a time limit (a scheduling pass may take long), JSON in and out. */
export function requestJson(
  baseUrl: string,
  method: string,
  path: string,
  { token, body }: { token?: string; body?: unknown } = {},
): Promise<{ status: number; json: unknown; text: string }> {
  const base = new URL(baseUrl)
  if (base.hostname !== '127.0.0.1') return Promise.reject(new Error(`refusing to call ${baseUrl}: only 127.0.0.1`))
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: base.hostname,
        port: base.port,
        path,
        method,
        agent: false,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
      },
      (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('error', reject)
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json: unknown
          try {
            json = text ? JSON.parse(text) : undefined
          } catch {
            json = undefined
          }
          resolve({ status: response.statusCode ?? 0, json, text })
        })
      },
    )
    request.on('error', reject)
    request.end(payload)
  })
}
