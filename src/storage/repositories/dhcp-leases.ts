import type { ExpressionBuilder, OnConflictDatabase, OnConflictTables } from 'kysely'
import type { DhcpLease, DhcpLeaseStore, LeaseState } from '../../core/dhcp/lease-store.ts'
import type { Database, Db, DhcpLeaseRow } from '../database.ts'
import { findReservationByIp, findReservationByMac } from './dhcp-reservations.ts'

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

/** Rolls the claim's transaction back when the address turned out not to be free. */
class AddressNotFree extends Error {}

/** PostgreSQL: the transaction collided with another replica's (a deadlock, or the one-active-lease-per-MAC index); try again. */
const RETRYABLE = new Set(['40001', '40P01', '23505'])
const CLAIM_ATTEMPTS = 5

/**
 * Claims `lease.ip` for `lease.mac` in one transaction (see DhcpLeaseStore.claim). The decision is
 * made by the upsert itself: its update applies only while the row is free for this MAC, and
 * PostgreSQL evaluates that on the latest committed row, after waiting for any transaction that is
 * changing it. So two engine replicas offering at once can never both hand one address out: the
 * second finds the first's lease and gets false (the policy tries the next address). The read before
 * it only spares an obviously taken address its writes.
 */
export async function claimLease(db: Db, lease: DhcpLease, now: Date): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await claimLeaseOnce(db, lease, now)
    } catch (error) {
      const code = (error as { code?: string } | undefined)?.code ?? ''
      // Two replicas answering one MAC at once: the loser's other-address lease collides with the
      // winner's on the one-active-lease-per-MAC index; again, it now sees (and releases) that lease.
      if (!RETRYABLE.has(code) || attempt >= CLAIM_ATTEMPTS || db.isTransaction) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt))
    }
  }
}

async function claimLeaseOnce(db: Db, lease: DhcpLease, now: Date): Promise<boolean> {
  const nowText = now.toISOString()
  try {
    return await db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('dhcp_leases').selectAll().where('ip', '=', lease.ip).executeTakeFirst()
      const unexpired = current !== undefined && current.expires_at > nowText
      if (current && current.mac !== lease.mac && unexpired && current.state !== 'released') return false
      if (current && current.state === 'declined' && unexpired) return false
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
        state: lease.state,
        expires_at: lease.expiresAt.toISOString(),
        updated_at: nowText,
      } as const
      // A fresh offer to a client that already holds a bound lease on this address must not shorten it.
      const keepBound = (eb: ExpressionBuilder<OnConflictDatabase<Database, 'dhcp_leases'>, OnConflictTables<'dhcp_leases'>>) =>
        eb.and([eb('dhcp_leases.mac', '=', lease.mac), eb('dhcp_leases.state', '=', 'bound'), eb('dhcp_leases.expires_at', '>', nowText)])
      const claimed = await trx
        .insertInto('dhcp_leases')
        .values(row)
        .onConflict((conflict) =>
          conflict
            .column('ip')
            .doUpdateSet((eb) => ({
              ...row,
              ...(lease.state === 'offered'
                ? {
                    state: eb.case().when(keepBound(eb)).then(eb.ref('dhcp_leases.state')).else(eb.val<LeaseState>(lease.state)).end(),
                    expires_at: eb.case().when(keepBound(eb)).then(eb.ref('dhcp_leases.expires_at')).else(eb.val(row.expires_at)).end(),
                  }
                : {}),
            }))
            // Free for this MAC: expired, or neither declined nor another MAC's active lease.
            .where((eb) =>
              eb.or([
                eb('dhcp_leases.expires_at', '<=', nowText),
                eb.and([eb('dhcp_leases.state', '!=', 'declined'), eb.or([eb('dhcp_leases.mac', '=', lease.mac), eb('dhcp_leases.state', '=', 'released')])]),
              ]),
            ),
        )
        .returning('ip')
        .executeTakeFirst()
      // Taken meanwhile (by another replica): undo the release of this MAC's other lease.
      if (!claimed) throw new AddressNotFree()
      return true
    })
  } catch (error) {
    if (error instanceof AddressNotFree) return false
    throw error
  }
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

/** The lease policy's store port, backed by the store (SQLite or PostgreSQL). */
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
