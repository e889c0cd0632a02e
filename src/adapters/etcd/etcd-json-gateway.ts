import Type, { type Static, type TSchema } from 'typebox'
import Value from 'typebox/value'
import { Agent, request } from 'undici'
import type { EtcdConnection } from '../../core/clusters/etcd-access.ts'
import type { EtcdGateway, EtcdMember, EtcdMemberStatus, EtcdMemberView } from '../../core/clusters/etcd-quorum.ts'
import { notFound, SlipwayError, upstreamFailed } from '../../core/errors.ts'

/**
 * The EtcdGateway over etcd's v3 JSON gateway (grpc-gateway), which every etcd 3.4 member serves on its
 * client port: `POST /v3/cluster/member/list|add|remove`, `POST /v3/maintenance/status` (answered by
 * the member asked, about itself) and `GET /health`. HTTPS with mutual TLS: the members' serving
 * certificates must chain to the cluster's etcd CA, and the engine presents its own client
 * certificate under it. The gateway writes uint64 fields as JSON strings (IDs, raft indexes) and
 * leaves zero values out (`leader` when there is none, `errors` when there are none).
 */

/** A request that takes longer is given up: a dead member must not hold up a rolling update's tick. */
const DEFAULT_REQUEST_TIMEOUT_MS = 2_000
/** etcd's answers here are a few hundred bytes; anything this large is not etcd. */
const MAX_ANSWER_BYTES = 1024 * 1024

const Uint64 = Type.String({ pattern: '^[0-9]{1,20}$' })
const MemberAnswer = Type.Object({
  ID: Uint64,
  name: Type.Optional(Type.String({ maxLength: 256 })),
  peerURLs: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 64 })),
  clientURLs: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 64 })),
  isLearner: Type.Optional(Type.Boolean()),
})
const MemberListAnswer = Type.Object({ members: Type.Array(MemberAnswer, { maxItems: 1024 }) })
const StatusAnswer = Type.Object({
  version: Type.Optional(Type.String({ maxLength: 64 })),
  leader: Type.Optional(Uint64),
  raftIndex: Type.Optional(Uint64),
  raftTerm: Type.Optional(Uint64),
  raftAppliedIndex: Type.Optional(Uint64),
  errors: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })),
})
const HealthAnswer = Type.Object({ health: Type.String({ maxLength: 16 }), reason: Type.Optional(Type.String({ maxLength: 4096 })) })
const MemberAddAnswer = Type.Object({ member: MemberAnswer })
const AnyObject = Type.Object({})
/** etcd's error answer (grpc-gateway's): `{"error", "message", "code"}` with a 4xx or 5xx status. */
const ErrorAnswer = Type.Object({ message: Type.String({ maxLength: 4096 }), code: Type.Optional(Type.Integer()) })
/** gRPC's NotFound, as etcd answers MemberRemove of an unknown ID. */
const GRPC_NOT_FOUND = 5

export interface EtcdJsonGatewayOptions {
  requestTimeoutMs?: number
}

/** One answer of one member, or why there is none. */
type Answer<T> = { ok: true; value: T } | { ok: false; error: SlipwayError }

export class EtcdJsonGateway implements EtcdGateway {
  /** One connection pool per cluster, for the certificate it was made with (a reissued one gets a new pool). */
  private readonly agents = new Map<string, { certificatePem: string; agent: Agent }>()
  private readonly timeoutMs: number

  constructor(
    private readonly connectionOf: (cluster: string) => Promise<EtcdConnection>,
    options: EtcdJsonGatewayOptions = {},
  ) {
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  }

  async members(cluster: string): Promise<EtcdMemberView[]> {
    const { agent, connection } = await this.open(cluster)
    const list = await this.firstAnswer(cluster, connection.endpoints, (endpoint) => this.call(agent, endpoint, 'POST', '/v3/cluster/member/list', MemberListAnswer, {}))
    return Promise.all(list.members.map(toMember).map(async (member) => ({ ...member, status: await this.statusOf(agent, member) })))
  }

  async addMember(cluster: string, peerUrls: string[]): Promise<EtcdMember> {
    const { agent, connection } = await this.open(cluster)
    const added = await this.changeThroughOne(connection.endpoints, (endpoint) => this.call(agent, endpoint, 'POST', '/v3/cluster/member/add', MemberAddAnswer, { peerURLs: peerUrls }))
    return toMember(added.member)
  }

  async removeMember(cluster: string, memberId: string): Promise<void> {
    const { agent, connection } = await this.open(cluster)
    await this.changeThroughOne(connection.endpoints, (endpoint) => this.call(agent, endpoint, 'POST', '/v3/cluster/member/remove', AnyObject, { ID: memberId }))
  }

  /** Closes every connection (the engine stops). */
  async close(): Promise<void> {
    const agents = [...this.agents.values()]
    this.agents.clear()
    await Promise.all(agents.map(({ agent }) => agent.destroy().catch(() => undefined)))
  }

  private async open(cluster: string): Promise<{ agent: Agent; connection: EtcdConnection }> {
    const connection = await this.connectionOf(cluster)
    const known = this.agents.get(cluster)
    if (known?.certificatePem === connection.client.certificatePem) return { agent: known.agent, connection }
    const agent = new Agent({
      connect: { ca: connection.caPem, cert: connection.client.certificatePem, key: connection.client.privateKeyPem, timeout: this.timeoutMs },
      keepAliveTimeout: 10_000,
    })
    this.agents.set(cluster, { certificatePem: connection.client.certificatePem, agent })
    // Requests under way on the old pool finish; it takes no new ones.
    if (known) void known.agent.close().catch(() => undefined)
    return { agent, connection }
  }

  /** The member's own status and health, asked of it at its own client URL, both at once. */
  private async statusOf(agent: Agent, member: EtcdMember): Promise<EtcdMemberStatus> {
    const unreachable = (error: string): EtcdMemberStatus => ({ reachable: false, healthy: false, raftIndex: null, raftAppliedIndex: null, raftTerm: null, leaderId: null, version: null, errors: [error] })
    // Only https: a member's advertised URLs come from etcd, and the engine's certificate goes only where TLS under the etcd CA is checked.
    const endpoint = member.clientUrls.find((url) => url.startsWith('https://'))
    if (!endpoint) return unreachable(member.clientUrls.length ? `no https client URL (${member.clientUrls.join(', ')})` : 'not started: it has no client URL yet')
    const [status, health] = await Promise.all([
      this.answer(() => this.call(agent, endpoint, 'POST', '/v3/maintenance/status', StatusAnswer, {})),
      // /health answers 503 with {"health":"false"} when the member has no leader or an alarm: an answer, not a failure.
      this.answer(() => this.call(agent, endpoint, 'GET', '/health', HealthAnswer, undefined, [503])),
    ])
    if (!status.ok) return unreachable(status.error.message)
    const leaderId = status.value.leader && status.value.leader !== '0' ? status.value.leader : null
    const errors = [...(status.value.errors ?? [])]
    if (!leaderId && errors.length === 0) errors.push('it follows no leader')
    if (!health.ok) errors.push(`its /health could not be asked: ${health.error.message}`)
    else if (health.value.health !== 'true') errors.push(`its /health answers ${health.value.health}${health.value.reason ? ` (${health.value.reason})` : ''}`)
    return {
      reachable: true,
      healthy: errors.length === 0,
      raftIndex: toNumber(status.value.raftIndex),
      raftAppliedIndex: toNumber(status.value.raftAppliedIndex),
      raftTerm: toNumber(status.value.raftTerm),
      leaderId,
      version: status.value.version ?? null,
      errors,
    }
  }

  private async answer<T>(ask: () => Promise<T>): Promise<Answer<T>> {
    try {
      return { ok: true, value: await ask() }
    } catch (error) {
      return { ok: false, error: asEtcdError(error, 'etcd') }
    }
  }

  /** Asks every endpoint at once and takes the first answer: reads only. */
  private async firstAnswer<T>(cluster: string, endpoints: string[], ask: (endpoint: string) => Promise<T>): Promise<T> {
    try {
      return await Promise.any(endpoints.map(ask))
    } catch (error) {
      const failures = (error as AggregateError).errors.map((failure) => asEtcdError(failure, 'etcd'))
      // An answer etcd gave (an error it sent, an answer that is not what etcd sends) says more than a refused connection.
      const answered = failures.find((failure) => failure.code !== 'ETCD_UNREACHABLE')
      if (answered) throw answered
      const timedOut = failures.every((failure) => failure.kind === 'upstream_timeout')
      throw upstreamFailed('ETCD_UNREACHABLE', `no etcd member of cluster "${cluster}" answered: ${failures.map((failure) => failure.message).join('; ')}`, timedOut, { endpoints })
    }
  }

  /**
   * Sends a membership change to one endpoint at a time, going on to the next only when the request
   * never reached etcd (no connection): one that may have arrived is not sent twice.
   */
  private async changeThroughOne<T>(endpoints: string[], send: (endpoint: string) => Promise<T>): Promise<T> {
    const failures: SlipwayError[] = []
    for (const endpoint of endpoints) {
      try {
        return await send(endpoint)
      } catch (error) {
        const failure = asEtcdError(error, 'etcd')
        if (!neverConnected(error)) throw failure
        failures.push(failure)
      }
    }
    throw upstreamFailed('ETCD_UNREACHABLE', `no etcd member could be reached for the change: ${failures.map((failure) => failure.message).join('; ')}`, false, { endpoints })
  }

  /** One request with its own deadline; the answer checked against what etcd sends. */
  private async call<S extends TSchema>(agent: Agent, endpoint: string, method: 'GET' | 'POST', path: string, schema: S, body: unknown, answeredStatuses: number[] = []): Promise<Static<S>> {
    const where = `${endpoint}${path}`
    let text = ''
    let status: number
    try {
      const response = await request(where, {
        method,
        dispatcher: agent,
        signal: AbortSignal.timeout(this.timeoutMs),
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      status = response.statusCode
      for await (const chunk of response.body) {
        text += (chunk as Buffer).toString('utf8')
        if (text.length > MAX_ANSWER_BYTES) {
          response.body.destroy()
          throw badAnswer(where, `more than ${MAX_ANSWER_BYTES} bytes`)
        }
      }
    } catch (error) {
      throw asEtcdError(error, where)
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw badAnswer(where, `HTTP ${status} with something other than JSON: ${JSON.stringify(text.slice(0, 120))}`)
    }
    if (status < 200 || (status >= 300 && !answeredStatuses.includes(status))) {
      if (!Value.Check(ErrorAnswer, json)) throw badAnswer(where, `HTTP ${status} without etcd's error message: ${JSON.stringify(text.slice(0, 120))}`)
      if (json.code === GRPC_NOT_FOUND) throw notFound('ETCD_MEMBER_NOT_FOUND', `etcd at ${endpoint}: ${json.message}`)
      throw upstreamFailed('ETCD_REFUSED', `etcd at ${endpoint} refused ${path}: ${json.message}`, false)
    }
    if (!Value.Check(schema, json)) throw badAnswer(where, `${firstProblem(schema, json)}: ${JSON.stringify(text.slice(0, 120))}`)
    return json
  }
}

const toMember = (answer: Static<typeof MemberAnswer>): EtcdMember => ({
  id: answer.ID,
  name: answer.name ?? '',
  peerUrls: answer.peerURLs ?? [],
  clientUrls: answer.clientURLs ?? [],
  learner: answer.isLearner ?? false,
})

/** Raft indexes and terms stay far below 2^53. */
const toNumber = (value: string | undefined) => (value === undefined ? 0 : Number(value))

const badAnswer = (where: string, what: string) => upstreamFailed('ETCD_BAD_ANSWER', `${where} did not answer as etcd does: ${what}`, false)

function firstProblem(schema: TSchema, value: unknown): string {
  for (const error of Value.Errors(schema, value)) return `${error.instancePath || '(answer)'} ${error.message}`
  return 'unexpected answer'
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'])
/** The errors of requests that failed before any byte of them could have reached etcd. */
const unsent = new WeakSet<SlipwayError>()

const neverConnected = (error: unknown) => (error instanceof SlipwayError ? unsent.has(error) : NETWORK_CODES.has(errorCode(error)))

const errorCode = (error: unknown) => String((error as { code?: unknown }).code ?? (error as { cause?: { code?: unknown } }).cause?.code ?? '')

function asEtcdError(error: unknown, where: string): SlipwayError {
  if (error instanceof SlipwayError) return error
  const name = (error as { name?: unknown }).name
  const code = errorCode(error)
  const timedOut = name === 'TimeoutError' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
  const message = error instanceof Error ? error.message : String(error)
  const failure = upstreamFailed('ETCD_UNREACHABLE', timedOut ? `${where}: no answer in time` : `${where}: ${code ? `${code} ` : ''}${message}`.trim(), timedOut)
  if (NETWORK_CODES.has(code)) unsent.add(failure)
  return failure
}
