import type { Kysely } from 'kysely'
import type { DhcpLease, DhcpLeaseStore, LeaseState } from '../../core/dhcp/lease-store.ts'
import type { Database, DhcpLeaseRow } from '../database.ts'
import { findReservationByIp, findReservationByMac } from './dhcp-reservations.ts'

type Db = Kysely<Database>

const ACTIVE: LeaseState[] = ['offered', 'bound']

const toLease = (row: DhcpLeaseRow): DhcpLease => ({
  ip: row.ip,
  mac: row.mac,
  clientId: row.client_id,
  hostname: row.hostname,
  state: row.state,
  expiresAt: new Date(row.expires_at),
})

export async function findLeaseByIp(db: Db, ip: string): Promise<DhcpLease | undefined> {
  const row = await db.selectFrom('dhcp_leases').selectAll().where('ip', '=', ip).executeTakeFirst()
  return row && toLease(row)
}

/** The MAC's active lease if it has one, else its most recently touched released one. */
export async function findLeaseByMac(db: Db, mac: string): Promise<DhcpLease | undefined> {
  const row = await db
    .selectFrom('dhcp_leases')
    .selectAll()
    .where('mac', '=', mac)
    .where('state', '!=', 'declined')
    .orderBy((eb) => eb.case().when('state', 'in', ACTIVE).then(0).else(1).end())
    .orderBy('updated_at', 'desc')
    .executeTakeFirst()
  return row && toLease(row)
}

export async function listLeases(db: Db): Promise<DhcpLease[]> {
  return (await db.selectFrom('dhcp_leases').selectAll().orderBy('ip').execute()).map(toLease)
}

/** Claims `lease.ip` for `lease.mac` in one transaction (see DhcpLeaseStore.claim). */
export async function claimLease(db: Db, lease: DhcpLease, now: Date): Promise<boolean> {
  const nowText = now.toISOString()
  return db.transaction().execute(async (trx) => {
    const current = await trx.selectFrom('dhcp_leases').selectAll().where('ip', '=', lease.ip).executeTakeFirst()
    const unexpired = current !== undefined && current.expires_at > nowText
    if (current && current.mac !== lease.mac && unexpired && current.state !== 'released') return false
    if (current && current.state === 'declined' && unexpired) return false
    // A fresh offer to a client that already holds a bound lease on this address must not shorten it.
    const keepBound = current?.mac === lease.mac && current.state === 'bound' && unexpired && lease.state === 'offered'
    await trx
      .updateTable('dhcp_leases')
      .set({ state: 'released', updated_at: nowText })
      .where('mac', '=', lease.mac)
      .where('ip', '!=', lease.ip)
      .where('state', 'in', ACTIVE)
      .execute()
    const row = {
      ip: lease.ip,
      mac: lease.mac,
      client_id: lease.clientId,
      hostname: lease.hostname,
      state: keepBound ? 'bound' : lease.state,
      expires_at: keepBound ? current.expires_at : lease.expiresAt.toISOString(),
      updated_at: nowText,
    } as const
    await trx
      .insertInto('dhcp_leases')
      .values(row)
      .onConflict((conflict) => conflict.column('ip').doUpdateSet({ ...row }))
      .execute()
    return true
  })
}

export async function transitionLease(db: Db, ip: string, mac: string, state: LeaseState, expiresAt: Date, now: Date, onlyFrom?: readonly LeaseState[]): Promise<boolean> {
  let update = db
    .updateTable('dhcp_leases')
    .set({ state, expires_at: expiresAt.toISOString(), updated_at: now.toISOString() })
    .where('ip', '=', ip)
    .where('mac', '=', mac)
  if (onlyFrom) update = update.where('state', 'in', [...onlyFrom])
  const result = await update.executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/** The lease policy's store port, backed by SQLite. */
export function dhcpLeaseStore(db: Db): DhcpLeaseStore {
  return {
    leaseByMac: (mac) => findLeaseByMac(db, mac),
    leaseByIp: (ip) => findLeaseByIp(db, ip),
    reservationByMac: (mac) => findReservationByMac(db, mac),
    reservationByIp: (ip) => findReservationByIp(db, ip),
    claim: (lease, now) => claimLease(db, lease, now),
    transition: (ip, mac, state, expiresAt, now, onlyFrom) => transitionLease(db, ip, mac, state, expiresAt, now, onlyFrom),
  }
}
