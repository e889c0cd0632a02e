/**
 * Checks a Slipway SQLite file the way an operator would after a crash or a restore: SQLite's own
 * integrity and foreign keys, then the engine's invariants (no half-written discovery, no machine in
 * two clusters, no slot held by nobody). Each returns a list of problems; empty means consistent.
 */
import SQLite from 'better-sqlite3'

export function openReadOnly(file: string): SQLite.Database {
  return new SQLite(file, { readonly: true, fileMustExist: true })
}

export function sqliteProblems(db: SQLite.Database): string[] {
  const problems: string[] = []
  const integrity = (db.pragma('integrity_check') as { integrity_check: string }[]).map((row) => row.integrity_check)
  if (integrity.join() !== 'ok') problems.push(`integrity_check: ${integrity.slice(0, 5).join('; ')}`)
  const dangling = db.pragma('foreign_key_check') as { table: string; rowid: number; parent: string }[]
  for (const row of dangling.slice(0, 5)) problems.push(`foreign key: ${row.table} rowid ${row.rowid} -> ${row.parent} missing`)
  return problems
}

/** Every machine has its interface(s), disk(s) and first event: a discovery is written whole or not at all. */
export function discoveryProblems(db: SQLite.Database, expected: { interfaces: number; disks: number }): string[] {
  const problems: string[] = []
  const rows = db
    .prepare(
      `select m.uuid,
        (select count(*) from machine_interfaces i where i.uuid = m.uuid) as interfaces,
        (select count(*) from machine_disks d where d.uuid = m.uuid) as disks,
        (select count(*) from machine_events e where e.uuid = m.uuid and e.from_state is null) as first_events
       from machines m`,
    )
    .all() as { uuid: string; interfaces: number; disks: number; first_events: number }[]
  for (const row of rows) {
    if (row.interfaces !== expected.interfaces || row.disks !== expected.disks || row.first_events !== 1) {
      problems.push(`machine ${row.uuid}: ${row.interfaces} interface(s), ${row.disks} disk(s), ${row.first_events} first event(s)`)
    }
  }
  const duplicateMacs = db.prepare('select boot_mac, count(*) as n from machines group by boot_mac having n > 1').all() as { boot_mac: string; n: number }[]
  for (const row of duplicateMacs) problems.push(`boot MAC ${row.boot_mac} belongs to ${row.n} machines`)
  const orphans = db.prepare('select count(*) as n from machine_events e where not exists (select 1 from machines m where m.uuid = e.uuid)').get() as { n: number }
  if (orphans.n > 0) problems.push(`${orphans.n} machine event(s) of no machine`)
  return problems
}

export const machineUuids = (db: SQLite.Database): string[] => (db.prepare('select uuid from machines order by uuid').all() as { uuid: string }[]).map((row) => row.uuid)

/**
 * Opens a database a killed engine left (its WAL not folded in yet): read-write so that SQLite can
 * recover the WAL, as the next engine will. Nothing is written; close it before starting an engine.
 */
export function openAfterCrash(file: string): SQLite.Database {
  return new SQLite(file, { fileMustExist: true })
}

/**
 * Scheduling invariants: every cluster's control plane is all or nothing (0 or `quorum`), nodes stay
 * within `nodesMax`, every member's machine left `discovered` through exactly one scheduling event
 * and has its per-machine group, no per-machine group is left without its member, and no more
 * machines hold an install slot than `maxInstalling`.
 */
export function schedulingProblems(db: SQLite.Database, policy: { quorum: number; nodesMax: number; maxInstalling: number }): string[] {
  const problems: string[] = []
  const roles = db.prepare("select cluster, sum(role = 'control-plane') as cp, sum(role = 'node') as nodes, count(distinct ordinal || role) as slots, count(*) as members from cluster_members group by cluster").all() as {
    cluster: string
    cp: number
    nodes: number
    slots: number
    members: number
  }[]
  for (const row of roles) {
    if (row.cp !== 0 && row.cp !== policy.quorum) problems.push(`cluster ${row.cluster}: ${row.cp} control-plane members (quorum ${policy.quorum}: all or nothing)`)
    if (row.nodes > policy.nodesMax) problems.push(`cluster ${row.cluster}: ${row.nodes} nodes, more than ${policy.nodesMax}`)
    if (row.slots !== row.members) problems.push(`cluster ${row.cluster}: two members share a role and ordinal`)
  }
  const members = db
    .prepare(
      `select c.machine_uuid as uuid, c.cluster, c.hostname, m.state,
         (select count(*) from machine_events e where e.uuid = c.machine_uuid and e.to_state = 'scheduled' and e.from_state = 'discovered') as scheduled_events,
         (select count(*) from groups g where g.id = c.cluster || '-' || c.hostname) as groups
       from cluster_members c join machines m on m.uuid = c.machine_uuid`,
    )
    .all() as { uuid: string; cluster: string; hostname: string; state: string; scheduled_events: number; groups: number }[]
  for (const member of members) {
    if (member.state === 'discovered' || member.state === 'booting') problems.push(`member ${member.uuid} of ${member.cluster} is still ${member.state}`)
    if (member.scheduled_events !== 1) problems.push(`member ${member.uuid} of ${member.cluster} has ${member.scheduled_events} scheduling events`)
    if (member.groups !== 1) problems.push(`member ${member.uuid} (${member.hostname}) has no per-machine group`)
  }
  const strays = db.prepare("select uuid, state from machines where state <> 'discovered' and uuid not in (select machine_uuid from cluster_members)").all() as { uuid: string; state: string }[]
  for (const stray of strays) problems.push(`machine ${stray.uuid} is ${stray.state} but in no cluster`)
  const orphanGroups = db
    .prepare("select g.id from groups g join clusters k on g.id like k.name || '-%' where g.source = 'api' and not exists (select 1 from cluster_members c where c.cluster || '-' || c.hostname = g.id)")
    .all() as { id: string }[]
  for (const group of orphanGroups) problems.push(`group ${group.id} has no member`)
  const installing = (db.prepare("select count(*) as n from machines where state = 'installing'").get() as { n: number }).n
  if (installing > policy.maxInstalling) problems.push(`${installing} machines hold an install slot; at most ${policy.maxInstalling} may`)
  return problems
}
