/**
 * An in-memory DhcpLeaseStore with the same rules as the kysely one (see DhcpLeaseStore.claim), so
 * the lease policy and the DHCP responders are tested without a database.
 */
import { isActive } from '../../src/core/dhcp/lease-policy.ts'
import type { DhcpLease, DhcpLeaseStore, DhcpReservation } from '../../src/core/dhcp/lease-store.ts'

export function memoryLeaseStore(reservations: DhcpReservation[] = []): DhcpLeaseStore & { leases: Map<string, DhcpLease> } {
  const leases = new Map<string, DhcpLease>()
  const activeFirst = (a: DhcpLease, b: DhcpLease) => Number(b.state === 'bound' || b.state === 'offered') - Number(a.state === 'bound' || a.state === 'offered')
  return {
    leases,
    leaseByMac: async (mac) => [...leases.values()].filter((lease) => lease.mac === mac && lease.state !== 'declined').sort(activeFirst)[0],
    leaseByIp: async (ip) => leases.get(ip),
    reservationByMac: async (mac) => reservations.find((reservation) => reservation.mac === mac),
    reservationByIp: async (ip) => reservations.find((reservation) => reservation.ip === ip),
    claim: async (lease, now) => {
      const current = leases.get(lease.ip)
      if (current && current.expiresAt > now && ((current.mac !== lease.mac && current.state !== 'released') || current.state === 'declined')) return false
      for (const other of leases.values()) if (other.mac === lease.mac && other.ip !== lease.ip && isActive(other, now)) other.state = 'released'
      // A fresh offer does not shorten an unexpired bound lease of the same client.
      if (lease.state === 'offered' && current?.mac === lease.mac && current.state === 'bound' && current.expiresAt > now) return true
      leases.set(lease.ip, { ...lease })
      return true
    },
    transition: async (ip, mac, state, expiresAt, _now, onlyFrom) => {
      const lease = leases.get(ip)
      if (!lease || lease.mac !== mac || (onlyFrom && !onlyFrom.includes(lease.state))) return false
      Object.assign(lease, { state, expiresAt })
      return true
    },
  }
}
