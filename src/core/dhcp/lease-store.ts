/**
 * The port the lease policy needs from storage (implemented by src/storage/repositories/dhcp-leases.ts,
 * faked in tests). One row per address: the address is the key, so it can never belong to two MACs.
 */

/**
 * offered: held for a client between OFFER and REQUEST; bound: leased; released: free again but
 * remembered, so the same MAC gets the same address back; declined: a client found it in use (ARP),
 * unusable until it expires.
 */
export type LeaseState = 'offered' | 'bound' | 'released' | 'declined'

export interface DhcpLease {
  ip: string
  /** Lowercase colon form. */
  mac: string
  /** Option 61 as hex (it is binary: type byte + id), or null. */
  clientId: string | null
  hostname: string | null
  state: LeaseState
  expiresAt: Date
}

export interface DhcpReservation {
  mac: string
  ip: string
  hostname: string | null
}

export interface DhcpLeaseStore {
  /** The latest offered, bound or released lease of this MAC (never a declined one). */
  leaseByMac(mac: string): Promise<DhcpLease | undefined>
  leaseByIp(ip: string): Promise<DhcpLease | undefined>
  reservationByMac(mac: string): Promise<DhcpReservation | undefined>
  reservationByIp(ip: string): Promise<DhcpReservation | undefined>
  /**
   * Atomically gives `lease.ip` to `lease.mac` unless another MAC holds it unexpired or it is declined
   * and unexpired; any other active lease of the MAC is released. False when the address was not free.
   * An unexpired bound lease is not downgraded by a new offer.
   */
  claim(lease: DhcpLease, now: Date): Promise<boolean>
  /** Moves the lease of `ip` to `state` if it belongs to `mac` (and, when given, is in one of `onlyFrom`). */
  transition(ip: string, mac: string, state: LeaseState, expiresAt: Date, now: Date, onlyFrom?: readonly LeaseState[]): Promise<boolean>
}
