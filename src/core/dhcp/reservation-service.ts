import { normalizeMac } from '../../lib/mac.ts'
import { isIpv4, parseCidr, parseIpv4, subnetContains } from '../../lib/ipv4.ts'
import { conflict, invalid, notFound } from '../errors.ts'
import type { DhcpLease, DhcpReservation } from './lease-store.ts'
import type { DhcpSettings } from './dhcp-settings.ts'

/** The store port for managing reservations and reading leases through the API. */
export interface ReservationRepository {
  listReservations(): Promise<DhcpReservation[]>
  reservationByIp(ip: string): Promise<DhcpReservation | undefined>
  saveReservation(reservation: DhcpReservation): Promise<void>
  deleteReservation(mac: string): Promise<boolean>
  listLeases(): Promise<DhcpLease[]>
}

/**
 * Static reservations (MAC -> IP), written by operators now and by the scheduler later. A reservation
 * is checked against the boot network so that a typo is a 400, not a machine that never gets its address.
 */
export class ReservationService {
  constructor(
    private readonly repository: ReservationRepository,
    private readonly settings: DhcpSettings,
  ) {}

  listReservations() {
    return this.repository.listReservations()
  }

  listLeases() {
    return this.repository.listLeases()
  }

  async reserve(macText: string, input: { ip: string; hostname?: string | null }): Promise<DhcpReservation> {
    const mac = normalizeMac(macText)
    if (!mac) throw invalid('INVALID_MAC', `"${macText}" is not a MAC address; use 52:54:00:aa:bb:cc or 52-54-00-aa-bb-cc`)
    if (!isIpv4(input.ip)) throw invalid('INVALID_IP', `"${input.ip}" is not an IPv4 address`)
    const subnet = this.settings.subnet ? parseCidr(this.settings.subnet) : undefined
    if (subnet && !subnetContains(subnet, parseIpv4(input.ip)!)) {
      throw invalid('IP_OUTSIDE_SUBNET', `${input.ip} is outside the boot network ${this.settings.subnet} (dhcp.subnet)`)
    }
    if (input.ip === this.settings.serverAddress) throw invalid('IP_IS_SERVER', `${input.ip} is the engine's own address (dhcp.serverAddress)`)
    const holder = await this.repository.reservationByIp(input.ip)
    if (holder && holder.mac !== mac) {
      throw conflict('IP_RESERVED', `${input.ip} is already reserved for ${holder.mac}; delete that reservation first`, { mac: holder.mac })
    }
    const reservation: DhcpReservation = { mac, ip: input.ip, hostname: input.hostname ?? null }
    await this.repository.saveReservation(reservation)
    return reservation
  }

  async unreserve(macText: string): Promise<void> {
    const mac = normalizeMac(macText)
    if (!mac) throw invalid('INVALID_MAC', `"${macText}" is not a MAC address`)
    if (!(await this.repository.deleteReservation(mac))) throw notFound('RESERVATION_NOT_FOUND', `no reservation for ${mac}`)
  }
}
