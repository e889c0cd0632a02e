import { forbidden } from '../errors.ts'
import type { MachineCredentials } from '../lifecycle/machine-credentials.ts'
import type { MachineState } from '../machines/machine-state.ts'
import { plainAddress } from '../../lib/ipv4.ts'

/**
 * Who may receive a config that carries secrets (its cluster's keys, the bootstrap token, the
 * machine's own credential). The boot network is not trusted: a machine's uuid and MAC can be read
 * off it, so naming them is not enough. Such a config goes to a machine only while it holds an
 * install slot (it is installing now), while an operator's re-provision window is open, or when it
 * presents its own machine credential (its rolling agent fetching its next config); and only to the
 * address it was discovered at, which no later report changes without an operator (machine-identity.ts).
 * A DHCP lease does not count: a DHCPREQUEST can name any MAC, so a lease proves nothing. Every
 * delivery is recorded.
 */
export type DeliveryGround = 'install slot' | 're-provision window' | 'machine credential'

/** Where a machine-facing request came from and what it presented. */
export interface DeliverySource {
  /** The peer address of the connection (proxies are not trusted to say otherwise). */
  address: string
  /** `Authorization: Bearer <machine credential>`, when sent. */
  credential?: string | undefined
}

/** The machine as the gate reads it. */
export interface DeliveryTarget {
  uuid: string
  bootMac: string
  state: MachineState
  /** The boot interface's address from discovery. */
  bootAddress: string | null
  reprovisionUntil: string | null
}

export interface SecretDelivery {
  uuid: string
  /** ipxe, ignition or generic. */
  kind: string
  ground: DeliveryGround
  address: string
  at: string
}

export interface SecretDeliveryPorts {
  credentials: MachineCredentials
  /** Writes the delivery to the audit log. */
  record(delivery: SecretDelivery): Promise<void>
  clock?: () => Date
}

export interface SecretDeliveryPolicy {
  /** Off only where machines reach the engine through NAT (their source address is not their own). */
  requireMachineAddress: boolean
}

export class SecretDeliveryGate {
  private readonly clock: () => Date

  constructor(
    private readonly ports: SecretDeliveryPorts,
    private readonly policy: SecretDeliveryPolicy,
  ) {
    this.clock = ports.clock ?? (() => new Date())
  }

  /** Resolves with the ground of the delivery (and records it), or throws 403 with a code saying what is missing. */
  async authorize(machine: DeliveryTarget, kind: string, source: DeliverySource): Promise<DeliveryGround> {
    const address = plainAddress(source.address)
    if (this.policy.requireMachineAddress && machine.bootAddress !== address) {
      throw forbidden('MACHINE_ADDRESS_MISMATCH', `this config carries secrets of machine ${machine.uuid} and is served only to the address it was discovered at${machine.bootAddress ? '' : ' (it reported none)'}, not to ${address}`, {
        uuid: machine.uuid,
        address,
      })
    }
    const ground = await this.groundOf(machine, source)
    const now = this.clock()
    await this.ports.record({ uuid: machine.uuid, kind, ground, address, at: now.toISOString() })
    return ground
  }

  private async groundOf(machine: DeliveryTarget, source: DeliverySource): Promise<DeliveryGround> {
    if (source.credential !== undefined) {
      if ((await this.ports.credentials.verify(source.credential)) === machine.uuid) return 'machine credential'
      throw forbidden('MACHINE_CREDENTIAL_INVALID', `the machine credential presented is not machine ${machine.uuid}'s current one (revoked, rotated past its grace, or another machine's)`, { uuid: machine.uuid })
    }
    if (machine.state === 'installing') return 'install slot'
    if (machine.reprovisionUntil !== null && this.clock().getTime() < Date.parse(machine.reprovisionUntil)) return 're-provision window'
    throw forbidden(
      'SECRET_CONFIG_NOT_AUTHORIZED',
      `this config carries secrets of machine ${machine.uuid}, which is ${machine.state}: it is served while the machine holds an install slot (POST /install-authorization), while an operator's re-provision window is open (POST /api/v1/machines/${machine.uuid}/reprovision), or with the machine's own credential (Authorization: Bearer)`,
      { uuid: machine.uuid, state: machine.state },
    )
  }
}
