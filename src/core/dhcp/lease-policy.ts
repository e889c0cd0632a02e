/**
 * Which address a client gets, and whether it may keep the one it asks for. The order of preference:
 * the MAC's existing lease (stable addresses across reboots), its reservation (which wins over an
 * existing lease that differs: the operator's latest word), the address it asks for if free, then the
 * first free address of the pool. Every claim goes through the store's atomic `claim`, so two clients
 * racing for one address cannot both get it.
 */
import { formatIpv4, parseIpv4, subnetContains } from '../../lib/ipv4.ts'
import type { DhcpPool } from './dhcp-settings.ts'
import type { DhcpLease, DhcpLeaseStore, LeaseState } from './lease-store.ts'

export interface LeaseRequest {
  mac: string
  /** Option 50 (or ciaddr when renewing). */
  requestedIp?: string
  clientId?: string | null
  hostname?: string | null
}

export type AddressSource = 'existing-lease' | 'reservation' | 'requested' | 'pool'

export type AllocationResult =
  | { ok: true; ip: string; source: AddressSource; hostname: string | null }
  | { ok: false; code: 'POOL_EXHAUSTED'; message: string }

export type ConfirmationResult = { ok: true; ip: string; hostname: string | null } | { ok: false; code: string; message: string }

/** How long an offer holds its address for the client that was offered it. */
export const OFFER_HOLD_SECONDS = 60
/** How long a declined address stays out of the pool (RFC 2131 leaves it to the server). */
export const DECLINE_QUARANTINE_SECONDS = 600

const addSeconds = (date: Date, seconds: number) => new Date(date.getTime() + seconds * 1000)

export const isActive = (lease: DhcpLease, now: Date) => (lease.state === 'offered' || lease.state === 'bound') && lease.expiresAt > now

const inPool = (pool: DhcpPool, ip: string) => {
  const value = parseIpv4(ip)
  return value !== undefined && value >= pool.start && value <= pool.end
}
const inSubnet = (pool: DhcpPool, ip: string) => {
  const value = parseIpv4(ip)
  return value !== undefined && subnetContains(pool.subnet, value) && value !== pool.subnet.network && value !== pool.subnet.broadcast
}

/**
 * Where the next pool search starts (next fit). The server keeps one for its pool, so that handing out
 * addresses costs a few indexed look-ups each instead of reading every lease: with thousands of leases
 * the next address after the last one handed out is almost always free.
 */
export interface PoolCursor {
  next: number
}

/** Every pool address once, from the cursor to the end, then from the start: lazy, so a /16 costs nothing. */
export function* poolAddressesFrom(pool: DhcpPool, cursor: PoolCursor): Generator<number> {
  const size = pool.end - pool.start + 1
  const first = cursor.next >= pool.start && cursor.next <= pool.end ? cursor.next - pool.start : 0
  for (let offset = 0; offset < size; offset++) yield pool.start + ((first + offset) % size)
}

/** Whether `mac` may take `ip` now: not held by another client, not declined, not reserved for another MAC. */
export async function isAddressAvailable(store: DhcpLeaseStore, ip: string, mac: string, now: Date): Promise<boolean> {
  const [lease, reservation] = await Promise.all([store.leaseByIp(ip), store.reservationByIp(ip)])
  if (reservation && reservation.mac !== mac) return false
  if (!lease || lease.expiresAt <= now) return true
  if (lease.state === 'declined') return false
  return lease.mac === mac || lease.state === 'released'
}

/** Picks and holds an address for `request.mac` in `state` (offered for a DISCOVER). Never loops beyond the pool. */
export async function allocateAddress(
  store: DhcpLeaseStore,
  pool: DhcpPool,
  request: LeaseRequest,
  state: Extract<LeaseState, 'offered' | 'bound'>,
  holdSeconds: number,
  now: Date,
  cursor: PoolCursor = { next: pool.start },
): Promise<AllocationResult> {
  const [existing, reservation] = await Promise.all([store.leaseByMac(request.mac), store.reservationByMac(request.mac)])
  const hostname = request.hostname ?? reservation?.hostname ?? null
  const tryClaim = async (ip: string) =>
    (await isAddressAvailable(store, ip, request.mac, now)) &&
    (await store.claim({ ip, mac: request.mac, clientId: request.clientId ?? null, hostname, state, expiresAt: addSeconds(now, holdSeconds) }, now))

  const candidates: Array<[string | undefined, AddressSource, boolean]> = [
    [existing?.ip, 'existing-lease', !!existing && inSubnet(pool, existing.ip) && (reservation ? reservation.ip === existing.ip : inPool(pool, existing.ip))],
    [reservation?.ip, 'reservation', !!reservation && inSubnet(pool, reservation.ip)],
    [request.requestedIp, 'requested', !reservation && !!request.requestedIp && inPool(pool, request.requestedIp)],
  ]
  for (const [ip, source, eligible] of candidates) {
    if (ip && eligible && (await tryClaim(ip))) return { ok: true, ip, source, hostname }
  }
  if (!reservation) {
    for (const value of poolAddressesFrom(pool, cursor)) {
      const ip = formatIpv4(value)
      // Moved before the claim, not after: requests in flight together (a rack booting, or another
      // replica on the same database taking addresses) each try the next address instead of one.
      cursor.next = value + 1
      if (await tryClaim(ip)) return { ok: true, ip, source: 'pool', hostname }
    }
  }
  return {
    ok: false,
    code: 'POOL_EXHAUSTED',
    message: reservation
      ? `the reserved address ${reservation.ip} of ${request.mac} is in use by another client or declined`
      : `no free address in ${formatIpv4(pool.start)}-${formatIpv4(pool.end)} for ${request.mac}`,
  }
}

/**
 * Whether `mac` may have `ip` (a REQUEST in any state: SELECTING, INIT-REBOOT, RENEWING, REBINDING);
 * binds it for `leaseSeconds` when it may. A MAC with a reservation may only have that address.
 */
export async function confirmAddress(store: DhcpLeaseStore, pool: DhcpPool, request: LeaseRequest & { requestedIp: string }, leaseSeconds: number, now: Date): Promise<ConfirmationResult> {
  const ip = request.requestedIp
  if (!inSubnet(pool, ip)) return { ok: false, code: 'WRONG_NETWORK', message: `${ip} is not on this network` }
  const [reservation, reservedFor] = await Promise.all([store.reservationByMac(request.mac), store.reservationByIp(ip)])
  if (reservation && reservation.ip !== ip) return { ok: false, code: 'NOT_RESERVED_ADDRESS', message: `${request.mac} is reserved ${reservation.ip}, not ${ip}` }
  if (reservedFor && reservedFor.mac !== request.mac) return { ok: false, code: 'RESERVED_FOR_OTHER', message: `${ip} is reserved for ${reservedFor.mac}` }
  if (!reservation && !inPool(pool, ip)) return { ok: false, code: 'OUTSIDE_POOL', message: `${ip} is outside the pool` }
  const hostname = request.hostname ?? reservation?.hostname ?? null
  const claimed = await store.claim(
    { ip, mac: request.mac, clientId: request.clientId ?? null, hostname, state: 'bound', expiresAt: addSeconds(now, leaseSeconds) },
    now,
  )
  return claimed ? { ok: true, ip, hostname } : { ok: false, code: 'ADDRESS_TAKEN', message: `${ip} is leased to another client or declined` }
}

/** DHCPRELEASE: the address becomes free but stays remembered for this MAC. */
export const releaseAddress = (store: DhcpLeaseStore, mac: string, ip: string, now: Date) =>
  store.transition(ip, mac, 'released', now, now, ['offered', 'bound'])

/** DHCPDECLINE: the client saw the address in use; keep everyone off it for a while. */
export const declineAddress = (store: DhcpLeaseStore, mac: string, ip: string, now: Date) =>
  store.transition(ip, mac, 'declined', addSeconds(now, DECLINE_QUARANTINE_SECONDS), now, ['offered', 'bound'])

/** The client chose another server's offer: free the address we held for it (a bound lease is left alone). */
export async function forgetOffer(store: DhcpLeaseStore, mac: string, now: Date): Promise<boolean> {
  const lease = await store.leaseByMac(mac)
  if (!lease || lease.state !== 'offered') return false
  return store.transition(lease.ip, mac, 'released', now, now, ['offered'])
}
