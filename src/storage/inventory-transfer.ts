/**
 * The inventory as one JSON document, `{ "slipway_inventory": 1, ... }`: machines (facts, state,
 * interfaces, disks, labels, cluster role), flavors, clusters (registry entry, provisioning, PKI), and
 * the machines' BMC records (with machines the engine has not seen yet: racks enrolled by their BMCs).
 * It moves an inventory between engines and backends (SQLite to PostgreSQL) and lets a person read or
 * diff it; a full backup (backup.ts) is still what restores everything else (releases, locks, history).
 *
 * Secrets: the cluster PKI, registry credentials, member certificates and BMC passwords travel SEALED
 * (base64 of the AES-256-GCM value the store holds), never in clear. They open only with the same
 * secrets key file, bound to their cluster's name or machine's UUID; an import checks each one opens
 * with this engine's key and refuses the document otherwise.
 *
 * Import is idempotent (upsert by natural keys: machine uuid, flavor name, cluster name, a BMC's machine
 * uuid; what the document leaves out is left alone), checks the whole document before writing
 * anything, and writes it in one transaction: all or nothing.
 */
import type { Selectable } from 'kysely'
import Value from 'typebox/value'
import { groupIdOf } from '../core/clusters/schedule-plan.ts'
import { DEFAULT_DNS_DOMAIN, DEFAULT_POD_SUBNET, DEFAULT_SERVICE_SUBNET, parseFlavor, type EtcdMembership } from '../core/clusters/cluster.ts'
import { conflict, invalid, SlipwayError } from '../core/errors.ts'
import { parseBmcSettings, type BmcInput, type BmcSettings } from '../core/power/bmc.ts'
import type { DeprovisionState } from '../core/power/machine-flows.ts'
import { normalizeMac } from '../lib/mac.ts'
import type { BmcsTable, Db, MachineDeprovisionsTable } from './database.ts'
import { INVENTORY_FORMAT, InventoryDocument, type InventoryBmc, type InventoryMachine } from './inventory-document.ts'
import { bmcOptionsColumn, bmcPasswordContext, bmcSettingsOf, isAnotherBmc, UNSEEN_BMC } from './repositories/bmcs.ts'
import { memberCertificatesContext, pkiContext } from './repositories/clusters.ts'
import { credentialContext } from './repositories/registry.ts'
import type { SecretBox } from './secret-box.ts'
import { inTransaction } from './transactions.ts'


export interface ImportCounts {
  created: number
  updated: number
}
export interface ImportReport {
  machines: ImportCounts
  flavors: ImportCounts
  clusters: ImportCounts
  bmcs: ImportCounts
}

const parseJson = <T>(text: string) => JSON.parse(text) as T
/** A member's stored certificate set as the document carries it: the sealed bytes in base64, untouched. */
const sealedCertificates = (row: { certificates: string; sealed: Uint8Array; issued_at: string; not_after: string } | undefined) =>
  row ? { certificates: parseJson<unknown[]>(row.certificates), sealed: Buffer.from(row.sealed).toString('base64'), issued_at: row.issued_at, not_after: row.not_after } : null
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')

/** A BMC record as the document carries it: the API's fields, the password sealed as stored, no observations. */
function deprovisionEntryOf(row: Selectable<MachineDeprovisionsTable> | undefined): InventoryMachine['deprovision'] {
  if (!row) return null
  return { state: row.state as DeprovisionState, requested_by: row.requested_by, requested_at: row.requested_at, wiped_at: row.wiped_at, powered_off_at: row.powered_off_at, message: row.message }
}

function bmcEntryOf(row: Selectable<BmcsTable>): InventoryBmc {
  const settings = bmcSettingsOf(row)
  return {
    machine_uuid: row.machine_uuid,
    protocol: settings.protocol,
    host: settings.host,
    port: settings.port,
    username: settings.username,
    password_sealed: base64(row.password_sealed),
    ipmi: settings.ipmi ? { cipher_suite: settings.ipmi.cipherSuite, privilege: settings.ipmi.privilege } : null,
    redfish: settings.redfish ? { system_path: settings.redfish.systemPath, verify_tls: settings.redfish.verifyTls, ca_bundle: settings.redfish.caBundle } : null,
    updated_at: row.updated_at,
  }
}

/** A document's BMC entry as the core's BMC rules read it (the rules PUT /api/v1/machines/{uuid}/bmc obeys). */
const bmcInputOf = (entry: InventoryBmc, password?: string): BmcInput => ({
  protocol: entry.protocol,
  host: entry.host,
  port: entry.port,
  username: entry.username,
  password,
  ipmi: entry.ipmi ? { cipherSuite: entry.ipmi.cipher_suite, privilege: entry.ipmi.privilege } : entry.ipmi,
  redfish: entry.redfish ? { systemPath: entry.redfish.system_path, verifyTls: entry.redfish.verify_tls, caBundle: entry.redfish.ca_bundle } : entry.redfish,
})
/** The checked entry's settings as the store keeps them (defaults filled, host in lower case). */
const bmcSettingsFrom = (entry: InventoryBmc): BmcSettings => parseBmcSettings(bmcInputOf(entry), { passwordKept: true }).settings
/** The core's names of BMC fields, as the document spells them. */
const BMC_DOCUMENT_FIELDS: Record<string, string> = {
  'ipmi.cipherSuite': 'ipmi.cipher_suite',
  'redfish.systemPath': 'redfish.system_path',
  'redfish.verifyTls': 'redfish.verify_tls',
  'redfish.caBundle': 'redfish.ca_bundle',
  password: 'password_sealed',
}

/** Reads the inventory in one read transaction: a consistent document even while the engine writes. */
export async function exportInventory(db: Db, now: Date = new Date()): Promise<InventoryDocument> {
  return inTransaction(db, async (trx) => {
    const [machines, interfaces, disks, labels, members, flavors, registry, clusters, pki, memberCertificates, bmcs, deprovisions] = [
      await trx.selectFrom('machines').selectAll().orderBy('first_seen_at').orderBy('uuid').execute(),
      await trx.selectFrom('machine_interfaces').selectAll().orderBy('uuid').orderBy('position').execute(),
      await trx.selectFrom('machine_disks').selectAll().orderBy('uuid').orderBy('path').execute(),
      await trx.selectFrom('machine_labels').selectAll().orderBy('uuid').orderBy('key').execute(),
      await trx.selectFrom('cluster_members').selectAll().execute(),
      await trx.selectFrom('flavors').selectAll().orderBy('name').execute(),
      await trx.selectFrom('cluster_registry').selectAll().orderBy('name').execute(),
      await trx.selectFrom('clusters').selectAll().execute(),
      await trx.selectFrom('cluster_pki').selectAll().execute(),
      await trx.selectFrom('member_certificates').selectAll().execute(),
      await trx.selectFrom('bmcs').selectAll().orderBy('machine_uuid').execute(),
      await trx.selectFrom('machine_deprovisions').selectAll().execute(),
    ]
    const groupIds = members.map((member) => groupIdOf(member.cluster, member.hostname))
    const groups = groupIds.length ? await trx.selectFrom('groups').selectAll().where('id', 'in', groupIds).execute() : []
    const groupById = new Map(groups.map((group) => [group.id, group]))
    const grouped = <R extends { uuid: string }>(rows: R[]) => {
      const map = new Map<string, R[]>()
      for (const row of rows) map.set(row.uuid, [...(map.get(row.uuid) ?? []), row])
      return map
    }
    const interfacesOf = grouped(interfaces)
    const disksOf = grouped(disks)
    const labelsOf = grouped(labels)
    const memberOf = new Map(members.map((member) => [member.machine_uuid, member]))
    const clusterOf = new Map(clusters.map((cluster) => [cluster.name, cluster]))
    const pkiOf = new Map(pki.map((row) => [row.cluster, row]))
    const certificatesOf = new Map(memberCertificates.map((row) => [row.machine_uuid, row]))
    const deprovisionOf = new Map(deprovisions.map((row) => [row.machine_uuid, row]))
    return {
      slipway_inventory: INVENTORY_FORMAT,
      exported_at: now.toISOString(),
      machines: machines.map((machine) => {
        const member = memberOf.get(machine.uuid)
        const group = member ? groupById.get(groupIdOf(member.cluster, member.hostname)) : undefined
        return {
          uuid: machine.uuid,
          boot_mac: machine.boot_mac,
          boot_random_id: machine.boot_random_id,
          state: machine.state,
          state_changed_at: machine.state_changed_at,
          facts: parseJson<Record<string, unknown>>(machine.facts),
          first_seen_at: machine.first_seen_at,
          last_seen_at: machine.last_seen_at,
          interfaces: (interfacesOf.get(machine.uuid) ?? []).map((nic) => ({
            name: nic.name,
            mac: nic.mac,
            ipv4: nic.ipv4,
            cidr: nic.cidr,
            gateway: nic.gateway,
            fqdn: parseJson<string[]>(nic.fqdn),
            is_boot: nic.is_boot === 1,
          })),
          disks: (disksOf.get(machine.uuid) ?? []).map((disk) => ({ path: disk.path, size_bytes: disk.size_bytes, model: disk.model, serial: disk.serial })),
          labels: Object.fromEntries((labelsOf.get(machine.uuid) ?? []).map((label) => [label.key, label.value])),
          role: member
            ? {
                cluster: member.cluster,
                role: member.role,
                ordinal: member.ordinal,
                hostname: member.hostname,
                created_at: member.created_at,
                etcd_membership: (member.etcd_membership as EtcdMembership | null) ?? null,
                etcd_initial_cluster: member.etcd_initial_cluster ?? null,
                group: group
                  ? { id: group.id, name: group.name, profile: group.profile, selector: parseJson<Record<string, string>>(group.selector), metadata: parseJson<Record<string, unknown>>(group.metadata) }
                  : null,
                certificates: sealedCertificates(certificatesOf.get(machine.uuid)),
              }
            : null,
          deprovision: deprovisionEntryOf(deprovisionOf.get(machine.uuid)),
        }
      }),
      flavors: flavors.map((flavor) => ({
        name: flavor.name,
        control_plane_count: flavor.control_plane_count as 1 | 3 | 5,
        nodes_min: flavor.nodes_min,
        nodes_max: flavor.nodes_max,
        selector: parseJson<Record<string, string>>(flavor.selector),
        min_cpu_cores: flavor.min_cpu_cores,
        min_memory_bytes: flavor.min_memory_bytes,
        min_disk_bytes: flavor.min_disk_bytes,
        kubernetes_version: flavor.kubernetes_version,
        labels: parseJson<Record<string, string>>(flavor.labels),
        api_server_port: flavor.api_server_port,
        service_subnet: flavor.service_subnet,
        pod_subnet: flavor.pod_subnet,
        dns_domain: flavor.dns_domain,
        control_plane_vip: flavor.control_plane_vip,
        static_network: flavor.static_network === null ? null : flavor.static_network === 1,
        os: flavor.os as 'flatcar' | 'fedora-coreos',
        created_at: flavor.created_at,
      })),
      clusters: registry.map((entry) => {
        const provisioning = clusterOf.get(entry.name)
        const clusterPki = pkiOf.get(entry.name)
        return {
          name: entry.name,
          display_name: entry.display_name,
          labels: parseJson<Record<string, string>>(entry.labels),
          latitude: entry.latitude,
          longitude: entry.longitude,
          region: entry.region,
          site: entry.site,
          source: entry.source,
          server: entry.server,
          ca_bundle: entry.ca_bundle,
          credential_kind: entry.credential_kind,
          credential_sealed: entry.credential_sealed ? base64(entry.credential_sealed) : null,
          tenant: entry.tenant,
          properties: parseJson<Record<string, string>>(entry.properties),
          ingress_addresses: parseJson<string[]>(entry.ingress_addresses),
          joined_at: entry.joined_at,
          join_message: entry.join_message,
          created_at: entry.created_at,
          updated_at: entry.updated_at,
          provisioning: provisioning
            ? {
                flavor: provisioning.flavor,
                state: provisioning.state,
                created_at: provisioning.created_at,
                pki: clusterPki ? { certificates: parseJson<Record<string, unknown>>(clusterPki.certificates), sealed: base64(clusterPki.sealed), created_at: clusterPki.created_at } : null,
              }
            : null,
        }
      }),
      bmcs: bmcs.map(bmcEntryOf),
    }
  })
}

/** One problem of a document: where (`machines[3].interfaces[0].mac`) and what. */
export interface InventoryProblem {
  path: string
  message: string
}

function schemaProblems(input: unknown): InventoryProblem[] {
  return [...Value.Errors(InventoryDocument, input)]
    .filter((error) => error.keyword !== 'boolean' && error.keyword !== 'anyOf')
    .map((error) => {
      const path = error.instancePath ? error.instancePath.slice(1).split('/').map((part, index) => (/^\d+$/.test(part) ? `[${part}]` : `${index ? '.' : ''}${part}`)).join('') : '(document)'
      const params = error.params as { additionalProperties?: string[]; pattern?: string }
      if (error.keyword === 'additionalProperties') return { path, message: `unknown field(s) ${params.additionalProperties?.join(', ')}` }
      if (error.keyword === 'pattern') return { path, message: `must match ${params.pattern}` }
      return { path, message: error.message }
    })
}

const reject = (code: string, problems: InventoryProblem[], kind: 'invalid' | 'conflict' = 'invalid') => {
  const shown = problems.slice(0, 20)
  const message = `inventory not imported (nothing was changed): ${shown.map((problem) => `${problem.path}: ${problem.message}`).join('; ')}${problems.length > shown.length ? `; and ${problems.length - shown.length} more` : ''}`
  return (kind === 'invalid' ? invalid : conflict)(code, message, { problems })
}

/** The sealed value opened with this engine's key for `context`, or undefined when it does not open. */
function openedSealed(secrets: SecretBox, value: string, context: string): string | undefined {
  try {
    return secrets.open(Buffer.from(value, 'base64'), context)
  } catch {
    return undefined
  }
}
const sealedOpens = (secrets: SecretBox, value: string, context: string): boolean => openedSealed(secrets, value, context) !== undefined

/**
 * Checks `input` completely, then upserts it in one transaction. Bad shape or values: 400
 * (INVALID_INVENTORY, with a path per problem); a clash with what the store holds: 409
 * (INVENTORY_CONFLICT). Either way nothing is written.
 */
export async function importInventory(db: Db, secrets: SecretBox, input: unknown, now: Date = new Date()): Promise<ImportReport> {
  if (typeof input === 'object' && input !== null && 'slipway_inventory' in input && (input as { slipway_inventory: unknown }).slipway_inventory !== INVENTORY_FORMAT) {
    const found = JSON.stringify((input as { slipway_inventory: unknown }).slipway_inventory)
    throw invalid('INVENTORY_FORMAT_UNSUPPORTED', `slipway_inventory is ${found}; this engine reads format ${INVENTORY_FORMAT} (export again with this engine's version, or import with the engine that wrote it)`)
  }
  const shapeProblems = schemaProblems(input)
  if (shapeProblems.length) throw reject('INVALID_INVENTORY', shapeProblems)
  const document = input as InventoryDocument
  const machines = document.machines.map(normalizeMachine)
  const bmcs = (document.bmcs ?? []).map((bmc) => ({ ...bmc, machine_uuid: bmc.machine_uuid.toLowerCase() }))
  const problems = [...documentProblems(document, machines, secrets), ...bmcProblems(bmcs, secrets)]
  if (problems.length) throw reject('INVALID_INVENTORY', problems)

  return inTransaction(db, async (trx) => {
    const clashes = await storeConflicts(trx, document, machines)
    if (clashes.length) throw reject('INVENTORY_CONFLICT', clashes, 'conflict')
    const at = now.toISOString()
    const report: ImportReport = { machines: { created: 0, updated: 0 }, flavors: { created: 0, updated: 0 }, clusters: { created: 0, updated: 0 }, bmcs: { created: 0, updated: 0 } }
    const existingFlavors = new Set((await trx.selectFrom('flavors').select('name').execute()).map((row) => row.name))
    for (const flavor of document.flavors) {
      const columns = {
        control_plane_count: flavor.control_plane_count,
        nodes_min: flavor.nodes_min,
        nodes_max: flavor.nodes_max,
        selector: JSON.stringify(flavor.selector),
        min_cpu_cores: flavor.min_cpu_cores,
        min_memory_bytes: flavor.min_memory_bytes,
        min_disk_bytes: flavor.min_disk_bytes,
        kubernetes_version: flavor.kubernetes_version,
        labels: JSON.stringify(flavor.labels),
        api_server_port: flavor.api_server_port,
        service_subnet: flavor.service_subnet ?? DEFAULT_SERVICE_SUBNET,
        pod_subnet: flavor.pod_subnet ?? DEFAULT_POD_SUBNET,
        dns_domain: flavor.dns_domain ?? DEFAULT_DNS_DOMAIN,
        control_plane_vip: flavor.control_plane_vip ?? null,
        static_network: flavor.static_network === undefined || flavor.static_network === null ? null : Number(flavor.static_network),
        os: flavor.os ?? 'flatcar',
      }
      await trx.insertInto('flavors').values({ name: flavor.name, ...columns, created_at: flavor.created_at }).onConflict((clash) => clash.column('name').doUpdateSet(columns)).execute()
      report.flavors[existingFlavors.has(flavor.name) ? 'updated' : 'created']++
    }
    const existingClusters = new Set((await trx.selectFrom('cluster_registry').select('name').execute()).map((row) => row.name))
    for (const cluster of document.clusters) {
      const columns = {
        display_name: cluster.display_name,
        labels: JSON.stringify(cluster.labels),
        latitude: cluster.latitude,
        longitude: cluster.longitude,
        region: cluster.region,
        site: cluster.site,
        source: cluster.source,
        server: cluster.server,
        ca_bundle: cluster.ca_bundle,
        credential_kind: cluster.credential_kind,
        credential_sealed: cluster.credential_sealed ? Buffer.from(cluster.credential_sealed, 'base64') : null,
        tenant: cluster.tenant ?? null,
        properties: JSON.stringify(cluster.properties),
        ingress_addresses: JSON.stringify(cluster.ingress_addresses),
        joined_at: cluster.joined_at,
        join_message: cluster.join_message,
        updated_at: cluster.updated_at,
      }
      await trx.insertInto('cluster_registry').values({ name: cluster.name, ...columns, created_at: cluster.created_at }).onConflict((clash) => clash.column('name').doUpdateSet(columns)).execute()
      report.clusters[existingClusters.has(cluster.name) ? 'updated' : 'created']++
      const provisioning = cluster.provisioning
      if (!provisioning) continue
      await trx
        .insertInto('clusters')
        .values({ name: cluster.name, flavor: provisioning.flavor, state: provisioning.state, created_at: provisioning.created_at })
        .onConflict((clash) => clash.column('name').doUpdateSet({ flavor: provisioning.flavor, state: provisioning.state }))
        .execute()
      if (provisioning.pki) {
        // An existing PKI equal to this one (storeConflicts refused any other): nothing to write.
        await trx
          .insertInto('cluster_pki')
          .values({ cluster: cluster.name, certificates: JSON.stringify(provisioning.pki.certificates), sealed: Buffer.from(provisioning.pki.sealed, 'base64'), created_at: provisioning.pki.created_at })
          .onConflict((clash) => clash.column('cluster').doNothing())
          .execute()
      }
    }
    for (const machine of machines) {
      const existing = await trx.selectFrom('machines').select(['state']).where('uuid', '=', machine.uuid).executeTakeFirst()
      const columns = {
        boot_mac: machine.boot_mac,
        boot_random_id: machine.boot_random_id,
        state: machine.state,
        state_changed_at: machine.state_changed_at,
        facts: JSON.stringify(machine.facts),
        first_seen_at: machine.first_seen_at,
        last_seen_at: machine.last_seen_at,
        updated_at: at,
      }
      await trx.insertInto('machines').values({ uuid: machine.uuid, ...columns, created_at: at }).onConflict((clash) => clash.column('uuid').doUpdateSet(columns)).execute()
      if (!existing || existing.state !== machine.state) {
        await trx
          .insertInto('machine_events')
          .values({ uuid: machine.uuid, from_state: existing?.state ?? null, to_state: machine.state, reason: 'imported from an inventory export', at })
          .execute()
      }
      report.machines[existing ? 'updated' : 'created']++
      await trx.deleteFrom('machine_interfaces').where('uuid', '=', machine.uuid).execute()
      if (machine.interfaces.length) {
        await trx
          .insertInto('machine_interfaces')
          .values(machine.interfaces.map((nic, position) => ({ uuid: machine.uuid, position, name: nic.name, mac: nic.mac, ipv4: nic.ipv4, cidr: nic.cidr, gateway: nic.gateway, fqdn: JSON.stringify(nic.fqdn), is_boot: nic.is_boot ? 1 : 0 })))
          .execute()
      }
      await trx.deleteFrom('machine_disks').where('uuid', '=', machine.uuid).execute()
      if (machine.disks.length) {
        await trx.insertInto('machine_disks').values(machine.disks.map((disk) => ({ uuid: machine.uuid, path: disk.path, size_bytes: disk.size_bytes, model: disk.model, serial: disk.serial }))).execute()
      }
      await trx.deleteFrom('machine_labels').where('uuid', '=', machine.uuid).execute()
      const labelRows = Object.entries(machine.labels).map(([key, value]) => ({ uuid: machine.uuid, key, value }))
      if (labelRows.length) await trx.insertInto('machine_labels').values(labelRows).execute()
      // Left out (an older export): the machine's deprovision here stays as it is; null: it has none.
      if (machine.deprovision === null) await trx.deleteFrom('machine_deprovisions').where('machine_uuid', '=', machine.uuid).execute()
      else if (machine.deprovision) {
        const { state, requested_by, requested_at, wiped_at, powered_off_at, message } = machine.deprovision
        const columns = { state, requested_by, requested_at, wiped_at, powered_off_at, message }
        await trx.insertInto('machine_deprovisions').values({ machine_uuid: machine.uuid, ...columns }).onConflict((clash) => clash.column('machine_uuid').doUpdateSet(columns)).execute()
      }
      const role = machine.role
      if (!role) continue
      await trx
        .insertInto('cluster_members')
        .values({ machine_uuid: machine.uuid, cluster: role.cluster, role: role.role, ordinal: role.ordinal, hostname: role.hostname, created_at: role.created_at, etcd_membership: role.role === 'control-plane' ? (role.etcd_membership ?? null) : null, etcd_initial_cluster: role.role === 'control-plane' ? (role.etcd_initial_cluster ?? null) : null })
        .onConflict((clash) => clash.column('machine_uuid').doNothing())
        .execute()
      if (role.certificates) {
        // A set already here is this member's (storeConflicts refused a different membership): kept.
        await trx
          .insertInto('member_certificates')
          .values({ machine_uuid: machine.uuid, cluster: role.cluster, certificates: JSON.stringify(role.certificates.certificates), sealed: Buffer.from(role.certificates.sealed, 'base64'), issued_at: role.certificates.issued_at, not_after: role.certificates.not_after })
          .onConflict((clash) => clash.column('machine_uuid').doNothing())
          .execute()
      }
      if (role.group) {
        const group = role.group
        const groupColumns = { name: group.name, profile: group.profile, selector: JSON.stringify(group.selector), metadata: JSON.stringify(group.metadata), source: 'api' as const, updated_at: at }
        await trx.insertInto('groups').values({ id: group.id, ...groupColumns, created_at: at }).onConflict((clash) => clash.column('id').doUpdateSet(groupColumns)).execute()
      }
    }
    for (const bmc of bmcs) {
      const settings = bmcSettingsFrom(bmc)
      const existing = await trx.selectFrom('bmcs').select(['protocol', 'host', 'port']).where('machine_uuid', '=', bmc.machine_uuid).executeTakeFirst()
      const columns = {
        protocol: settings.protocol,
        host: settings.host,
        port: settings.port,
        username: settings.username,
        // The sealed bytes as exported (bmcProblems checked they open for this machine): never sealed again.
        password_sealed: Buffer.from(bmc.password_sealed, 'base64'),
        options: bmcOptionsColumn(settings),
        updated_at: bmc.updated_at,
      }
      if (existing) {
        // What this engine saw of the same BMC is kept; of a BMC at another address, forgotten (as a PUT does).
        await trx
          .updateTable('bmcs')
          .set({ ...columns, ...(isAnotherBmc(existing, settings) ? UNSEEN_BMC : {}) })
          .where('machine_uuid', '=', bmc.machine_uuid)
          .execute()
      } else {
        await trx.insertInto('bmcs').values({ machine_uuid: bmc.machine_uuid, ...columns }).execute()
      }
      report.bmcs[existing ? 'updated' : 'created']++
    }
    return report
  })
}

function normalizeMachine(machine: InventoryMachine): InventoryMachine {
  return {
    ...machine,
    uuid: machine.uuid.toLowerCase(),
    boot_mac: normalizeMac(machine.boot_mac) ?? machine.boot_mac,
    interfaces: machine.interfaces.map((nic) => ({ ...nic, mac: normalizeMac(nic.mac) ?? nic.mac })),
  }
}

/** What is wrong inside the document itself (no store needed). */
function documentProblems(document: InventoryDocument, machines: InventoryMachine[], secrets: SecretBox): InventoryProblem[] {
  const problems: InventoryProblem[] = []
  const firstIndex = <K>(map: Map<K, number>, key: K, index: number) => {
    const seen = map.get(key)
    if (seen === undefined) map.set(key, index)
    return seen
  }
  const flavorIndex = new Map<string, number>()
  document.flavors.forEach((flavor, index) => {
    const seen = firstIndex(flavorIndex, flavor.name, index)
    if (seen !== undefined) problems.push({ path: `flavors[${index}].name`, message: `flavor "${flavor.name}" is already at flavors[${seen}]` })
    if (flavor.nodes_max < flavor.nodes_min) problems.push({ path: `flavors[${index}].nodes_max`, message: `must be at least nodes_min (${flavor.nodes_min})` })
    // The network rules a flavor created through the API obeys (subnets apart, the VIP outside them).
    try {
      parseFlavor({ name: flavor.name, control_plane_count: flavor.control_plane_count, nodes_max: flavor.nodes_max, ...definedOf({ service_subnet: flavor.service_subnet, pod_subnet: flavor.pod_subnet, dns_domain: flavor.dns_domain, control_plane_vip: flavor.control_plane_vip ?? undefined }) })
    } catch (error) {
      if (!(error instanceof SlipwayError)) throw error
      problems.push({ path: `flavors[${index}]`, message: error.message })
    }
  })
  const clusterIndex = new Map<string, number>()
  document.clusters.forEach((cluster, index) => {
    const seen = firstIndex(clusterIndex, cluster.name, index)
    if (seen !== undefined) problems.push({ path: `clusters[${index}].name`, message: `cluster "${cluster.name}" is already at clusters[${seen}]` })
    if ((cluster.source === 'provisioned') !== (cluster.provisioning !== null)) {
      problems.push({ path: `clusters[${index}].provisioning`, message: cluster.source === 'provisioned' ? 'a provisioned cluster needs its provisioning' : 'only a provisioned cluster has provisioning' })
    }
    if ((cluster.credential_kind === 'cluster_pki') === (cluster.credential_sealed !== null)) {
      problems.push({ path: `clusters[${index}].credential_sealed`, message: cluster.credential_kind === 'cluster_pki' ? 'must be null for credential_kind cluster_pki' : `a ${cluster.credential_kind} credential needs its sealed value` })
    } else if (cluster.credential_sealed && !sealedOpens(secrets, cluster.credential_sealed, credentialContext(cluster.name))) {
      problems.push({ path: `clusters[${index}].credential_sealed`, message: `does not open with this engine's secrets key: it was sealed by an engine with another key file (or for another cluster); use that key file, or register the credential again after the import without this cluster` })
    }
    const pki = cluster.provisioning?.pki
    if (pki && !sealedOpens(secrets, pki.sealed, pkiContext(cluster.name))) {
      problems.push({ path: `clusters[${index}].provisioning.pki.sealed`, message: "does not open with this engine's secrets key: it was sealed by an engine with another key file (or for another cluster)" })
    }
    if (cluster.provisioning && !flavorIndex.has(cluster.provisioning.flavor)) {
      problems.push({ path: `clusters[${index}].provisioning.flavor`, message: `flavor "${cluster.provisioning.flavor}" is not in this document's flavors` })
    }
  })
  const uuidIndex = new Map<string, number>()
  const macIndex = new Map<string, number>()
  const slotIndex = new Map<string, number>()
  machines.forEach((machine, index) => {
    const at = `machines[${index}]`
    if (machine.role && machine.deprovision) {
      problems.push({ path: `${at}.deprovision`, message: `a member of cluster ${machine.role.cluster} is not taken out of service (the engine refuses that): drop the role or the deprovision` })
    }
    const seen = firstIndex(uuidIndex, machine.uuid, index)
    if (seen !== undefined) problems.push({ path: `${at}.uuid`, message: `machine ${machine.uuid} is already at machines[${seen}]` })
    if (!normalizeMac(document.machines[index]!.boot_mac)) problems.push({ path: `${at}.boot_mac`, message: `"${document.machines[index]!.boot_mac}" is not a MAC address` })
    else {
      const taken = firstIndex(macIndex, machine.boot_mac, index)
      if (taken !== undefined) problems.push({ path: `${at}.boot_mac`, message: `${machine.boot_mac} is already the boot MAC of machines[${taken}]` })
    }
    document.machines[index]!.interfaces.forEach((nic, position) => {
      if (!normalizeMac(nic.mac)) problems.push({ path: `${at}.interfaces[${position}].mac`, message: `"${nic.mac}" is not a MAC address` })
    })
    const role = machine.role
    if (!role) return
    const cluster = document.clusters.find((candidate) => candidate.name === role.cluster)
    if (!cluster?.provisioning) problems.push({ path: `${at}.role.cluster`, message: `cluster "${role.cluster}" is not a provisioned cluster of this document` })
    const slot = `${role.cluster}/${role.role}/${role.ordinal}`
    const holder = firstIndex(slotIndex, slot, index)
    if (holder !== undefined) problems.push({ path: `${at}.role.ordinal`, message: `${role.role} #${role.ordinal} of ${role.cluster} is already machines[${holder}]` })
    if (role.certificates && !sealedOpens(secrets, role.certificates.sealed, memberCertificatesContext(machine.uuid))) {
      problems.push({ path: `${at}.role.certificates.sealed`, message: "does not open with this engine's secrets key: it was sealed by an engine with another key file (or for another machine); import without it to have the certificates issued anew" })
    }
  })
  return problems
}

/**
 * What is wrong with the BMC entries: a machine twice, a password that does not open here for its own
 * machine, or settings the API would refuse (core/power/bmc.ts's rules, the opened password included:
 * an IPMI record takes at most 20 bytes). Messages never carry the password.
 */
function bmcProblems(bmcs: InventoryBmc[], secrets: SecretBox): InventoryProblem[] {
  const problems: InventoryProblem[] = []
  const uuidIndex = new Map<string, number>()
  bmcs.forEach((bmc, index) => {
    const at = `bmcs[${index}]`
    const seen = uuidIndex.get(bmc.machine_uuid)
    if (seen !== undefined) {
      problems.push({ path: `${at}.machine_uuid`, message: `machine ${bmc.machine_uuid} already has its BMC at bmcs[${seen}]` })
      return
    }
    uuidIndex.set(bmc.machine_uuid, index)
    const password = openedSealed(secrets, bmc.password_sealed, bmcPasswordContext(bmc.machine_uuid))
    if (password === undefined) {
      problems.push({
        path: `${at}.password_sealed`,
        message: `does not open with this engine's secrets key: it was sealed by an engine with another key file (or for another machine); use that key file, or import without this entry and set the BMC again (PUT /api/v1/machines/${bmc.machine_uuid}/bmc)`,
      })
      return
    }
    try {
      parseBmcSettings(bmcInputOf(bmc, password), { passwordKept: false })
    } catch (error) {
      if (!(error instanceof SlipwayError)) throw error
      const field = String(error.details?.field ?? '')
      const rule = error.message.startsWith(`${field}: `) ? error.message.slice(field.length + 2) : error.message
      problems.push({ path: field ? `${at}.${BMC_DOCUMENT_FIELDS[field] ?? field}` : at, message: field === 'password' ? `the password it seals ${rule} for protocol ${bmc.protocol}` : rule })
    }
  })
  return problems
}

/** What clashes with the store: refused rather than overwritten, because each would break a running cluster. */
async function storeConflicts(trx: Db, document: InventoryDocument, machines: InventoryMachine[]): Promise<InventoryProblem[]> {
  const problems: InventoryProblem[] = []
  const registry = new Map((await trx.selectFrom('cluster_registry').select(['name', 'source']).execute()).map((row) => [row.name, row.source]))
  const pki = new Map((await trx.selectFrom('cluster_pki').select(['cluster', 'sealed']).execute()).map((row) => [row.cluster, base64(row.sealed)]))
  document.clusters.forEach((cluster, index) => {
    const source = registry.get(cluster.name)
    if (source && source !== cluster.source) problems.push({ path: `clusters[${index}].source`, message: `cluster "${cluster.name}" exists here as ${source}` })
    const stored = pki.get(cluster.name)
    // Sealed values differ for equal secrets only when sealed twice: the export carries the stored bytes.
    if (stored && cluster.provisioning?.pki && stored !== cluster.provisioning.pki.sealed) {
      problems.push({ path: `clusters[${index}].provisioning.pki`, message: `cluster "${cluster.name}" has another PKI here; replacing a cluster's certificate authority would cut off its machines` })
    }
  })
  const profiles = new Set((await trx.selectFrom('profiles').select('id').execute()).map((row) => row.id))
  machines.forEach((machine, index) => {
    const profile = machine.role?.group?.profile
    if (profile && !profiles.has(profile)) {
      problems.push({ path: `machines[${index}].role.group.profile`, message: `profile "${profile}" does not exist here; add it to the profiles folder (or PUT /api/v1/profiles/${profile}) and import again` })
    }
  })
  const members = await trx.selectFrom('cluster_members').selectAll().execute()
  const memberOf = new Map(members.map((member) => [member.machine_uuid, member]))
  const slotHolder = new Map(members.map((member) => [`${member.cluster}/${member.role}/${member.ordinal}`, member.machine_uuid]))
  const macOwners = await macOwnersOf(trx, machines.map((machine) => machine.boot_mac))
  machines.forEach((machine, index) => {
    const at = `machines[${index}]`
    const owner = macOwners.get(machine.boot_mac)?.find((uuid) => uuid !== machine.uuid)
    if (owner) problems.push({ path: `${at}.boot_mac`, message: `${machine.boot_mac} is the boot MAC of machine ${owner} here` })
    const member = memberOf.get(machine.uuid)
    const role = machine.role
    if (member && (!role || member.cluster !== role.cluster || member.role !== role.role || member.ordinal !== role.ordinal)) {
      problems.push({ path: `${at}.role`, message: `machine ${machine.uuid} is ${member.role} #${member.ordinal} of ${member.cluster} here; destroy that cluster or free the machine first` })
    }
    if (role && !member) {
      const holder = slotHolder.get(`${role.cluster}/${role.role}/${role.ordinal}`)
      if (holder) problems.push({ path: `${at}.role.ordinal`, message: `${role.role} #${role.ordinal} of ${role.cluster} is machine ${holder} here` })
    }
  })
  return problems
}

async function macOwnersOf(trx: Db, macs: string[]): Promise<Map<string, string[]>> {
  const owners = new Map<string, string[]>()
  for (let start = 0; start < macs.length; start += 5000) {
    const chunk = macs.slice(start, start + 5000)
    const rows = await trx.selectFrom('machines').select(['uuid', 'boot_mac']).where('boot_mac', 'in', chunk).execute()
    for (const row of rows) owners.set(row.boot_mac, [...(owners.get(row.boot_mac) ?? []), row.uuid])
  }
  return owners
}

/** The entries whose value is defined: an optional field left out stays out of a checked document. */
function definedOf(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined))
}
