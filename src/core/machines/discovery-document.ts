import Type, { type Static } from 'typebox'
import { isIpv4, parseCidr } from '../../lib/ipv4.ts'
import { normalizeMac } from '../../lib/mac.ts'
import { invalid } from '../errors.ts'
import { isIpv6 } from '../power/bmc.ts'
import { checkDocument, PLAIN_TEXT_PATTERN } from '../selection/documents.ts'

/**
 * What a machine booted into discovery POSTs to /discovery, with Enjoliver's keys so that its
 * discovery agent works unchanged. Unknown fields are refused like everywhere else in Slipway: a
 * typo in an agent should fail loudly, not lose a fact. Limits keep one machine from filling the store.
 */
export const MAX_INTERFACES = 64
export const MAX_DISKS = 128
export const UUID_PATTERN = '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$'

const Text = (maxLength: number, description?: string) => Type.String({ maxLength, ...(description ? { description } : {}) })
const Mac = Type.String({ minLength: 1, maxLength: 32, description: 'MAC address; any of 52:54:00:aa:bb:cc, 52-54-00-AA-BB-CC, 525400aabbcc.' })

const DiscoveryInterface = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    mac: Mac,
    ipv4: Type.Optional(Text(15)),
    cidrv4: Type.Optional(Text(18, 'Address with prefix length, e.g. 10.1.0.5/24.')),
    netmask: Type.Optional(Text(15)),
    gateway: Type.Optional(Text(15)),
    fqdn: Type.Optional(Type.Array(Text(253), { maxItems: 16 })),
  },
  { additionalProperties: false },
)

const DiscoveryDisk = Type.Object(
  {
    path: Type.String({ minLength: 1, maxLength: 256 }),
    // 1 EiB: past any disk made, and within JavaScript's exact integers (2^53).
    'size-bytes': Type.Integer({ minimum: 0, maximum: 2 ** 60 }),
    model: Type.Optional(Text(256)),
    serial: Type.Optional(Text(256)),
  },
  { additionalProperties: false },
)

const LldpInterface = Type.Object(
  {
    name: Text(64),
    port: Type.Object({ id: Text(256) }, { additionalProperties: false }),
    chassis: Type.Object({ id: Text(256), name: Type.Optional(Text(256)) }, { additionalProperties: false }),
  },
  { additionalProperties: false },
)

/** How the BMC got its IPv4 address: ipmitool's "IP Address Source" (Static, DHCP, BIOS Assigned, Other, Unspecified). */
export const BMC_IPV4_ASSIGNMENTS = ['static', 'dhcp', 'bios', 'other', 'unspecified'] as const
export type BmcIpv4Assignment = (typeof BMC_IPV4_ASSIGNMENTS)[number]

// Slipway's agent reads it with `ipmitool lan print` where the live image has ipmitool and the machine a
// BMC; Enjoliver's agent never sends it. Addresses the BMC does not have are left out, never 0.0.0.0.
const DiscoveryBmc = Type.Object(
  {
    mac: Mac,
    ipv4: Type.Optional(Text(15, 'Left out while the BMC has none (ipmitool shows 0.0.0.0).')),
    ipv6: Type.Optional(Text(45, 'A global or unique-local address; link-local ones are left out.')),
    'ipv4-assignment': Type.Optional(Type.Enum([...BMC_IPV4_ASSIGNMENTS], { description: 'How the BMC got its IPv4 address (ipmitool\'s "IP Address Source").' })),
    channel: Type.Optional(Type.Integer({ minimum: 1, maximum: 15, description: 'The IPMI LAN channel the settings were read on.' })),
    source: Type.String({ minLength: 1, maxLength: 64, pattern: PLAIN_TEXT_PATTERN, description: 'What read them, e.g. "ipmitool lan print".' }),
  },
  { additionalProperties: false, description: "The machine's BMC on its LAN, as the machine itself reads it: an operator enrolling the BMC then only adds credentials." },
)

export const DiscoveryDocument = Type.Object(
  {
    'boot-info': Type.Object(
      {
        uuid: Type.String({ pattern: UUID_PATTERN, description: 'SMBIOS product UUID: the machine identity.' }),
        mac: Mac,
        'random-id': Type.Optional(Type.String({ maxLength: 128, description: 'Changes on every boot.' })),
      },
      { additionalProperties: false },
    ),
    interfaces: Type.Array(DiscoveryInterface, { minItems: 1, maxItems: MAX_INTERFACES }),
    disks: Type.Optional(Type.Array(DiscoveryDisk, { maxItems: MAX_DISKS })),
    cpu: Type.Optional(
      Type.Object(
        { model: Type.Optional(Text(256)), cores: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536 })), threads: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536 })) },
        { additionalProperties: false },
      ),
    ),
    // 64 PiB of memory: past any machine made, and within JavaScript's exact integers (2^53).
    memory: Type.Optional(Type.Object({ 'total-bytes': Type.Integer({ minimum: 0, maximum: 2 ** 56 }) }, { additionalProperties: false })),
    firmware: Type.Optional(Type.Enum(['bios', 'uefi'])),
    dmi: Type.Optional(
      Type.Object({ vendor: Type.Optional(Text(256)), product: Type.Optional(Text(256)), serial: Type.Optional(Text(256)) }, { additionalProperties: false }),
    ),
    lldp: Type.Optional(
      Type.Object(
        { data: Type.Object({ interfaces: Type.Array(LldpInterface, { maxItems: MAX_INTERFACES }) }, { additionalProperties: false }) },
        { additionalProperties: false },
      ),
    ),
    bmc: Type.Optional(DiscoveryBmc),
    // Accepted for compatibility with Enjoliver's agent; not stored (the lifecycle slice will want it).
    'ignition-journal': Type.Optional(Type.Array(Text(4096), { maxItems: 4096 })),
  },
  { additionalProperties: false },
)
export type DiscoveryDocument = Static<typeof DiscoveryDocument>

export interface MachineInterface {
  name: string
  mac: string
  ipv4: string | null
  /** e.g. 10.1.0.5/24, from cidrv4 or from ipv4 + netmask. */
  cidr: string | null
  gateway: string | null
  fqdn: string[]
  isBoot: boolean
}

export interface MachineDisk {
  path: string
  sizeBytes: number
  model: string | null
  serial: string | null
}

export interface MachineFacts {
  cpu?: { model?: string; cores?: number; threads?: number }
  memory?: { totalBytes: number }
  firmware?: 'bios' | 'uefi'
  dmi?: { vendor?: string; product?: string; serial?: string }
  lldp?: { interfaces: { name: string; portId: string; chassisId: string; chassisName?: string }[] }
  bmc?: DiscoveredBmc
}

/** The BMC a machine's discovery report named: where `PUT /api/v1/machines/{uuid}/bmc` finds the host left out. */
export interface DiscoveredBmc {
  mac: string
  ipv4?: string
  ipv6?: string
  ipv4Assignment?: BmcIpv4Assignment
  channel?: number
  source: string
}

/** A discovery report, checked and normalised: what the store keeps. */
export interface Discovery {
  uuid: string
  bootMac: string
  bootRandomId: string | null
  interfaces: MachineInterface[]
  disks: MachineDisk[]
  facts: MachineFacts
}

/**
 * Checks a discovery document and normalises it (lowercase uuid, colon MACs). The boot interface is
 * the one whose MAC is `boot-info.mac`, never `interfaces[0]` (Enjoliver's mistake: on a machine
 * with several NICs the first one listed is often not the one that PXE-booted).
 */
export function parseDiscovery(input: unknown): Discovery {
  const document = checkDocument(DiscoveryDocument, input, 'discovery document', 'INVALID_DISCOVERY')
  const bootInfo = document['boot-info']
  const bootMac = macOrFail(bootInfo.mac, 'boot-info.mac')
  let bootFound = false
  const interfaces = document.interfaces.map((nic, index): MachineInterface => {
    const mac = macOrFail(nic.mac, `interfaces.${index}.mac`)
    for (const field of ['ipv4', 'netmask', 'gateway'] as const) {
      const value = nic[field]
      if (value !== undefined && value !== '' && !isIpv4(value)) throw invalid('INVALID_IP', `interfaces.${index}.${field}: "${value}" is not an IPv4 address`)
    }
    if (nic.cidrv4 && !parseCidr(nic.cidrv4)) throw invalid('INVALID_IP', `interfaces.${index}.cidrv4: "${nic.cidrv4}" is not an IPv4 address with a prefix length`)
    // Several NICs can share a MAC (bonds, VLANs): only the first one listed is the boot NIC.
    const isBoot = !bootFound && mac === bootMac
    if (isBoot) bootFound = true
    return {
      name: nic.name,
      mac,
      ipv4: nic.ipv4 || null,
      cidr: nic.cidrv4 || (nic.ipv4 && nic.netmask ? `${nic.ipv4}/${prefixLength(nic.netmask, index)}` : null),
      gateway: nic.gateway || null,
      fqdn: nic.fqdn ?? [],
      isBoot,
    }
  })
  if (!bootFound) {
    throw invalid('BOOT_INTERFACE_MISSING', `no interface has the boot MAC ${bootMac} (boot-info.mac); the report must list the interface the machine booted from`, {
      bootMac,
      macs: interfaces.map((nic) => nic.mac),
    })
  }
  const disks = (document.disks ?? []).map((disk): MachineDisk => ({ path: disk.path, sizeBytes: disk['size-bytes'], model: disk.model ?? null, serial: disk.serial ?? null }))
  const paths = new Set<string>()
  for (const disk of disks) {
    if (paths.has(disk.path)) throw invalid('DUPLICATE_DISK', `disk ${disk.path} is listed twice`)
    paths.add(disk.path)
  }
  const facts: MachineFacts = {}
  if (document.cpu) facts.cpu = document.cpu
  if (document.memory) facts.memory = { totalBytes: document.memory['total-bytes'] }
  if (document.firmware) facts.firmware = document.firmware
  if (document.dmi) facts.dmi = document.dmi
  if (document.lldp) {
    facts.lldp = {
      interfaces: document.lldp.data.interfaces.map((entry) => ({
        name: entry.name,
        portId: entry.port.id,
        chassisId: entry.chassis.id,
        ...(entry.chassis.name !== undefined ? { chassisName: entry.chassis.name } : {}),
      })),
    }
  }
  if (document.bmc) facts.bmc = parseBmc(document.bmc)
  return { uuid: bootInfo.uuid.toLowerCase(), bootMac, bootRandomId: bootInfo['random-id'] ?? null, interfaces, disks, facts }
}

/** Only an address the engine could reach the BMC at is kept: the one an operator's enrolment defaults to. */
function parseBmc(bmc: NonNullable<DiscoveryDocument['bmc']>): DiscoveredBmc {
  const mac = macOrFail(bmc.mac, 'bmc.mac')
  if (mac === '00:00:00:00:00:00') throw invalid('INVALID_MAC', 'bmc.mac: 00:00:00:00:00:00 is what ipmitool shows for a channel without a MAC; leave the bmc object out')
  if (bmc.ipv4 !== undefined && (!isIpv4(bmc.ipv4) || bmc.ipv4 === '0.0.0.0')) {
    throw invalid('INVALID_IP', `bmc.ipv4: "${bmc.ipv4}" is not a usable IPv4 address; leave ipv4 out while the BMC has none (0.0.0.0)`)
  }
  const ipv6 = bmc.ipv6?.toLowerCase()
  if (ipv6 !== undefined) {
    if (!isIpv6(ipv6) || /^[0:]+$/.test(ipv6) || /^[0:]+:0*1$/.test(ipv6)) throw invalid('INVALID_IP', `bmc.ipv6: "${bmc.ipv6}" is not a usable IPv6 address (no zone, not :: or ::1)`)
    // fe80::/10 needs the zone of the interface it was seen on: no use as a host for the engine.
    if (/^fe[89ab][0-9a-f]:/.test(ipv6)) throw invalid('INVALID_IP', `bmc.ipv6: "${bmc.ipv6}" is link-local; report a global or unique-local address, or none`)
  }
  return {
    mac,
    ...(bmc.ipv4 !== undefined ? { ipv4: bmc.ipv4 } : {}),
    ...(ipv6 !== undefined ? { ipv6 } : {}),
    ...(bmc['ipv4-assignment'] !== undefined ? { ipv4Assignment: bmc['ipv4-assignment'] } : {}),
    ...(bmc.channel !== undefined ? { channel: bmc.channel } : {}),
    source: bmc.source,
  }
}

function macOrFail(text: string, at: string): string {
  const mac = normalizeMac(text)
  if (!mac) throw invalid('INVALID_MAC', `${at}: "${text}" is not a MAC address; use 52:54:00:aa:bb:cc or 52-54-00-aa-bb-cc`)
  return mac
}

function prefixLength(netmask: string, index: number): number {
  const bits = netmask.split('.').map((part) => Number(part).toString(2).padStart(8, '0')).join('')
  if (!/^1*0*$/.test(bits)) throw invalid('INVALID_IP', `interfaces.${index}.netmask: "${netmask}" is not a contiguous netmask`)
  return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0')
}
