/**
 * What the two Kubernetes API server TEST DOUBLES share (kube-apiserver.ts, the part a node drain
 * touches; kube-cluster.ts, a generic object store for release fan-out), so that neither repeats the
 * other:
 *
 * - the server: node:http or node:https on 127.0.0.1, authentication by bearer token or client
 *   certificate (401 otherwise), the request log, scripted faults with real-looking Status bodies,
 *   latency, a hung server, the health endpoints, kubeconfigs. A double adds its resources by
 *   implementing `route`, and records its requests as `describe` says.
 * - the patches: RFC 7386 merge, RFC 6902 JSON patch, strategic merge, and the subset of
 *   structured-merge-diff behind server-side apply and managedFields (field sets).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { sleep } from '../helpers/wait.ts'
import { decodeKubernetesProtobuf } from './kube-protobuf.ts'

/** An answer other than 200 JSON, thrown from anywhere in a double's routing. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly contentType = 'application/json',
  ) {
    super(`HTTP ${status}`)
  }
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
}

/** A metav1.Status failure, as the API server writes it. */
export function statusBody(code: number, message: string, details?: Record<string, unknown>, reason = REASONS[code] ?? 'Unknown') {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code }
}

export const fail = (code: number, message: string, details?: Record<string, unknown>, reason?: string) => new HttpError(code, statusBody(code, message, details, reason))

/** A timestamp as the API server writes one (RFC 3339, whole seconds). */
export const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z')

/** The random part of a generated name. */
export const generatedSuffix = () => {
  // Kubernetes' generated-name alphabet: no vowels, no 0/1/3 (so no words and no look-alikes).
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789'
  return Array.from(randomBytes(5), (b) => alphabet[b % alphabet.length]).join('')
}

export const PROTOBUF = 'application/vnd.kubernetes.protobuf'
const mediaTypeOf = (contentType: string | undefined) => (contentType ?? '').split(';')[0]!.trim().toLowerCase()

/** How a double is served: the options both doubles take. */
export interface ApiServerOptions {
  /**
   * Serve https with this certificate; with `clientCaPem`, client certificates signed by it
   * authenticate (others, and none, get 401 as from a server without anonymous access).
   */
  tls?: { certificatePem: string; privateKeyPem: string; clientCaPem?: string }
  /** Bearer tokens that authenticate (with or without client certificates). */
  tokens?: string[]
  /** Added before every answer. */
  latencyMs?: number
  /** Where to listen (default 127.0.0.1 and a random port). */
  host?: string
  port?: number
}

/** What every recorded request has; each double records more. */
export interface BaseRecordedRequest {
  method: string
  path: string
  query: Record<string, string>
  contentType: string | undefined
  /** The body parsed as JSON (or decoded protobuf), or the raw text when it is neither; undefined when empty. */
  body: unknown
  /** The status code answered. */
  status: number
  at: number
}

/** One request as a double's routing sees it. */
export interface ApiCall {
  method: string
  url: URL
  request: http.IncomingMessage
  contentType: string | undefined
  raw: string
  bytes: Buffer
  /** As recorded: JSON, decoded protobuf, or the raw text. */
  body: unknown
}

interface Fault {
  method?: string
  path: RegExp
  status: number
  remaining: number
}

export abstract class KubeApiDouble<Recorded extends BaseRecordedRequest> {
  readonly requests: Recorded[] = []
  /** Called after each request was answered: lets a test change the world at a precise moment. */
  onRequest: ((request: Recorded) => void) | undefined
  /** Base URL, e.g. https://127.0.0.1:43121. */
  url = ''
  /** TLS connections accepted (to check that a client reuses its connections). */
  tlsConnections = 0
  protected readonly server: http.Server | https.Server
  protected resourceVersion = 1000
  private readonly faults: Fault[] = []
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly held = new Set<http.ServerResponse>()
  private unresponsive = false
  private apiReady = true

  protected constructor(private readonly serving: ApiServerOptions) {
    const handler = (request: http.IncomingMessage, response: http.ServerResponse) => void this.handle(request, response)
    if (serving.tls) {
      this.server = https.createServer(
        {
          cert: serving.tls.certificatePem,
          key: serving.tls.privateKeyPem,
          ...(serving.tls.clientCaPem ? { ca: serving.tls.clientCaPem, requestCert: true, rejectUnauthorized: false } : {}),
        },
        handler,
      )
      this.server.on('secureConnection', () => this.tlsConnections++)
    } else {
      this.server = http.createServer(handler)
    }
  }

  /** Listens and sets `url`; the doubles' static `start` calls it. */
  protected async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.serving.port ?? 0, this.serving.host ?? '127.0.0.1', () => resolve())
    })
    const { port } = this.server.address() as AddressInfo
    this.url = `${this.serving.tls ? 'https' : 'http'}://${this.serving.host ?? '127.0.0.1'}:${port}`
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  /**
   * The next `times` requests matching `method` and `path` fail with `status` and a real-looking Status
   * body (401 Unauthorized, 403 Forbidden naming the resource, 500/503...).
   */
  failRequests(match: { method?: string; path: RegExp }, status: number, times = Number.POSITIVE_INFINITY): void {
    this.faults.push({ ...match, status, remaining: times })
  }

  clearFaults(): void {
    this.faults.length = 0
  }

  /** /readyz (and /livez, /healthz) answer 500 with a failing etcd check while false. */
  setApiReady(ready: boolean): void {
    this.apiReady = ready
  }

  /** While true, requests are read but never answered (as from a hung server); turning it off drops the held ones. */
  setUnresponsive(unresponsive: boolean): void {
    this.unresponsive = unresponsive
    if (!unresponsive) {
      for (const response of this.held) response.destroy()
      this.held.clear()
    }
  }

  requestsTo(method: string, path: RegExp): Recorded[] {
    return this.requests.filter((r) => r.method === method && path.test(r.path))
  }

  // ----- what a double provides -----

  /** Answers a request: [status, JSON body], or 'streaming' to answer with `stream`; throws HttpError for others. */
  protected abstract route(call: ApiCall): [number, unknown] | 'streaming'

  /** The record of a request, before it is answered (`base` filled in, status 0). */
  protected abstract describe(base: BaseRecordedRequest, call: ApiCall, socket: TLSSocket): Recorded

  /** Told who authenticated ('' for anonymous access). */
  protected authenticated(_record: Recorded, _user: string): void {}

  /** The Status of a scripted fault the double words itself (403 naming the resource, 404...); undefined: the common one. */
  protected faultFor(_status: number, _method: string, _path: string): HttpError | undefined {
    return undefined
  }

  /** An error that is not an HttpError: a bug of the double, answered as the real server answers a panic. */
  protected unexpected(error: unknown): HttpError {
    return fail(500, `Internal error occurred: ${error instanceof Error ? error.message : String(error)}`)
  }

  /** Answers a request `route` said streams (a watch). */
  protected stream(_url: URL, _response: http.ServerResponse): void {
    throw new Error('this double streams nothing')
  }

  /** Runs `action` in `ms` unless the double is closed first (what its controllers do later). */
  protected later(ms: number, action: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      action()
    }, ms)
    this.timers.add(timer)
  }

  protected nextResourceVersion(): string {
    this.resourceVersion++
    return String(this.resourceVersion)
  }

  // ----- HTTP -----

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    const bytes = Buffer.concat(chunks)
    const raw = bytes.toString('utf8')
    const url = new URL(request.url ?? '/', 'http://fake')
    const method = request.method ?? 'GET'
    const contentType = request.headers['content-type']
    let body: unknown
    if (raw.length > 0) {
      try {
        body = mediaTypeOf(contentType) === PROTOBUF ? decodeKubernetesProtobuf(bytes) : JSON.parse(raw)
      } catch {
        body = raw
      }
    }
    const call: ApiCall = { method, url, request, contentType, raw, bytes, body }
    const socket = request.socket as TLSSocket
    const record = this.describe({ method, path: url.pathname, query: Object.fromEntries(url.searchParams), contentType, body, status: 0, at: Date.now() }, call, socket)
    this.requests.push(record)
    if (this.unresponsive) {
      this.held.add(response)
      response.on('close', () => this.held.delete(response))
      return
    }
    if (this.serving.latencyMs) await sleep(this.serving.latencyMs)

    let status = 200
    let answer: unknown
    let answerType = 'application/json'
    try {
      const user = this.authenticate(request, socket)
      if (user === undefined) throw fail(401, 'Unauthorized')
      this.authenticated(record, user)
      const fault = this.faults.find((f) => f.remaining > 0 && (!f.method || f.method === method) && f.path.test(url.pathname))
      if (fault) {
        fault.remaining--
        throw this.faultError(fault.status, method, url.pathname)
      }
      if (method === 'GET' && ['/readyz', '/livez', '/healthz'].includes(url.pathname)) {
        if (this.apiReady) throw new HttpError(200, 'ok', 'text/plain; charset=utf-8')
        throw new HttpError(500, `[+]ping ok\n[-]etcd failed: reason withheld\n${url.pathname.slice(1)} check failed`, 'text/plain; charset=utf-8')
      }
      const routed = this.route(call)
      if (routed === 'streaming') {
        // A route checks what it can before it streams, so that a bad request still gets its 4xx.
        this.stream(url, response)
        record.status = 200
        this.onRequest?.(record)
        return
      }
      ;[status, answer] = routed
    } catch (error) {
      const failure = error instanceof HttpError ? error : this.unexpected(error)
      status = failure.status
      answer = failure.body
      answerType = failure.contentType
    }
    record.status = status
    const text = typeof answer === 'string' ? answer : JSON.stringify(answer)
    response.writeHead(status, { 'Content-Type': answerType, 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID() })
    response.end(text)
    this.onRequest?.(record)
  }

  /** The user's name, '' for anonymous access (no credentials configured), undefined when refused. */
  private authenticate(request: http.IncomingMessage, socket: TLSSocket): string | undefined {
    const byCertificate = Boolean(this.serving.tls?.clientCaPem)
    const byToken = Boolean(this.serving.tokens?.length)
    if (byCertificate && socket.authorized) return subjectOf(socket)
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
    if (byToken && bearer !== undefined && this.serving.tokens!.includes(bearer)) return `token:${bearer.slice(0, 6)}…`
    return !byCertificate && !byToken ? '' : undefined
  }

  private faultError(status: number, method: string, path: string): HttpError {
    if (status === 401) return fail(401, 'Unauthorized')
    const specific = this.faultFor(status, method, path)
    if (specific) return specific
    if (status === 503) return fail(503, 'the server is currently unable to handle the request')
    if (status === 429) return fail(429, 'Too many requests, please try again later.', { retryAfterSeconds: 1 })
    if (status === 504) return fail(504, 'Timeout: request did not complete within requested timeout - context deadline exceeded')
    return fail(status, status >= 500 ? 'Internal error occurred: etcdserver: request timed out' : 'the server rejected our request for an unknown reason')
  }
}

/** The subject of the client certificate, e.g. "O=system:masters, CN=slipway-admin@lab"; '' without one. */
export function subjectOf(socket: TLSSocket): string {
  if (typeof socket.getPeerCertificate !== 'function') return ''
  const peer = socket.getPeerCertificate()
  return Object.entries(peer?.subject ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(', ')
}

export interface KubeconfigCredentials {
  token?: string
  clientCertificatePem?: string
  clientKeyPem?: string
  /** The context's namespace. */
  namespace?: string
}

/** A kubeconfig for helm, kubectl or client-node: the server, its CA if any, and a token or client certificate. */
export function kubeconfigFor(url: string, caPem: string | undefined, credentials: KubeconfigCredentials = {}): string {
  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')
  const user: string[] = []
  if (credentials.token) user.push(`    token: ${credentials.token}`)
  if (credentials.clientCertificatePem) user.push(`    client-certificate-data: ${b64(credentials.clientCertificatePem)}`)
  if (credentials.clientKeyPem) user.push(`    client-key-data: ${b64(credentials.clientKeyPem)}`)
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake',
    '  cluster:',
    `    server: ${url}`,
    ...(caPem ? [`    certificate-authority-data: ${b64(caPem)}`] : []),
    'users:',
    '- name: tester',
    ...(user.length ? ['  user:', ...user] : ['  user: {}']),
    'contexts:',
    '- name: tester@fake',
    '  context:',
    '    cluster: fake',
    '    user: tester',
    ...(credentials.namespace ? [`    namespace: ${credentials.namespace}`] : []),
    'current-context: tester@fake',
    '',
  ].join('\n')
}

// ----- patches -----

/** The PATCH media types the real server accepts (server-side apply is the last). */
export const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml']

/** The patch's media type; 415 for any other, or for a list of them, as on the real server. */
export function patchMediaType(contentType: string | undefined, accepted: readonly string[] = PATCH_TYPES): string {
  const mediaType = mediaTypeOf(contentType)
  if (!accepted.includes(mediaType) || (contentType ?? '').includes(',')) {
    throw fail(415, `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(', ')}`)
  }
  return mediaType
}

/**
 * A JSON, merge or strategic merge patch applied to `existing` (read once the body parsed), with the
 * errors the real server answers: 400 for a body that is not JSON, a JSON patch that is not an array
 * or a merge patch that is not an object; `conflict()` for a stale metadata.resourceVersion;
 * `precondition` may refuse the patch's other metadata (a UID precondition).
 */
export function patchDocument(
  mediaType: string,
  raw: string,
  existing: () => { metadata: { resourceVersion?: string } },
  options: { strategic: (target: unknown, patch: unknown) => unknown; conflict: () => HttpError; precondition?: (metadata: Record<string, unknown>) => void },
): unknown {
  let patch: unknown
  try {
    patch = JSON.parse(raw)
  } catch {
    throw fail(400, `error decoding patch: invalid character '${raw[0] ?? ''}' looking for beginning of value`)
  }
  const target = existing()
  if (mediaType === 'application/json-patch+json') {
    if (!Array.isArray(patch)) throw fail(400, `json: cannot unmarshal ${isObject(patch) ? 'object' : typeof patch} into Go value of type jsonpatch.Patch`)
    return jsonPatch(target, patch)
  }
  if (!isObject(patch)) throw fail(400, `json: cannot unmarshal ${Array.isArray(patch) ? 'array' : typeof patch} into Go value of type map[string]interface {}`)
  const metadata = isObject(patch.metadata) ? patch.metadata : {}
  if (typeof metadata.resourceVersion === 'string' && metadata.resourceVersion !== target.metadata.resourceVersion) throw options.conflict()
  options.precondition?.(metadata)
  return mediaType === 'application/merge-patch+json' ? mergePatch(target, patch) : options.strategic(target, patch)
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch)
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else result[key] = mergePatch(result[key], value)
  }
  return result
}

/** RFC 6902 JSON patch: add, remove, replace, move, copy, test. */
export function jsonPatch(document: unknown, operations: unknown[]): unknown {
  const result = clone(document)
  const tokensOf = (pointer: string) => pointer.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
  const resolve = (pointer: string, op: string) => {
    const tokens = tokensOf(pointer)
    const last = tokens.pop()
    let parent: unknown = result
    for (const token of tokens) parent = isObject(parent) ? parent[token] : Array.isArray(parent) ? parent[Number(token)] : undefined
    if (last === undefined || !(isObject(parent) || Array.isArray(parent))) throw fail(422, `jsonpatch ${op} operation does not apply: doc is missing path: "${pointer}"`)
    return { parent, last }
  }
  const read = (pointer: string, op: string) => {
    const { parent, last } = resolve(pointer, op)
    const value = Array.isArray(parent) ? parent[Number(last)] : parent[last]
    if (value === undefined) throw fail(422, `jsonpatch ${op} operation does not apply: doc is missing path: "${pointer}"`)
    return value
  }
  const remove = (pointer: string, op: string) => {
    const { parent, last } = resolve(pointer, op)
    if (Array.isArray(parent)) {
      if (Number(last) >= parent.length) throw fail(422, `jsonpatch ${op} operation does not apply: doc is missing key: ${pointer}`)
      parent.splice(Number(last), 1)
    } else {
      if (!(last in parent)) throw fail(422, `jsonpatch ${op} operation does not apply: doc is missing key: ${pointer}`)
      delete parent[last]
    }
  }
  const add = (pointer: string, value: unknown, op: string) => {
    const { parent, last } = resolve(pointer, op)
    if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), op === 'replace' ? 1 : 0, clone(value))
    else parent[last] = clone(value)
  }
  for (const operation of operations) {
    if (!isObject(operation) || typeof operation.op !== 'string' || typeof operation.path !== 'string') throw fail(400, 'json: cannot unmarshal into Go value of type jsonpatch.Operation')
    const { op, path } = operation
    switch (op) {
      case 'add':
        add(path, operation.value, op)
        break
      case 'replace':
        read(path, op)
        add(path, operation.value, op)
        break
      case 'remove':
        remove(path, op)
        break
      case 'move':
      case 'copy': {
        const from = String(operation.from ?? '')
        const value = clone(read(from, op))
        if (op === 'move') remove(from, op)
        add(path, value, 'add')
        break
      }
      case 'test':
        if (!deepEqual(read(path, op), operation.value)) throw fail(422, `the server rejected our request due to an error in our request: testing value ${path} failed`)
        break
      default:
        throw fail(400, `Unexpected kind: ${op}`)
    }
  }
  return result
}

// ----- structured merge -----

/**
 * A subset of Kubernetes' structured-merge-diff (sigs.k8s.io/structured-merge-diff): strategic merge,
 * and server-side apply's field sets and managedFields (used by kube-cluster.ts). Without the OpenAPI
 * schemas, list and map semantics come from a small table of well-known fields:
 *
 * - maps merge field by field; `selector` (LabelSelector, Service selector) is an atomic map;
 * - associative lists merge item by item on their keys: containers, initContainers,
 *   ephemeralContainers, env, volumes, imagePullSecrets (name), volumeMounts (mountPath), container
 *   ports (containerPort, protocol), Service spec.ports (port, protocol), conditions (type),
 *   ownerReferences (uid), topologySpreadConstraints, hostAliases; a missing `protocol` key counts as
 *   TCP, its schema default;
 * - metadata.finalizers is a set (`v:` elements); every other list is atomic (replaced whole).
 *
 * Field sets are kept as sets of paths of FieldsV1 elements (`f:name`, `k:{"name":"web"}`, `v:"x"`),
 * serialised to and from the managedFields FieldsV1 tree (`".": {}` marks a member with children).
 */

export type PathElement = string
export type FieldPath = readonly PathElement[]
type Json = unknown

export const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)
export const clone = <T>(value: T): T => structuredClone(value)

export function deepEqual(a: Json, b: Json): boolean {
  if (a === b) return true
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => deepEqual(item, b[index]))
  if (isObject(a)) {
    if (!isObject(b)) return false
    const keys = Object.keys(a)
    return keys.length === Object.keys(b).length && keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && deepEqual(a[key], b[key]))
  }
  return false
}

const SEPARATOR = '\u0000'
const pathKey = (path: FieldPath) => path.join(SEPARATOR)

export class FieldSet {
  private readonly members = new Map<string, FieldPath>()

  constructor(paths: Iterable<FieldPath> = []) {
    for (const path of paths) this.add(path)
  }

  add(path: FieldPath): void {
    this.members.set(pathKey(path), [...path])
  }
  has(path: FieldPath): boolean {
    return this.members.has(pathKey(path))
  }
  delete(path: FieldPath): void {
    this.members.delete(pathKey(path))
  }
  get size(): number {
    return this.members.size
  }
  paths(): FieldPath[] {
    return [...this.members.values()]
  }
  /** Some member is `path` or lies below it. */
  hasAtOrBelow(path: FieldPath): boolean {
    const prefix = pathKey(path)
    for (const key of this.members.keys()) if (key === prefix || key.startsWith(prefix + SEPARATOR)) return true
    return false
  }
  difference(other: FieldSet): FieldSet {
    return new FieldSet(this.paths().filter((path) => !other.has(path)))
  }

  /** The FieldsV1 tree of managedFields. */
  toFieldsV1(): Record<string, unknown> {
    const root: Record<string, unknown> = {}
    for (const path of [...this.members.values()].sort((a, b) => (pathKey(a) < pathKey(b) ? -1 : 1))) {
      let node = root
      for (const element of path) node = (node[element] ??= {}) as Record<string, unknown>
      node['.'] = {}
    }
    // A member without children is written `{}`; one with children keeps its `".": {}`.
    const strip = (node: Record<string, unknown>): Record<string, unknown> => {
      const children = Object.entries(node).filter(([key]) => key !== '.')
      if (children.length === 0) return {}
      const result: Record<string, unknown> = '.' in node ? { '.': {} } : {}
      for (const [key, child] of children) result[key] = strip(child as Record<string, unknown>)
      return result
    }
    return strip(root)
  }

  static fromFieldsV1(tree: unknown): FieldSet {
    const set = new FieldSet()
    const walk = (node: unknown, path: PathElement[]) => {
      if (!isObject(node)) return
      const children = Object.keys(node).filter((key) => key !== '.')
      if (path.length > 0 && (children.length === 0 || '.' in node)) set.add(path)
      for (const key of children) walk(node[key], [...path, key])
    }
    walk(tree, [])
    return set
  }
}

// ----- the schema table -----

type ListKind = { type: 'map'; keys: string[] } | { type: 'set' } | { type: 'atomic' }

const CONTAINER_LISTS = new Set(['f:containers', 'f:initContainers', 'f:ephemeralContainers'])
const BY_NAME = new Set(['f:containers', 'f:initContainers', 'f:ephemeralContainers', 'f:env', 'f:volumes', 'f:imagePullSecrets', 'f:resourceClaims'])

export function listKind(path: FieldPath): ListKind {
  const last = path[path.length - 1]
  if (last === undefined) return { type: 'atomic' }
  if (BY_NAME.has(last)) return { type: 'map', keys: ['name'] }
  if (path.length === 2 && path[0] === 'f:metadata') {
    if (last === 'f:finalizers') return { type: 'set' }
    if (last === 'f:ownerReferences') return { type: 'map', keys: ['uid'] }
  }
  switch (last) {
    case 'f:volumeMounts':
      return { type: 'map', keys: ['mountPath'] }
    case 'f:volumeDevices':
      return { type: 'map', keys: ['devicePath'] }
    case 'f:conditions':
      return { type: 'map', keys: ['type'] }
    case 'f:hostAliases':
      return { type: 'map', keys: ['ip'] }
    case 'f:topologySpreadConstraints':
      return { type: 'map', keys: ['topologyKey', 'whenUnsatisfiable'] }
    case 'f:ports': {
      const parent = path[path.length - 2] ?? ''
      const grandparent = path[path.length - 3] ?? ''
      if (parent.startsWith('k:') && CONTAINER_LISTS.has(grandparent)) return { type: 'map', keys: ['containerPort', 'protocol'] }
      if (path.length === 2 && path[0] === 'f:spec') return { type: 'map', keys: ['port', 'protocol'] }
      return { type: 'atomic' }
    }
    default:
      return { type: 'atomic' }
  }
}

/** Maps replaced whole rather than merged key by key. */
const isAtomicMap = (path: FieldPath) => path[path.length - 1] === 'f:selector'

/** The key of an associative-list item: its key fields, protocol defaulted, in key order. */
function itemKey(item: Json, keys: string[]): Record<string, unknown> | undefined {
  if (!isObject(item)) return undefined
  const key: Record<string, unknown> = {}
  for (const name of [...keys].sort()) {
    const value = item[name] ?? (name === 'protocol' ? 'TCP' : undefined)
    if (value !== undefined) key[name] = value
  }
  return Object.keys(key).length > 0 ? key : undefined
}

const keyElement = (key: Record<string, unknown>) => `k:${JSON.stringify(key)}`
const sameKey = (item: Json, key: Record<string, unknown>, keys: string[]) => deepEqual(itemKey(item, keys), key)

// ----- field sets of values -----

/**
 * The fields a configuration sets, as apply records them: leaves (scalars, atomic lists and maps, empty
 * maps), associative-list items (with their fields) and set values; plain maps only through their fields.
 * With `withMaps`, maps themselves are members too (what an update that creates them records).
 */
export function fieldSetOf(value: Json, withMaps = false): FieldSet {
  const set = new FieldSet()
  const walk = (node: Json, path: FieldPath) => {
    if (isObject(node) && !isAtomicMap(path)) {
      const entries = Object.entries(node).filter(([, child]) => child !== null && child !== undefined)
      if (path.length > 0 && (entries.length === 0 || withMaps)) set.add(path)
      for (const [key, child] of entries) walk(child, [...path, `f:${key}`])
      return
    }
    if (Array.isArray(node)) {
      const kind = listKind(path)
      if (kind.type === 'map') {
        for (const item of node) {
          const key = itemKey(item, kind.keys)
          if (!key) continue
          const itemPath = [...path, keyElement(key)]
          set.add(itemPath)
          walk(item, itemPath)
        }
        // An empty associative list is still a value its writer set.
        if (node.length === 0) set.add(path)
        return
      }
      if (kind.type === 'set') {
        for (const item of node) set.add([...path, `v:${JSON.stringify(item)}`])
        if (node.length === 0) set.add(path)
        return
      }
    }
    if (path.length > 0) set.add(path)
  }
  walk(value, [])
  return set
}

/** The fields whose value an update changed or created (maps it created included). */
export function changedFieldSet(before: Json, after: Json): FieldSet {
  const set = new FieldSet()
  const walk = (next: Json, previous: Json, path: FieldPath) => {
    if (isObject(next) && !isAtomicMap(path)) {
      if (path.length > 0 && !isObject(previous)) set.add(path)
      const old = isObject(previous) ? previous : {}
      for (const [key, child] of Object.entries(next)) if (child !== null && child !== undefined) walk(child, old[key], [...path, `f:${key}`])
      return
    }
    if (Array.isArray(next)) {
      const kind = listKind(path)
      const old = Array.isArray(previous) ? previous : []
      if (kind.type === 'map') {
        for (const item of next) {
          const key = itemKey(item, kind.keys)
          if (!key) continue
          const itemPath = [...path, keyElement(key)]
          const oldItem = old.find((candidate) => sameKey(candidate, key, kind.keys))
          if (oldItem === undefined) set.add(itemPath)
          walk(item, oldItem, itemPath)
        }
        return
      }
      if (kind.type === 'set') {
        for (const item of next) if (!old.some((candidate) => deepEqual(candidate, item))) set.add([...path, `v:${JSON.stringify(item)}`])
        return
      }
    }
    if (path.length > 0 && !deepEqual(next, previous)) set.add(path)
  }
  walk(after, before, [])
  return set
}

// ----- reading, merging and removing by path -----

function step(node: Json, element: PathElement, parentPath: FieldPath): Json {
  if (element.startsWith('f:')) return isObject(node) ? node[element.slice(2)] : undefined
  if (!Array.isArray(node)) return undefined
  if (element.startsWith('k:')) {
    const kind = listKind(parentPath)
    const key = JSON.parse(element.slice(2)) as Record<string, unknown>
    return kind.type === 'map' ? node.find((item) => sameKey(item, key, kind.keys)) : undefined
  }
  if (element.startsWith('v:')) {
    const value: unknown = JSON.parse(element.slice(2))
    return node.find((item) => deepEqual(item, value))
  }
  return undefined
}

export function valueAt(root: Json, path: FieldPath): Json {
  let node = root
  for (let index = 0; index < path.length && node !== undefined; index++) node = step(node, path[index]!, path.slice(0, index))
  return node
}

/** Removes the field, item or set value at `path`; maps and lists the removal empties go too. */
export function removeAt(root: Record<string, unknown>, path: FieldPath, keep: (path: FieldPath) => boolean = () => false): void {
  if (path.length === 0) return
  const parentPath = path.slice(0, -1)
  const parent = valueAt(root, parentPath)
  const element = path[path.length - 1]!
  if (element.startsWith('f:') && isObject(parent)) delete parent[element.slice(2)]
  else if (Array.isArray(parent)) {
    const target = step(parent, element, parentPath)
    const index = parent.indexOf(target)
    if (index >= 0) parent.splice(index, 1)
  } else return
  const emptied = isObject(parent) ? Object.keys(parent).length === 0 : Array.isArray(parent) && parent.length === 0
  // Go's omitempty drops empty maps and lists; a top-level field (spec, metadata) is kept.
  if (emptied && parentPath.length > 1 && !keep(parentPath)) removeAt(root, parentPath, keep)
}

/** Merges an applied configuration into the live object (maps by key, associative lists by item key). */
export function mergeApplied(live: Json, applied: Json, path: FieldPath = []): Json {
  if (isObject(applied) && !isAtomicMap(path)) {
    const result: Record<string, unknown> = isObject(live) ? { ...live } : {}
    for (const [key, value] of Object.entries(applied)) {
      if (value === null || value === undefined) continue
      result[key] = mergeApplied(result[key], value, [...path, `f:${key}`])
    }
    return result
  }
  if (Array.isArray(applied) && Array.isArray(live)) {
    const kind = listKind(path)
    if (kind.type === 'map') {
      const result = live.map((item) => clone(item))
      for (const item of applied) {
        const key = itemKey(item, kind.keys)
        const index = key ? result.findIndex((candidate) => sameKey(candidate, key, kind.keys)) : -1
        if (index >= 0 && key) result[index] = mergeApplied(result[index], item, [...path, keyElement(key)])
        else result.push(clone(item))
      }
      return result
    }
    if (kind.type === 'set') {
      const result = live.map((item) => clone(item))
      for (const item of applied) if (!result.some((candidate) => deepEqual(candidate, item))) result.push(clone(item))
      return result
    }
  }
  return clone(applied)
}

/**
 * A strategic merge patch, as kubectl and client-go send them: a JSON merge patch, except that the
 * associative lists above merge item by item (an item `{"$patch": "delete", <key>}` removes one),
 * `$patch: replace` in a map replaces it, and `$deleteFromPrimitiveList/<field>` removes values.
 */
export function strategicMerge(target: Json, patch: Json, path: FieldPath = []): Json {
  if (!isObject(patch)) return clone(patch)
  if (patch.$patch === 'replace') {
    const { $patch: _directive, ...rest } = patch
    return clone(rest)
  }
  if (patch.$patch === 'delete') return undefined
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length)
      const current = result[field]
      if (Array.isArray(current) && Array.isArray(value)) result[field] = current.filter((item) => !value.some((v) => deepEqual(v, item)))
      continue
    }
    const childPath = [...path, `f:${key}`]
    if (value === null) {
      delete result[key]
      continue
    }
    const kind = listKind(childPath)
    if (Array.isArray(value) && kind.type === 'map' && Array.isArray(result[key])) {
      const list = (result[key] as unknown[]).map((item) => clone(item))
      for (const item of value) {
        const itemKeyValue = itemKey(item, kind.keys)
        const index = itemKeyValue ? list.findIndex((candidate) => sameKey(candidate, itemKeyValue, kind.keys)) : -1
        if (isObject(item) && item.$patch === 'delete') {
          if (index >= 0) list.splice(index, 1)
        } else if (index >= 0 && itemKeyValue) list[index] = strategicMerge(list[index], item, [...childPath, keyElement(itemKeyValue)])
        else list.push(strategicMerge(undefined, item, childPath))
      }
      result[key] = list
      continue
    }
    const merged = strategicMerge(result[key], value, childPath)
    if (merged === undefined) delete result[key]
    else result[key] = merged
  }
  return result
}

/** A path as structured-merge-diff prints it in conflicts: `.spec.template.spec.containers[name="web"].image`. */
export function pathString(path: FieldPath): string {
  return path
    .map((element) => {
      if (element.startsWith('f:')) return `.${element.slice(2)}`
      if (element.startsWith('k:')) {
        const key = JSON.parse(element.slice(2)) as Record<string, unknown>
        return `[${Object.entries(key)
          .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
          .join(',')}]`
      }
      if (element.startsWith('v:')) return `[=${element.slice(2)}]`
      return element
    })
    .join('')
}
