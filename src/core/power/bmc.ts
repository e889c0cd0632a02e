import { isIpv4 } from '../../lib/ipv4.ts'
import { invalid } from '../errors.ts'

/**
 * A machine's baseboard management controller as the engine keeps it: how to reach it (IPMI over
 * RMCP+, or Redfish over HTTPS), who to log in as, and the options each protocol needs. The password
 * is sealed by storage and reaches only the BMC client; nothing here is ever answered with it.
 */

export const BMC_PROTOCOLS = ['ipmi', 'redfish'] as const
export type BmcProtocol = (typeof BMC_PROTOCOLS)[number]

/** `soft-off` asks the OS to shut down (ACPI); `off` cuts power. `cycle` is off then on; `reset` a warm reset. */
export const POWER_ACTIONS = ['on', 'off', 'soft-off', 'cycle', 'reset'] as const
export type PowerAction = (typeof POWER_ACTIONS)[number]

export const POWER_STATES = ['on', 'off', 'unknown'] as const
export type PowerState = (typeof POWER_STATES)[number]

export const BOOT_DEVICES = ['network', 'disk'] as const
export type BootDevice = (typeof BOOT_DEVICES)[number]

/** IPMI privilege levels a power operator needs at least (ipmitool's -L). */
export const IPMI_PRIVILEGES = ['OPERATOR', 'ADMINISTRATOR'] as const
export type IpmiPrivilege = (typeof IPMI_PRIVILEGES)[number]

export interface IpmiOptions {
  /**
   * RMCP+ cipher suite (ipmitool's -C). 3 (HMAC-SHA1, AES-CBC-128) is what every IPMI 2.0 BMC has;
   * 17 (HMAC-SHA256) where the BMC offers it. Always sent: without it ipmitool first asks the BMC for
   * its suites, which older BMCs and ipmi_sim do not answer, and waits 10 s.
   */
  cipherSuite: number
  privilege: IpmiPrivilege
}

export interface RedfishOptions {
  /** The ComputerSystem to drive (`/redfish/v1/Systems/<id>`); null: the only member of /redfish/v1/Systems. */
  systemPath: string | null
  /** Verify the BMC's certificate (against `caBundle` when given, else the system's CAs). */
  verifyTls: boolean
  /** PEM certificates the BMC's certificate chains to (BMCs mostly carry self-signed ones). */
  caBundle: string | null
}

export interface BmcSettings {
  protocol: BmcProtocol
  host: string
  port: number
  username: string
  ipmi: IpmiOptions | null
  redfish: RedfishOptions | null
}

/** What a BMC client is given: the settings and the opened password. */
export interface BmcTarget extends BmcSettings {
  password: string
}

export interface BmcFailure {
  code: string
  message: string
  at: string
}

/** What the API shows of a machine's BMC: never the password, only that one is set. */
export interface BmcView extends BmcSettings {
  machineUuid: string
  power: PowerState
  powerCheckedAt: string | null
  lastError: BmcFailure | null
  updatedAt: string
}

export const DEFAULT_PORTS: Record<BmcProtocol, number> = { ipmi: 623, redfish: 443 }
export const DEFAULT_IPMI_OPTIONS: IpmiOptions = { cipherSuite: 3, privilege: 'ADMINISTRATOR' }
export const DEFAULT_REDFISH_OPTIONS: RedfishOptions = { systemPath: null, verifyTls: true, caBundle: null }

/** IPMI 2.0 caps user names at 16 bytes and passwords at 20; Redfish has no limit worth less than this. */
const LIMITS: Record<BmcProtocol, { username: number; password: number }> = { ipmi: { username: 16, password: 20 }, redfish: { username: 256, password: 256 } }
const MAX_CA_BUNDLE_BYTES = 64 * 1024
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i
const SYSTEM_PATH = /^\/redfish\/v1\/Systems\/[A-Za-z0-9._~@!$&'()*+,;=:%-]+$/

export interface BmcInput {
  protocol?: unknown
  host?: unknown
  port?: unknown
  username?: unknown
  password?: unknown
  ipmi?: { cipherSuite?: unknown; privilege?: unknown } | null
  redfish?: { systemPath?: unknown; verifyTls?: unknown; caBundle?: unknown } | null
}

const bad = (field: string, message: string) => invalid('BMC_INVALID', `${field}: ${message}`, { field })

/**
 * Checks what an operator sends for a machine's BMC and fills the defaults. `password` may be left
 * out when a password is already stored (`passwordKept`): changing an address does not mean typing
 * the password again. `host` may be left out when the machine's discovery agent reported its BMC's
 * address (`discoveredHost`): enrolling a discovered machine's BMC is then only its credentials.
 */
export function parseBmcSettings(input: BmcInput, options: { passwordKept: boolean; discoveredHost?: string }): { settings: BmcSettings; password: string | undefined } {
  const protocol = input.protocol
  if (typeof protocol !== 'string' || !(BMC_PROTOCOLS as readonly string[]).includes(protocol)) throw bad('protocol', `is one of ${BMC_PROTOCOLS.join(', ')}`)
  const kind = protocol as BmcProtocol
  const host = input.host ?? options.discoveredHost
  if (host === undefined) {
    throw invalid(
      'BMC_HOST_NOT_DISCOVERED',
      "host: is needed: no discovery report of this machine gave its BMC's address (it has not booted into discovery yet, its live image has no ipmitool, or its BMC has no address); give the BMC's address or DNS name",
      { field: 'host' },
    )
  }
  if (typeof host !== 'string' || !(isIpv4(host) || isIpv6(host) || HOSTNAME.test(host))) throw bad('host', 'is an IPv4 or IPv6 address or a DNS name (no scheme, no port)')
  const port = input.port ?? DEFAULT_PORTS[kind]
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) throw bad('port', 'is a whole number from 1 to 65535')
  const limits = LIMITS[kind]
  const username = input.username
  if (typeof username !== 'string' || username.length === 0 || Buffer.byteLength(username) > limits.username || /[\u0000-\u001f]/.test(username)) {
    throw bad('username', `is 1 to ${limits.username} bytes without control characters`)
  }
  const password = input.password
  if (password === undefined && !options.passwordKept) throw bad('password', 'is required the first time a BMC is set')
  if (password !== undefined && (typeof password !== 'string' || password.length === 0 || Buffer.byteLength(password) > limits.password || password.includes('\0'))) {
    throw bad('password', `is 1 to ${limits.password} bytes`)
  }
  if (kind === 'ipmi' && input.redfish) throw bad('redfish', 'options are for protocol redfish')
  if (kind === 'redfish' && input.ipmi) throw bad('ipmi', 'options are for protocol ipmi')
  const settings: BmcSettings = { protocol: kind, host: host.toLowerCase(), port, username, ipmi: null, redfish: null }
  if (kind === 'ipmi') settings.ipmi = parseIpmiOptions(input.ipmi ?? {})
  else settings.redfish = parseRedfishOptions(input.redfish ?? {})
  return { settings, password: password as string | undefined }
}

function parseIpmiOptions(input: { cipherSuite?: unknown; privilege?: unknown }): IpmiOptions {
  const cipherSuite = input.cipherSuite ?? DEFAULT_IPMI_OPTIONS.cipherSuite
  // Suites 0-2 authenticate nothing or send the password in a weak form: never used.
  if (typeof cipherSuite !== 'number' || !Number.isInteger(cipherSuite) || cipherSuite < 3 || cipherSuite > 17) throw bad('ipmi.cipherSuite', 'is a whole number from 3 to 17 (0-2 do not protect the password)')
  const privilege = input.privilege ?? DEFAULT_IPMI_OPTIONS.privilege
  if (typeof privilege !== 'string' || !(IPMI_PRIVILEGES as readonly string[]).includes(privilege)) throw bad('ipmi.privilege', `is one of ${IPMI_PRIVILEGES.join(', ')}`)
  return { cipherSuite, privilege: privilege as IpmiPrivilege }
}

function parseRedfishOptions(input: { systemPath?: unknown; verifyTls?: unknown; caBundle?: unknown }): RedfishOptions {
  const systemPath = input.systemPath ?? null
  if (systemPath !== null && (typeof systemPath !== 'string' || !SYSTEM_PATH.test(systemPath))) throw bad('redfish.systemPath', 'is /redfish/v1/Systems/<id>')
  const verifyTls = input.verifyTls ?? DEFAULT_REDFISH_OPTIONS.verifyTls
  if (typeof verifyTls !== 'boolean') throw bad('redfish.verifyTls', 'is true or false')
  const caBundle = input.caBundle ?? null
  if (caBundle !== null && (typeof caBundle !== 'string' || Buffer.byteLength(caBundle) > MAX_CA_BUNDLE_BYTES || !caBundle.includes('-----BEGIN CERTIFICATE-----'))) {
    throw bad('redfish.caBundle', `is PEM certificates, at most ${MAX_CA_BUNDLE_BYTES / 1024} KiB`)
  }
  return { systemPath, verifyTls, caBundle }
}

/** `host:port`, with brackets around an IPv6 address: how a BMC is named in messages and keyed for its one-at-a-time queue. */
export function bmcAddress(settings: Pick<BmcSettings, 'host' | 'port'>): string {
  return isIpv6(settings.host) ? `[${settings.host}]:${settings.port}` : `${settings.host}:${settings.port}`
}

/** An IPv6 literal (no brackets, no zone), as the WHATWG URL parser reads one. */
export function isIpv6(text: string): boolean {
  if (!text.includes(':') || /[[\]%/]/.test(text)) return false
  try {
    return new URL(`http://[${text}]/`).hostname.length > 2
  } catch {
    return false
  }
}
