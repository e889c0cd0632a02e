import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { Agent, request, type Dispatcher } from 'undici'
import { CliError, EXIT } from './cli-error.ts'

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'

export interface ApiClientOptions {
  /** The engine's base URL, e.g. http://127.0.0.1:8080. */
  url: string
  token: string
  /** Limit for connecting, for the answer's headers, and for each pause while its body arrives. */
  timeoutMs: number
}

export interface RequestOptions {
  query?: Record<string, string | string[] | undefined>
  /** A JSON body (objects), or raw bytes with `contentType`. */
  json?: unknown
  bytes?: Buffer
  contentType?: string
  signal?: AbortSignal
}

/** An answer: the parsed JSON (undefined for an empty body) and the raw text, which `--json` prints as it is. */
export interface ApiAnswer<T> {
  status: number
  data: T
  raw: string
}

/** Network errors, by code, in words; all mean the engine was not reached (or stopped answering). */
const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'the answer stopped arriving',
  UND_ERR_SOCKET: 'connection closed by the other side',
  UND_ERR_CLOSED: 'connection closed',
}

/** The admin API over undici: one keep-alive pool per command, closed when the command ends. */
export class ApiClient {
  private readonly agent: Agent
  private readonly base: string

  constructor(private readonly options: ApiClientOptions) {
    this.base = options.url.replace(/\/+$/, '')
    this.agent = new Agent({ connect: { timeout: options.timeoutMs }, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs })
  }

  /** Calls the API; a non-2xx answer becomes a CliError with the exit code its status means. */
  async call<T>(method: Method, path: string, options: RequestOptions = {}): Promise<ApiAnswer<T>> {
    const response = await this.send(method, path, options)
    const raw = await response.body.text()
    if (response.statusCode >= 400) throw apiFailure(method, path, response.statusCode, raw)
    let data: unknown
    if (raw.length > 0) {
      try {
        data = JSON.parse(raw)
      } catch {
        throw new CliError(EXIT.failed, 'BAD_ANSWER', `${method} ${path} answered ${response.statusCode} with a body that is not JSON; is ${this.base} a Slipway engine?`)
      }
    }
    return { status: response.statusCode, data: data as T, raw }
  }

  /**
   * Streams an answer's body into `file` (through `file.partial`, renamed at the end, so that an
   * interrupted download never leaves a file that looks complete). Returns the bytes written.
   */
  async download(path: string, file: string, options: RequestOptions = {}): Promise<{ bytes: number; header: (name: string) => string | undefined }> {
    const response = await this.send('GET', path, options)
    if (response.statusCode >= 400) throw apiFailure('GET', path, response.statusCode, await response.body.text())
    const partial = `${file}.partial`
    let bytes = 0
    response.body.on('data', (chunk: Buffer) => (bytes += chunk.length))
    try {
      await pipeline(response.body, createWriteStream(partial, { mode: 0o600 }))
      await rename(partial, file)
    } catch (error) {
      await rm(partial, { force: true })
      throw this.networkFailure(error)
    }
    const header = (name: string) => {
      const value = response.headers[name.toLowerCase()]
      return Array.isArray(value) ? value[0] : value
    }
    return { bytes, header }
  }

  async close(): Promise<void> {
    await this.agent.close()
  }

  private async send(method: Method, path: string, options: RequestOptions): Promise<Dispatcher.ResponseData> {
    const url = new URL(this.base + path)
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined) continue
      for (const each of Array.isArray(value) ? value : [value]) url.searchParams.append(key, each)
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}`, accept: 'application/json' }
    let body: string | Buffer | undefined
    if (options.json !== undefined) {
      body = JSON.stringify(options.json)
      headers['content-type'] = 'application/json'
    } else if (options.bytes !== undefined) {
      body = options.bytes
      headers['content-type'] = options.contentType ?? 'application/octet-stream'
    }
    try {
      return await request(url, { method, headers, body, dispatcher: this.agent, signal: options.signal })
    } catch (error) {
      throw this.networkFailure(error)
    }
  }

  private networkFailure(error: unknown): unknown {
    if (error instanceof CliError || (error as Error).name === 'AbortError') return error
    const code = networkCodeOf(error)
    if (code === undefined) return error
    return new CliError(EXIT.unreachable, 'ENGINE_UNREACHABLE', `cannot reach the engine at ${this.base}: ${UNREACHABLE[code]} (${code}); is it running? The URL comes from --url or SLIPWAY_URL`)
  }
}

/** The network error code of an error or of one of its causes (undici wraps some). */
function networkCodeOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && code in UNREACHABLE) return code
    // Several addresses tried (localhost: ::1 and 127.0.0.1): each failure is in `errors`.
    const errors = (current as { errors?: unknown }).errors
    if (Array.isArray(errors)) {
      const inner = errors.map(networkCodeOf).find((each) => each !== undefined)
      if (inner) return inner
    }
  }
  return undefined
}

/** What a failed answer means for the caller, as a CliError carrying the API's code and message. */
export function apiFailure(method: Method, path: string, status: number, raw: string): CliError {
  let code = `HTTP_${status}`
  let message = `${method} ${path} answered ${status}`
  try {
    const body = JSON.parse(raw) as { code?: unknown; message?: unknown }
    if (typeof body.code === 'string') code = body.code
    if (typeof body.message === 'string') message = body.message
  } catch {
    // Not the engine's error shape (a proxy in between?): the status says enough.
  }
  if (status === 401) return new CliError(EXIT.auth, code, `${message}; set SLIPWAY_TOKEN (or --token) to a valid API token`)
  if (status === 403) return new CliError(EXIT.auth, code, `${message}; use a token whose role allows this (SLIPWAY_TOKEN or --token)`)
  if (status === 404) {
    if (code === 'ROUTE_NOT_FOUND') return new CliError(EXIT.notFound, code, `${message}: the engine does not offer this (is it older than this CLI?)`)
    return new CliError(EXIT.notFound, code, message)
  }
  if ([400, 409, 413, 415, 422].includes(status)) return new CliError(EXIT.rejected, code, message)
  // 501: this engine does not offer it (e.g. a file backup of a PostgreSQL store); its message says what to do.
  if (status === 501) return new CliError(EXIT.failed, code, message)
  if (status === 503) return new CliError(EXIT.failed, code, `${message} (the engine says: try again later)`)
  return new CliError(EXIT.failed, code, `the engine failed: ${message}`)
}
