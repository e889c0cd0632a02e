import { Agent, request } from 'undici'
import type { BmcTarget, BootDevice, PowerAction } from '../../core/power/bmc.ts'
import { BmcError, type BmcClient } from '../../core/power/bmc-client.ts'

/**
 * DMTF Redfish over HTTPS: the ComputerSystem's PowerState, its #ComputerSystem.Reset action and its
 * Boot override, in DMTF's names. Each call logs in with a session (SessionService, X-Auth-Token) and
 * logs out at its end, falling back to Basic authentication where the service has no sessions; a
 * PATCH carries the system's ETag (If-Match), which some BMCs require. Only paths under /redfish/v1 of
 * the configured BMC are followed, whatever links the BMC answers with.
 */

/** ResetType values for each action, in order of preference; the BMC's AllowableValues decide among them. */
const RESET_TYPES: Record<PowerAction, string[]> = {
  on: ['On', 'ForceOn'],
  off: ['ForceOff'],
  'soft-off': ['GracefulShutdown'],
  cycle: ['PowerCycle', 'ForceRestart'],
  reset: ['ForceRestart', 'GracefulRestart'],
}
const BOOT_TARGETS: Record<BootDevice, string> = { network: 'Pxe', disk: 'Hdd' }
const MAX_BODY_BYTES = 1024 * 1024
const SESSIONS = '/redfish/v1/SessionService/Sessions'

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  json: Record<string, unknown> | undefined
}

type Call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<Answer>

export class RedfishClient implements BmcClient {
  async powerState(target: BmcTarget, signal: AbortSignal): Promise<'on' | 'off'> {
    return this.withSession(target, signal, async (call) => {
      const { json } = await this.system(call, target)
      const state = json.PowerState
      // PoweringOn counts as on and PoweringOff as off: where the machine is going.
      if (state === 'On' || state === 'PoweringOn' || state === 'Paused') return 'on'
      if (state === 'Off' || state === 'PoweringOff') return 'off'
      throw new BmcError('BMC_PROTOCOL', `the ComputerSystem's PowerState is ${JSON.stringify(state)}`)
    })
  }

  async power(target: BmcTarget, action: PowerAction, signal: AbortSignal): Promise<void> {
    await this.withSession(target, signal, async (call) => {
      const { path, json } = await this.system(call, target)
      const reset = ((json.Actions as Record<string, unknown> | undefined)?.['#ComputerSystem.Reset'] ?? {}) as Record<string, unknown>
      const allowed = reset['ResetType@Redfish.AllowableValues']
      const candidates = RESET_TYPES[action]
      const resetType = Array.isArray(allowed) ? candidates.find((type) => allowed.includes(type)) : candidates[0]
      if (!resetType) throw new BmcError('BMC_REFUSED', `this BMC offers no reset for "${action}" (it allows ${(allowed as unknown[]).join(', ')})`)
      const actionPath = typeof reset.target === 'string' ? this.ownPath(target, reset.target) : `${path}/Actions/ComputerSystem.Reset`
      expectSuccess(await call('POST', actionPath, { ResetType: resetType }), `ResetType ${resetType}`)
    })
  }

  async setBootDevice(target: BmcTarget, device: BootDevice, persistent: boolean, signal: AbortSignal): Promise<void> {
    await this.withSession(target, signal, async (call) => {
      const patch = { Boot: { BootSourceOverrideTarget: BOOT_TARGETS[device], BootSourceOverrideEnabled: persistent ? 'Continuous' : 'Once' } }
      // An ETag that changed between the GET and the PATCH (412): read it again, once.
      for (let attempt = 1; ; attempt++) {
        const { path, json, etag } = await this.system(call, target)
        const allowed = (json.Boot as Record<string, unknown> | undefined)?.['BootSourceOverrideTarget@Redfish.AllowableValues']
        if (Array.isArray(allowed) && !allowed.includes(BOOT_TARGETS[device])) throw new BmcError('BMC_REFUSED', `this BMC cannot boot from ${BOOT_TARGETS[device]} (it allows ${allowed.join(', ')})`)
        const answer = await call('PATCH', path, patch, etag ? { 'if-match': etag } : {})
        if (answer.status === 412 && attempt === 1) continue
        return expectSuccess(answer, 'the Boot override')
      }
    })
  }

  /** The ComputerSystem: the configured one, or the only member of /redfish/v1/Systems. */
  private async system(call: Call, target: BmcTarget): Promise<{ path: string; json: Record<string, unknown>; etag: string | undefined }> {
    let path = target.redfish?.systemPath ?? undefined
    if (!path) {
      const systems = expectSuccess(await call('GET', '/redfish/v1/Systems'), 'the Systems collection')
      const members = ((systems.json?.Members as { '@odata.id'?: string }[] | undefined) ?? []).map((member) => member['@odata.id']).filter((id): id is string => typeof id === 'string')
      if (members.length === 0) throw new BmcError('BMC_PROTOCOL', 'the BMC lists no ComputerSystem')
      if (members.length > 1) throw new BmcError('BMC_REFUSED', `the BMC has ${members.length} systems (${members.slice(0, 5).join(', ')}): set redfish.systemPath`)
      path = this.ownPath(target, members[0]!)
    }
    const answer = expectSuccess(await call('GET', path), `the ComputerSystem ${path}`)
    const header = answer.headers.etag
    const etag = (typeof header === 'string' ? header : undefined) ?? (typeof answer.json?.['@odata.etag'] === 'string' ? (answer.json['@odata.etag'] as string) : undefined)
    return { path, json: answer.json ?? {}, etag }
  }

  /** A link the BMC gave, reduced to a path on the BMC itself (never another host). */
  private ownPath(target: BmcTarget, link: string): string {
    const origin = baseUrl(target)
    const url = new URL(link, origin)
    if (url.origin !== new URL(origin).origin || !url.pathname.startsWith('/redfish/v1/')) throw new BmcError('BMC_PROTOCOL', `the BMC pointed outside its own Redfish service: ${link}`)
    return url.pathname
  }

  private async withSession<T>(target: BmcTarget, signal: AbortSignal, work: (call: Call) => Promise<T>): Promise<T> {
    const options = target.redfish
    const agent = new Agent({ connect: { ca: options?.caBundle ?? undefined, rejectUnauthorized: options?.verifyTls ?? true }, connections: 1 })
    let authorization: Record<string, string> = {}
    const call: Call = (method, path, body, headers = {}) => send(agent, target, method, path, body, { ...authorization, ...headers }, signal)
    let session: string | undefined
    try {
      const login = await call('POST', SESSIONS, { UserName: target.username, Password: target.password })
      const token = login.headers['x-auth-token']
      if ((login.status === 200 || login.status === 201) && typeof token === 'string') {
        authorization = { 'x-auth-token': token }
        const location = login.headers.location
        session = typeof location === 'string' ? this.ownPath(target, location) : undefined
      } else if (login.status === 401 || login.status === 403) {
        throw new BmcError('BMC_AUTH_FAILED', 'the BMC refused the user name or password')
      } else {
        // No session service (404, 405): Basic authentication on every request.
        authorization = { authorization: `Basic ${Buffer.from(`${target.username}:${target.password}`).toString('base64')}` }
      }
      return await work(call)
    } finally {
      if (session && !signal.aborted) await call('DELETE', session).catch(() => undefined)
      await agent.close().catch(() => undefined)
    }
  }
}

function baseUrl(target: BmcTarget): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  return `https://${host}:${target.port}`
}

async function send(agent: Agent, target: BmcTarget, method: string, path: string, body: unknown, headers: Record<string, string>, signal: AbortSignal): Promise<Answer> {
  try {
    const response = await request(`${baseUrl(target)}${path}`, {
      method: method as 'GET',
      dispatcher: agent,
      signal,
      headers: { accept: 'application/json', 'odata-version': '4.0', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    let text = ''
    for await (const chunk of response.body) {
      text += (chunk as Buffer).toString('utf8')
      if (text.length > MAX_BODY_BYTES) throw new BmcError('BMC_PROTOCOL', `the BMC answered ${method} ${path} with more than 1 MiB`)
    }
    let json: Record<string, unknown> | undefined
    if (text.trim()) {
      try {
        json = JSON.parse(text) as Record<string, unknown>
      } catch {
        throw new BmcError('BMC_PROTOCOL', `the BMC answered ${method} ${path} with something other than JSON`)
      }
    }
    return { status: response.statusCode, headers: response.headers as Answer['headers'], json }
  } catch (error) {
    throw asBmcError(error, signal)
  }
}

/** A 2xx answer, or the failure in the BMC's own words (Redfish's error.@Message.ExtendedInfo). */
function expectSuccess(answer: Answer, what: string): Answer {
  if (answer.status >= 200 && answer.status < 300) return answer
  const error = answer.json?.error as { message?: unknown; '@Message.ExtendedInfo'?: { Message?: unknown }[] } | undefined
  const said = error?.['@Message.ExtendedInfo']?.[0]?.Message ?? error?.message
  const words = typeof said === 'string' ? `: ${said}` : ''
  if (answer.status === 401) throw new BmcError('BMC_AUTH_FAILED', `the BMC refused the credentials (HTTP 401)${words}`)
  if (answer.status === 503) throw new BmcError('BMC_UNREACHABLE', `the BMC is busy (HTTP 503)${words}`)
  throw new BmcError('BMC_REFUSED', `the BMC refused ${what} (HTTP ${answer.status})${words}`)
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|UNABLE_TO_GET_ISSUER/
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])

function asBmcError(error: unknown, signal: AbortSignal): BmcError {
  if (error instanceof BmcError) return error
  if (signal.aborted) return new BmcError('BMC_TIMEOUT', 'no answer in time')
  const code = String((error as { code?: unknown }).code ?? (error as { cause?: { code?: unknown } }).cause?.code ?? '')
  if (TLS_CODES.test(code)) return new BmcError('BMC_TLS_UNTRUSTED', `the BMC's certificate is not trusted (${code}): give its CA in redfish.caBundle`)
  if (NETWORK_CODES.has(code)) return new BmcError('BMC_UNREACHABLE', `no HTTPS answer from the BMC (${code})`)
  return new BmcError('BMC_PROTOCOL', `the BMC could not be asked: ${error instanceof Error ? error.message : String(error)}`)
}
