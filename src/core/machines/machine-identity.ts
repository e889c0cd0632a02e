import type { Discovery } from './discovery-document.ts'
import type { MachineState } from './machine-state.ts'

/**
 * A machine is known by what its first discovery report established: its SMBIOS uuid, its boot MAC
 * and its boot address (where configs that carry its secrets are sent). A later report that claims
 * another machine's half of the uuid/MAC pair, moves a machine to another address, or, once the
 * machine has a role, comes from anywhere but its own address, is not applied: the inventory (and so
 * DNS, groups, leases and states, which follow it) keeps what it had, and the claim is kept as a
 * conflict for an operator, who accepts it (the report is then applied) or dismisses it. Legitimate
 * causes exist (a motherboard swap keeps the NIC and changes the uuid; a NIC moved to another
 * machine; a new address): a person decides, not whoever reaches the boot network first. Nothing
 * proves identity on a boot network before the first report, so that one is taken as it comes.
 */
export const CONFLICT_KINDS = ['mac-claimed', 'mac-changed', 'address-changed', 'foreign-source'] as const
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
 * from the report's boot MAC, if another; `source` where the report came from, when the machine's
 * address is its identity (undefined where machines reach the engine through NAT).
 */
export function identityConflict(
  report: Discovery,
  existing: IdentityRecord | undefined,
  macHolder: IdentityRecord | undefined,
  source?: string,
): { kind: ConflictKind; machine: IdentityRecord } | undefined {
  if (!existing) return macHolder && macHolder.uuid !== report.uuid ? { kind: 'mac-claimed', machine: macHolder } : undefined
  if (existing.bootMac !== report.bootMac) return { kind: 'mac-changed', machine: existing }
  const known = bootAddressOf(existing)
  if (known !== null && bootAddressOf(report) !== known) return { kind: 'address-changed', machine: existing }
  if (source !== undefined && known !== null && HAS_ROLE.includes(existing.state) && source !== known) return { kind: 'foreign-source', machine: existing }
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
    case 'foreign-source':
      return `a report for this machine came from ${claim.sourceIp}, not from its own address`
  }
}

/** How many conflicts may be open at once: a flood of forged reports fills a metric, not the database. */
export const MAX_OPEN_CONFLICTS = 1000
