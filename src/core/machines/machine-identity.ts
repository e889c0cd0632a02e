import type { Discovery } from './discovery-document.ts'
import type { MachineState } from './machine-state.ts'

/**
 * A machine is known by the pair its first discovery report established: its SMBIOS uuid and its
 * boot MAC. A later report that claims another machine's half of that pair, or moves a machine
 * that has a role to another address, is not applied: the inventory (and so DNS, groups, leases and
 * states, which follow it) keeps what it had, and the claim is kept as a conflict for an operator,
 * who accepts it (the report is then applied) or dismisses it. Legitimate causes exist (a
 * motherboard swap keeps the NIC and changes the uuid; a NIC moved to another machine): a person
 * decides, not whoever reaches the boot network first.
 */
export const CONFLICT_KINDS = ['mac-claimed', 'mac-changed', 'address-changed'] as const
export type ConflictKind = (typeof CONFLICT_KINDS)[number]

export const CONFLICT_STATES = ['open', 'accepted', 'dismissed'] as const
export type ConflictState = (typeof CONFLICT_STATES)[number]

export interface MachineConflict {
  id: number
  kind: ConflictKind
  /** The known machine whose identity the report claimed. */
  machineUuid: string
  claimedUuid: string
  claimedMac: string
  claimedIpv4: string | null
  /** Where the (last) report came from. */
  sourceIp: string
  /** How many reports made the same claim. */
  reports: number
  firstSeenAt: string
  lastSeenAt: string
  state: ConflictState
  resolvedAt: string | null
  resolvedBy: string | null
}

/** The machine fields the identity rule reads. */
export interface IdentityRecord {
  uuid: string
  bootMac: string
  state: MachineState
  interfaces: readonly { ipv4: string | null; isBoot: boolean }[]
}

/** States in which a machine has a role, and so an address others depend on (DNS names, etcd peers). */
const HAS_ROLE: readonly MachineState[] = ['scheduled', 'installing', 'installed', 'install_failed']

export const bootAddressOf = (machine: { interfaces: readonly { ipv4: string | null; isBoot: boolean }[] }): string | null =>
  machine.interfaces.find((nic) => nic.isBoot)?.ipv4 ?? null

/**
 * Whether a report may update the inventory: the conflict it makes, and with which machine, or
 * undefined. `existing` is the machine with the report's uuid; `macHolder` the machine that boots
 * from the report's boot MAC, if another.
 */
export function identityConflict(report: Discovery, existing: IdentityRecord | undefined, macHolder: IdentityRecord | undefined): { kind: ConflictKind; machine: IdentityRecord } | undefined {
  if (!existing) return macHolder && macHolder.uuid !== report.uuid ? { kind: 'mac-claimed', machine: macHolder } : undefined
  if (existing.bootMac !== report.bootMac) return { kind: 'mac-changed', machine: existing }
  const known = bootAddressOf(existing)
  if (HAS_ROLE.includes(existing.state) && known !== null && bootAddressOf(report) !== known) return { kind: 'address-changed', machine: existing }
  return undefined
}

export function describeConflict(kind: ConflictKind, claim: { claimedUuid: string; claimedMac: string; claimedIpv4: string | null; sourceIp: string }): string {
  switch (kind) {
    case 'mac-claimed':
      return `a report from ${claim.sourceIp} as machine ${claim.claimedUuid} claimed this machine's boot MAC ${claim.claimedMac}`
    case 'mac-changed':
      return `a report from ${claim.sourceIp} with this machine's uuid claimed another boot MAC, ${claim.claimedMac}`
    case 'address-changed':
      return `a report from ${claim.sourceIp} moved this machine to ${claim.claimedIpv4 ?? 'no address'}`
  }
}

/** How many conflicts may be open at once: a flood of forged reports fills a metric, not the database. */
export const MAX_OPEN_CONFLICTS = 1000
