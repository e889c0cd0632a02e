import type { BmcTarget, BootDevice, PowerAction } from './bmc.ts'

/**
 * What the engine asks of a BMC, whatever its protocol. Each call is one attempt: the power service
 * owns retries, timeouts (through `signal`), the one-at-a-time queue per BMC and the audit.
 */
export interface BmcClient {
  /** Whether the machine is powered (chassis power / ComputerSystem.PowerState). */
  powerState(target: BmcTarget, signal: AbortSignal): Promise<'on' | 'off'>
  power(target: BmcTarget, action: PowerAction, signal: AbortSignal): Promise<void>
  /** The device the machine boots from next (`persistent`: every boot until changed). */
  setBootDevice(target: BmcTarget, device: BootDevice, persistent: boolean, signal: AbortSignal): Promise<void>
}

/**
 * Why a BMC call failed, in the terms an operator acts on. Transient failures (unreachable, timed out)
 * are tried again with backoff; the others would fail the same way again.
 */
export type BmcFailureCode =
  | 'BMC_AUTH_FAILED' // wrong user name or password: fix the credentials
  | 'BMC_UNREACHABLE' // nothing answered at the address: check the address, the network, the BMC
  | 'BMC_TIMEOUT' // no answer in time
  | 'BMC_REFUSED' // the BMC answered and refused (privilege, unsupported operation)
  | 'BMC_PROTOCOL' // the BMC answered something this engine does not understand
  | 'BMC_CLIENT_MISSING' // the engine's host lacks the client program (ipmitool)
  | 'BMC_TLS_UNTRUSTED' // the BMC's certificate is not trusted: give its CA (redfish.caBundle) or turn verification off knowingly

const TRANSIENT: ReadonlySet<BmcFailureCode> = new Set(['BMC_UNREACHABLE', 'BMC_TIMEOUT'])

export class BmcError extends Error {
  constructor(
    readonly code: BmcFailureCode,
    message: string,
  ) {
    super(message)
    this.name = 'BmcError'
  }

  get transient(): boolean {
    return TRANSIENT.has(this.code)
  }
}
