import type { DhcpReservation } from '../../core/dhcp/lease-store.ts'
import type { ReservationRepository } from '../../core/dhcp/reservation-service.ts'
import { listLeases } from './dhcp-leases.ts'
import type { Db, DhcpReservationRow } from '../database.ts'

const toReservation = (row: DhcpReservationRow): DhcpReservation => ({ mac: row.mac, ip: row.ip, hostname: row.hostname })

export async function findReservationByMac(db: Db, mac: string): Promise<DhcpReservation | undefined> {
  const row = await db.selectFrom('dhcp_reservations').selectAll().where('mac', '=', mac).executeTakeFirst()
  return row && toReservation(row)
}

export async function findReservationByIp(db: Db, ip: string): Promise<DhcpReservation | undefined> {
  const row = await db.selectFrom('dhcp_reservations').selectAll().where('ip', '=', ip).executeTakeFirst()
  return row && toReservation(row)
}

export async function listReservations(db: Db): Promise<DhcpReservation[]> {
  return (await db.selectFrom('dhcp_reservations').selectAll().orderBy('mac').execute()).map(toReservation)
}

/** Creates or replaces the reservation of `mac` (the unique `ip` column refuses one address for two MACs). */
export async function upsertReservation(db: Db, reservation: DhcpReservation, now: Date): Promise<void> {
  const nowText = now.toISOString()
  await db
    .insertInto('dhcp_reservations')
    .values({ mac: reservation.mac, ip: reservation.ip, hostname: reservation.hostname, created_at: nowText, updated_at: nowText })
    .onConflict((conflict) => conflict.column('mac').doUpdateSet({ ip: reservation.ip, hostname: reservation.hostname, updated_at: nowText }))
    .execute()
}

export async function deleteReservation(db: Db, mac: string): Promise<boolean> {
  const result = await db.deleteFrom('dhcp_reservations').where('mac', '=', mac).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/** The core's reservation port over kysely. */
export function reservationRepository(db: Db, clock: () => Date = () => new Date()): ReservationRepository {
  return {
    listReservations: () => listReservations(db),
    reservationByIp: (ip) => findReservationByIp(db, ip),
    saveReservation: (reservation) => upsertReservation(db, reservation, clock()),
    deleteReservation: (mac) => deleteReservation(db, mac),
    listLeases: () => listLeases(db),
  }
}
