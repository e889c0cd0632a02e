/**
 * A Redfish BMC double (no Redfish BMC emulator ships in Debian): an HTTPS service with DMTF's
 * resources and property names, as far as power and boot go. Checked against real clients
 * (redfishtool, python3-sushy) in redfish-bmc.test.ts, so it answers the way they expect.
 *
 * - /redfish (versions), /redfish/v1 (ServiceRoot), /redfish/v1/Systems and one ComputerSystem with
 *   PowerState, Boot (BootSourceOverrideTarget/Enabled/Mode, with @Redfish.AllowableValues), Status and
 *   the #ComputerSystem.Reset action (ResetType@Redfish.AllowableValues); empty Chassis and Managers.
 * - SessionService with Sessions: POST creates one (X-Auth-Token and Location), DELETE ends it; Basic
 *   authentication too. Everything but the version documents needs one or the other.
 * - ETags: each GET of the system carries one (header and @odata.etag); with `requireEtag`, a PATCH
 *   without a matching If-Match is refused 412, as some BMCs do.
 * - The machine behind it: `machine` (power, boot) in memory, or with `chassis` a real one (a lab VM)
 *   through the same chassis program ipmi_sim drives (test/helpers/chassis.ts): its power state is
 *   read from it, resets and boot overrides go to it. redfish-bmc-process.ts runs one as a process
 *   (inside a lab's network namespace).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { ChassisControl } from '../helpers/chassis.ts'

export interface RedfishMachine {
  power: 'On' | 'Off'
  bootTarget: 'None' | 'Pxe' | 'Hdd'
  bootEnabled: 'Disabled' | 'Once' | 'Continuous'
}

export interface RedfishBmcOptions {
  certificatePem: string
  privateKeyPem: string
  username?: string
  password?: string
  requireEtag?: boolean
  /** The reset action's `target` as the BMC advertises it (a hostile BMC may point anywhere). */
  resetTarget?: string
  /** Called for each reset the BMC performs (after `machine.power` changed). */
  onReset?: (resetType: string) => void | Promise<void>
  /** A real machine behind the BMC: its power is read from it and given to it. */
  chassis?: ChassisControl
}

const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'GracefulRestart', 'PowerCycle', 'Nmi'] as const
const BOOT_TARGETS = ['None', 'Pxe', 'Hdd'] as const
const SYSTEM = '/redfish/v1/Systems/437XR1138R2'

export class RedfishBmc {
  readonly machine: RedfishMachine = { power: 'Off', bootTarget: 'None', bootEnabled: 'Disabled' }
  /** What the BMC was asked to do: `reset ForceOff`, `boot Pxe Once`, `login`, `logout`. */
  readonly calls: string[] = []
  readonly username: string
  readonly password: string
  private readonly sessions = new Map<string, string>() // token -> session id
  private etagCounter = 1
  private server!: https.Server
  url = ''

  private constructor(private readonly options: RedfishBmcOptions) {
    this.username = options.username ?? 'root'
    this.password = options.password ?? 'calvin-7f3e'
  }

  static async start(options: RedfishBmcOptions, host = '127.0.0.1', port = 0): Promise<RedfishBmc> {
    const bmc = new RedfishBmc(options)
    bmc.server = https.createServer({ cert: options.certificatePem, key: options.privateKeyPem }, (request, response) => {
      void bmc.handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) bmc.send(response, 500, bmc.error('Base.1.8.GeneralError', String(error)))
      })
    })
    await new Promise<void>((resolve, reject) => {
      bmc.server.once('error', reject)
      bmc.server.listen(port, host, resolve)
    })
    bmc.url = `https://${host}:${(bmc.server.address() as AddressInfo).port}`
    return bmc
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port
  }

  get systemPath(): string {
    return SYSTEM
  }

  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private get etag(): string {
    return `W/"${this.etagCounter}"`
  }

  private async handle(request: import('node:http').IncomingMessage, response: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks).toString('utf8')
    const url = new URL(request.url ?? '/', 'https://bmc')
    const path = url.pathname.replace(/\/+$/, '') || '/'
    const method = request.method ?? 'GET'
    let body: Record<string, unknown> = {}
    if (raw) {
      try {
        body = JSON.parse(raw) as Record<string, unknown>
      } catch {
        return this.send(response, 400, this.error('Base.1.8.MalformedJSON', 'The request body submitted was malformed JSON.'))
      }
    }
    if (method === 'GET' && path === '/redfish') return this.send(response, 200, { v1: '/redfish/v1/' })
    if (method === 'GET' && path === '/redfish/v1') return this.send(response, 200, this.serviceRoot())
    if (method === 'GET' && path === '/redfish/v1/odata') return this.send(response, 200, { '@odata.context': '/redfish/v1/$metadata', value: [{ name: 'Systems', kind: 'Singleton', url: '/redfish/v1/Systems' }] })
    if (method === 'POST' && path === '/redfish/v1/SessionService/Sessions') return this.login(body, response)

    if (!this.authenticated(request)) {
      response.setHeader('www-authenticate', 'Basic realm="Redfish"')
      return this.send(response, 401, this.error('Base.1.8.NoValidSession', 'There is no valid session established with the implementation.'))
    }
    if (method === 'DELETE' && path.startsWith('/redfish/v1/SessionService/Sessions/')) return this.logout(path.split('/').pop()!, response)
    if (method === 'GET') {
      switch (path) {
        case '/redfish/v1/Systems':
          return this.send(response, 200, this.collection('/redfish/v1/Systems', '#ComputerSystemCollection.ComputerSystemCollection', 'Computer System Collection', [SYSTEM]))
        case '/redfish/v1/Chassis':
          return this.send(response, 200, this.collection('/redfish/v1/Chassis', '#ChassisCollection.ChassisCollection', 'Chassis Collection', []))
        case '/redfish/v1/Managers':
          return this.send(response, 200, this.collection('/redfish/v1/Managers', '#ManagerCollection.ManagerCollection', 'Manager Collection', []))
        case '/redfish/v1/SessionService':
          return this.send(response, 200, {
            '@odata.id': '/redfish/v1/SessionService',
            '@odata.type': '#SessionService.v1_1_8.SessionService',
            Id: 'SessionService',
            Name: 'Session Service',
            ServiceEnabled: true,
            SessionTimeout: 600,
            Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' },
          })
        case '/redfish/v1/SessionService/Sessions':
          return this.send(response, 200, this.collection('/redfish/v1/SessionService/Sessions', '#SessionCollection.SessionCollection', 'Session Collection', [...this.sessions.values()].map((id) => `/redfish/v1/SessionService/Sessions/${id}`)))
        case SYSTEM:
          if (this.options.chassis) this.machine.power = (await this.options.chassis.powerOn()) ? 'On' : 'Off'
          response.setHeader('etag', this.etag)
          return this.send(response, 200, this.system())
      }
    }
    if (method === 'PATCH' && path === SYSTEM) return this.patchSystem(request, body, response)
    if (method === 'POST' && path === `${SYSTEM}/Actions/ComputerSystem.Reset`) return this.reset(body, response)
    if ([SYSTEM, '/redfish/v1/Systems', '/redfish/v1'].includes(path)) {
      response.setHeader('allow', path === SYSTEM ? 'GET, PATCH' : 'GET')
      return this.send(response, 405, this.error('Base.1.8.OperationNotAllowed', 'The HTTP method is not allowed on this resource.'))
    }
    return this.send(response, 404, this.error('Base.1.8.ResourceMissingAtURI', `The resource at the URI ${path} was not found.`))
  }

  private authenticated(request: import('node:http').IncomingMessage): boolean {
    const token = request.headers['x-auth-token']
    if (typeof token === 'string' && this.sessions.has(token)) return true
    const basic = /^Basic (.+)$/i.exec(request.headers.authorization ?? '')?.[1]
    if (!basic) return false
    const [user, ...rest] = Buffer.from(basic, 'base64').toString('utf8').split(':')
    return user === this.username && rest.join(':') === this.password
  }

  private login(body: Record<string, unknown>, response: import('node:http').ServerResponse): void {
    if (body.UserName !== this.username || body.Password !== this.password) {
      this.calls.push('login refused')
      return this.send(response, 401, this.error('Base.1.8.NoValidSession', 'Invalid username or password.'))
    }
    const id = randomUUID().slice(0, 8)
    const token = randomBytes(16).toString('hex')
    this.sessions.set(token, id)
    this.calls.push('login')
    response.setHeader('x-auth-token', token)
    response.setHeader('location', `/redfish/v1/SessionService/Sessions/${id}`)
    this.send(response, 201, { '@odata.id': `/redfish/v1/SessionService/Sessions/${id}`, '@odata.type': '#Session.v1_3_0.Session', Id: id, Name: 'User Session', UserName: this.username })
  }

  private logout(id: string, response: import('node:http').ServerResponse): void {
    const token = [...this.sessions.entries()].find(([, sessionId]) => sessionId === id)?.[0]
    if (!token) return this.send(response, 404, this.error('Base.1.8.ResourceMissingAtURI', `No session ${id}.`))
    this.sessions.delete(token)
    this.calls.push('logout')
    response.statusCode = 204
    response.end()
  }

  private async reset(body: Record<string, unknown>, response: import('node:http').ServerResponse): Promise<void> {
    const type = body.ResetType
    if (typeof type !== 'string' || !(RESET_TYPES as readonly string[]).includes(type)) {
      return this.send(response, 400, this.error('Base.1.8.ActionParameterValueNotInList', `The value ${JSON.stringify(type)} for the parameter ResetType is not in the list of acceptable values.`))
    }
    this.calls.push(`reset ${type}`)
    if (type === 'On') this.machine.power = 'On'
    else if (type === 'ForceOff' || type === 'GracefulShutdown') this.machine.power = 'Off'
    else if (type === 'PowerCycle' || type === 'ForceRestart' || type === 'GracefulRestart') this.machine.power = 'On'
    const chassis = this.options.chassis
    if (chassis && type !== 'Nmi') {
      // A restart of a machine that is on goes through off; one that is off is only powered on.
      if (type !== 'On' && (await chassis.powerOn())) await chassis.setPower(false)
      if (this.machine.power === 'On') await chassis.setPower(true)
    }
    this.etagCounter++
    await this.options.onReset?.(type)
    response.statusCode = 204
    response.end()
  }

  private async patchSystem(request: import('node:http').IncomingMessage, body: Record<string, unknown>, response: import('node:http').ServerResponse): Promise<void> {
    const ifMatch = request.headers['if-match']
    if (this.options.requireEtag && ifMatch !== this.etag) {
      return this.send(response, 412, this.error('Base.1.8.PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.'))
    }
    const boot = body.Boot as Record<string, unknown> | undefined
    const unknown = Object.keys(body).filter((key) => key !== 'Boot')
    if (!boot || unknown.length > 0) return this.send(response, 400, this.error('Base.1.8.PropertyNotWritable', `The property ${unknown[0] ?? 'Boot'} is not writable here.`))
    const target = boot.BootSourceOverrideTarget
    const enabled = boot.BootSourceOverrideEnabled
    if (target !== undefined && !(BOOT_TARGETS as readonly unknown[]).includes(target)) {
      return this.send(response, 400, this.error('Base.1.8.PropertyValueNotInList', `The value ${JSON.stringify(target)} for the property BootSourceOverrideTarget is not in the list of acceptable values.`))
    }
    if (enabled !== undefined && !['Disabled', 'Once', 'Continuous'].includes(enabled as string)) {
      return this.send(response, 400, this.error('Base.1.8.PropertyValueNotInList', `The value ${JSON.stringify(enabled)} for the property BootSourceOverrideEnabled is not in the list of acceptable values.`))
    }
    if (target !== undefined) this.machine.bootTarget = target as RedfishMachine['bootTarget']
    if (enabled !== undefined) this.machine.bootEnabled = enabled as RedfishMachine['bootEnabled']
    this.calls.push(`boot ${this.machine.bootTarget} ${this.machine.bootEnabled}`)
    if (this.options.chassis && target !== undefined) await this.options.chassis.setBootDevice(target === 'Pxe' ? 'pxe' : target === 'Hdd' ? 'disk' : 'none')
    this.etagCounter++
    response.statusCode = 204
    response.end()
  }

  private serviceRoot(): Record<string, unknown> {
    return {
      '@odata.id': '/redfish/v1/',
      '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
      Id: 'RootService',
      Name: 'Root Service',
      RedfishVersion: '1.6.0',
      UUID: '92384634-2938-2342-8820-489239905423',
      Systems: { '@odata.id': '/redfish/v1/Systems' },
      Chassis: { '@odata.id': '/redfish/v1/Chassis' },
      Managers: { '@odata.id': '/redfish/v1/Managers' },
      SessionService: { '@odata.id': '/redfish/v1/SessionService' },
      Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } },
    }
  }

  private system(): Record<string, unknown> {
    return {
      '@odata.id': SYSTEM,
      '@odata.type': '#ComputerSystem.v1_10_0.ComputerSystem',
      '@odata.etag': this.etag,
      Id: '437XR1138R2',
      Name: 'Slipway test machine',
      SystemType: 'Physical',
      Manufacturer: 'Slipway',
      Model: 'Redfish double',
      UUID: '38947555-7742-3448-3784-823347823834',
      PowerState: this.machine.power,
      Status: { State: 'Enabled', Health: 'OK' },
      Boot: {
        BootSourceOverrideEnabled: this.machine.bootEnabled,
        BootSourceOverrideTarget: this.machine.bootTarget,
        'BootSourceOverrideTarget@Redfish.AllowableValues': [...BOOT_TARGETS],
        BootSourceOverrideMode: 'UEFI',
      },
      Actions: {
        '#ComputerSystem.Reset': {
          target: this.options.resetTarget ?? `${SYSTEM}/Actions/ComputerSystem.Reset`,
          'ResetType@Redfish.AllowableValues': [...RESET_TYPES],
        },
      },
    }
  }

  private collection(id: string, type: string, name: string, members: string[]): Record<string, unknown> {
    return { '@odata.id': id, '@odata.type': type, Name: name, Members: members.map((member) => ({ '@odata.id': member })), 'Members@odata.count': members.length }
  }

  private error(messageId: string, message: string): Record<string, unknown> {
    return { error: { code: messageId, message, '@Message.ExtendedInfo': [{ '@odata.type': '#Message.v1_1_1.Message', MessageId: messageId, Message: message, Severity: 'Critical' }] } }
  }

  private send(response: import('node:http').ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body)
    response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'odata-version': '4.0', 'content-length': Buffer.byteLength(text) })
    response.end(text)
  }
}
