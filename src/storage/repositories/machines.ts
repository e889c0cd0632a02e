import type { Selectable } from 'kysely'
import type { Discovery } from '../../core/machines/discovery-document.ts'
import type { CredentialState } from '../../core/lifecycle/machine-credentials.ts'
import type { ConflictClaim, Machine, MachineFilter, MachineRepository } from '../../core/machines/machine-service.ts'
import type { ConflictKind, ConflictState, MachineConflict } from '../../core/machines/machine-identity.ts'
import type { MachineEvent, MachineState } from '../../core/machines/machine-state.ts'
import type { Db, MachineConflictsTable, MachineDiskRow, MachineEventRow, MachineInterfaceRow, MachineLabelRow, MachineRow } from '../database.ts'
import { inTransaction } from '../transactions.ts'

/** The core's machine port over kysely. Children (interfaces, disks, labels) are loaded in one query each. */
export function machineRepository(db: Db, clock: () => Date = () => new Date()): MachineRepository {
  return {
    findMachine: async (uuid) => (await loadMachines(db, await db.selectFrom('machines').selectAll().where('uuid', '=', uuid).execute()))[0],
    listMachines: (filter) => listMachines(db, filter),
    saveMachine: (machine, options) => saveMachine(db, machine, clock(), options?.childrenUnchanged ?? false),
    recordTransition: async (machine, event) => {
      await db.updateTable('machines').set({ state: machine.state, state_changed_at: machine.stateChangedAt, updated_at: clock().toISOString() }).where('uuid', '=', machine.uuid).execute()
      await db.insertInto('machine_events').values({ uuid: event.uuid, from_state: event.fromState, to_state: event.toState, reason: event.reason, at: event.at }).execute()
    },
    replaceLabels: async (uuid, labels) => {
      await db.deleteFrom('machine_labels').where('uuid', '=', uuid).execute()
      const rows = Object.entries(labels).map(([key, value]) => ({ uuid, key, value }))
      if (rows.length) await db.insertInto('machine_labels').values(rows).execute()
      await db.updateTable('machines').set({ updated_at: clock().toISOString() }).where('uuid', '=', uuid).execute()
    },
    appendEvent: async (event) => {
      await db.insertInto('machine_events').values({ uuid: event.uuid, from_state: event.fromState, to_state: event.toState, reason: event.reason, at: event.at }).execute()
    },
    listEvents: async (uuid) => (await db.selectFrom('machine_events').selectAll().where('uuid', '=', uuid).orderBy('id').execute()).map(toEvent),
    setCredential: async (uuid, credential) => {
      await db
        .updateTable('machines')
        .set({ credential_generation: credential.generation, credential_previous_generation: credential.previousGeneration, credential_previous_valid_until: credential.previousValidUntil, updated_at: clock().toISOString() })
        .where('uuid', '=', uuid)
        .execute()
    },
    setReprovisionUntil: async (uuid, until) => {
      await db.updateTable('machines').set({ reprovision_until: until, updated_at: clock().toISOString() }).where('uuid', '=', uuid).execute()
    },
    recordConflict: (claim, maxOpen) => recordConflict(db, claim, maxOpen),
    listConflicts: async (filter) => {
      let query = db.selectFrom('machine_conflicts').selectAll()
      if (filter.state) query = query.where('state', '=', filter.state)
      return (await query.orderBy('id', 'desc').limit(MAX_LISTED_CONFLICTS).execute()).map(toConflict)
    },
    findConflict: async (id) => {
      const row = await db.selectFrom('machine_conflicts').selectAll().where('id', '=', id).executeTakeFirst()
      return row && { ...toConflict(row), report: JSON.parse(row.report) as Discovery }
    },
    resolveConflict: async (id, state, at, by) => {
      await db.updateTable('machine_conflicts').set({ state, resolved_at: at, resolved_by: by }).where('id', '=', id).execute()
    },
    // Serial on SQLite, SERIALIZABLE with retries on PostgreSQL; a nested one joins the outer one.
    transaction: (work) => inTransaction(db, (trx) => work(machineRepository(trx, clock))),
  }
}

async function listMachines(db: Db, filter: MachineFilter): Promise<Machine[]> {
  let query = db.selectFrom('machines').selectAll('machines')
  if (filter.state) query = query.where('machines.state', '=', filter.state)
  if (filter.uuids) {
    if (filter.uuids.length === 0) return []
    // Chunked: SQLite takes at most 32,766 bound parameters per statement.
    if (filter.uuids.length > IN_CHUNK) {
      const chunks: Machine[] = []
      for (let start = 0; start < filter.uuids.length; start += IN_CHUNK) appendAll(chunks, await listMachines(db, { ...filter, uuids: filter.uuids.slice(start, start + IN_CHUNK) }))
      return chunks
    }
    query = query.where('machines.uuid', 'in', [...filter.uuids])
  }
  if (filter.mac) {
    const mac = filter.mac
    query = query.where(({ exists, selectFrom }) =>
      exists(selectFrom('machine_interfaces').select('machine_interfaces.uuid').whereRef('machine_interfaces.uuid', '=', 'machines.uuid').where('machine_interfaces.mac', '=', mac)),
    )
  }
  if (filter.inService) {
    query = query.where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('machine_deprovisions').select('machine_deprovisions.machine_uuid').whereRef('machine_deprovisions.machine_uuid', '=', 'machines.uuid'))),
    )
  }
  for (const [key, value] of Object.entries(filter.labels ?? {})) {
    query = query.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('machine_labels')
          .select('machine_labels.uuid')
          .whereRef('machine_labels.uuid', '=', 'machines.uuid')
          .where('machine_labels.key', '=', key)
          .where('machine_labels.value', '=', value),
      ),
    )
  }
  return loadMachines(db, await query.orderBy('machines.first_seen_at').orderBy('machines.uuid').execute())
}

/** A machine's credential state, for verifying its credential (undefined: not in the inventory). */
export async function findCredentialState(db: Db, uuid: string): Promise<CredentialState | undefined> {
  const row = await db.selectFrom('machines').select(['credential_generation', 'credential_previous_generation', 'credential_previous_valid_until']).where('uuid', '=', uuid).executeTakeFirst()
  return row && { generation: row.credential_generation, previousGeneration: row.credential_previous_generation, previousValidUntil: row.credential_previous_valid_until }
}

/** Appends in a loop: `push(...rows)` passes every row as an argument and overflows the stack past ~120k rows. */
function appendAll<T>(target: T[], rows: readonly T[]): void {
  for (const row of rows) target.push(row)
}

/** Bound parameters per `IN (...)`: well under SQLite's limit of 32,766. */
const IN_CHUNK = 5000

async function loadMachines(db: Db, rows: MachineRow[]): Promise<Machine[]> {
  if (rows.length === 0) return []
  const interfaces: MachineInterfaceRow[] = []
  const disks: MachineDiskRow[] = []
  const labels: MachineLabelRow[] = []
  for (let start = 0; start < rows.length; start += IN_CHUNK) {
    const uuids = rows.slice(start, start + IN_CHUNK).map((row) => row.uuid)
    const [someInterfaces, someDisks, someLabels] = await Promise.all([
      db.selectFrom('machine_interfaces').selectAll().where('uuid', 'in', uuids).orderBy('uuid').orderBy('position').execute(),
      db.selectFrom('machine_disks').selectAll().where('uuid', 'in', uuids).orderBy('uuid').orderBy('path').execute(),
      db.selectFrom('machine_labels').selectAll().where('uuid', 'in', uuids).orderBy('uuid').orderBy('key').execute(),
    ])
    appendAll(interfaces, someInterfaces)
    appendAll(disks, someDisks)
    appendAll(labels, someLabels)
  }
  const byUuid = <R extends { uuid: string }>(items: R[]) => {
    const map = new Map<string, R[]>()
    for (const item of items) {
      const list = map.get(item.uuid)
      if (list) list.push(item)
      else map.set(item.uuid, [item])
    }
    return map
  }
  const interfacesOf = byUuid(interfaces)
  const disksOf = byUuid(disks)
  const labelsOf = byUuid(labels)
  return rows.map((row) => ({
    uuid: row.uuid,
    bootMac: row.boot_mac,
    bootRandomId: row.boot_random_id,
    state: row.state,
    stateChangedAt: row.state_changed_at,
    facts: JSON.parse(row.facts) as Machine['facts'],
    firstSeenAt: row.first_seen_at,
    lastSeenAt: row.last_seen_at,
    interfaces: (interfacesOf.get(row.uuid) ?? []).map(toInterface),
    disks: (disksOf.get(row.uuid) ?? []).map(toDisk),
    labels: Object.fromEntries((labelsOf.get(row.uuid) ?? []).map((label) => [label.key, label.value])),
    credential: { generation: row.credential_generation, previousGeneration: row.credential_previous_generation, previousValidUntil: row.credential_previous_valid_until },
    reprovisionUntil: row.reprovision_until,
  }))
}

async function saveMachine(db: Db, machine: Machine, now: Date, childrenUnchanged: boolean): Promise<void> {
  const nowText = now.toISOString()
  const columns = {
    boot_mac: machine.bootMac,
    boot_random_id: machine.bootRandomId,
    state: machine.state,
    state_changed_at: machine.stateChangedAt,
    facts: JSON.stringify(machine.facts),
    first_seen_at: machine.firstSeenAt,
    last_seen_at: machine.lastSeenAt,
    updated_at: nowText,
  }
  await db
    .insertInto('machines')
    .values({ uuid: machine.uuid, ...columns, created_at: nowText })
    .onConflict((conflict) => conflict.column('uuid').doUpdateSet(columns))
    .execute()
  if (childrenUnchanged) return
  await db.deleteFrom('machine_interfaces').where('uuid', '=', machine.uuid).execute()
  if (machine.interfaces.length) {
    await db
      .insertInto('machine_interfaces')
      .values(
        machine.interfaces.map((nic, position) => ({
          uuid: machine.uuid,
          position,
          name: nic.name,
          mac: nic.mac,
          ipv4: nic.ipv4,
          cidr: nic.cidr,
          gateway: nic.gateway,
          fqdn: JSON.stringify(nic.fqdn),
          is_boot: nic.isBoot ? 1 : 0,
        })),
      )
      .execute()
  }
  await db.deleteFrom('machine_disks').where('uuid', '=', machine.uuid).execute()
  if (machine.disks.length) {
    await db
      .insertInto('machine_disks')
      .values(machine.disks.map((disk) => ({ uuid: machine.uuid, path: disk.path, size_bytes: disk.sizeBytes, model: disk.model, serial: disk.serial })))
      .execute()
  }
}

const toInterface = (row: MachineInterfaceRow): Machine['interfaces'][number] => ({
  name: row.name,
  mac: row.mac,
  ipv4: row.ipv4,
  cidr: row.cidr,
  gateway: row.gateway,
  fqdn: JSON.parse(row.fqdn) as string[],
  isBoot: row.is_boot === 1,
})

const toDisk = (row: MachineDiskRow): Machine['disks'][number] => ({ path: row.path, sizeBytes: row.size_bytes, model: row.model, serial: row.serial })

const toEvent = (row: MachineEventRow): MachineEvent => ({
  uuid: row.uuid,
  fromState: row.from_state as MachineState | null,
  toState: row.to_state as MachineState,
  reason: row.reason,
  at: row.at,
})

/** A listing is for people: the newest this many. */
const MAX_LISTED_CONFLICTS = 1000

const toConflict = (row: Selectable<MachineConflictsTable>): MachineConflict => ({
  id: Number(row.id),
  kind: row.kind as ConflictKind,
  machineUuid: row.machine_uuid,
  claimedUuid: row.claimed_uuid,
  claimedMac: row.claimed_mac,
  claimedIpv4: row.claimed_ipv4,
  sourceIp: row.source_ip,
  reports: row.reports,
  firstSeenAt: row.first_seen_at,
  lastSeenAt: row.last_seen_at,
  state: row.state as ConflictState,
  resolvedAt: row.resolved_at,
  resolvedBy: row.resolved_by,
})

async function recordConflict(db: Db, claim: ConflictClaim, maxOpen: number): Promise<{ conflict: MachineConflict; first: boolean } | undefined> {
  const same = await db
    .selectFrom('machine_conflicts')
    .selectAll()
    .where('state', '=', 'open')
    .where('kind', '=', claim.kind)
    .where('machine_uuid', '=', claim.machineUuid)
    .executeTakeFirst()
  const latest = { claimed_uuid: claim.report.uuid, claimed_mac: claim.report.bootMac, claimed_ipv4: claim.claimedIpv4, source_ip: claim.sourceIp, report: JSON.stringify(claim.report), last_seen_at: claim.at }
  if (same) {
    await db.updateTable('machine_conflicts').set({ ...latest, reports: same.reports + 1 }).where('id', '=', same.id).execute()
    return { conflict: toConflict({ ...same, ...latest, reports: same.reports + 1 }), first: false }
  }
  const open = await db.selectFrom('machine_conflicts').select((eb) => eb.fn.countAll<number>().as('count')).where('state', '=', 'open').executeTakeFirstOrThrow()
  if (Number(open.count) >= maxOpen) return undefined
  const row = await db
    .insertInto('machine_conflicts')
    .values({ kind: claim.kind, machine_uuid: claim.machineUuid, ...latest, reports: 1, first_seen_at: claim.at, state: 'open', resolved_at: null, resolved_by: null })
    .returningAll()
    .executeTakeFirstOrThrow()
  return { conflict: toConflict(row), first: true }
}
