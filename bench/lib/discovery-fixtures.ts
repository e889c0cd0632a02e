import { prng } from './fixtures.ts'

/**
 * A simulated fleet for `POST /discovery`: what each machine's discovery agent reports, in
 * Enjoliver's format (src/core/machines/discovery-document.ts). Everything comes from a fixed seed,
 * so every run posts the same bytes; UUIDs, MACs and IPv4 addresses are unique across the fleet.
 */
export interface SimulatedMachine {
  /** Lowercase, as the engine stores it. */
  uuid: string
  /** Boot MAC, lowercase colon form. */
  bootMac: string
  /** IPv4 address of the boot NIC (the one the scheduler must report, whatever its position). */
  bootIp: string
  /** true when the boot NIC is not the first interface listed. */
  bootNicNotFirst: boolean
  cores: number
  memoryBytes: number
  largestDiskBytes: number
  diskCount: number
  /** The discovery document, ready to be JSON-encoded. */
  document: Record<string, unknown>
}

const GiB = 1024 ** 3
const GB = 1000 ** 3

/** Real OUIs (Intel, Mellanox, Broadcom, Supermicro, Dell, HPE) so that MACs look like a data centre's. */
const OUIS = ['3c:fd:fe', '0c:42:a1', '00:0a:f7', 'ac:1f:6b', 'b8:ca:3a', '94:40:c9']
const CPUS: { model: string; cores: number[] }[] = [
  { model: 'Intel(R) Xeon(R) Silver 4214R CPU @ 2.40GHz', cores: [12, 24] },
  { model: 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz', cores: [32, 64] },
  { model: 'AMD EPYC 7313P 16-Core Processor', cores: [16] },
  { model: 'AMD EPYC 7543 32-Core Processor', cores: [32, 64] },
  { model: 'Intel(R) Xeon(R) E-2288G CPU @ 3.70GHz', cores: [8] },
]
const MEMORY_GIB = [32, 64, 64, 128, 128, 256, 512]
const VENDORS: { vendor: string; products: string[] }[] = [
  { vendor: 'Dell Inc.', products: ['PowerEdge R640', 'PowerEdge R650', 'PowerEdge R740xd'] },
  { vendor: 'HPE', products: ['ProLiant DL360 Gen10', 'ProLiant DL380 Gen10 Plus'] },
  { vendor: 'Supermicro', products: ['SYS-1029U-TRT', 'AS-1114S-WN10RT'] },
  { vendor: 'Lenovo', products: ['ThinkSystem SR630 V2'] },
]
const SSD: { model: string; bytes: number }[] = [
  { model: 'SAMSUNG MZ7LH480HAHQ', bytes: 480 * GB },
  { model: 'INTEL SSDSC2KB960G8', bytes: 960 * GB },
  { model: 'Micron_5300_MTFDDAK1T9TDS', bytes: 1920 * GB },
  { model: 'SAMSUNG MZQL23T8HCLS', bytes: 3840 * GB },
  { model: 'KIOXIA KCD6XLUL1T92', bytes: 1920 * GB },
]
const HDD = [
  { model: 'ST4000NM0035-1V4107', bytes: 4000 * GB },
  { model: 'HGST HUS728T8TALE6L4', bytes: 8000 * GB },
]
const BOOT_NIC_NAMES = ['eno1', 'eno1np0', 'enp1s0f0', 'eth0']
const DATA_NIC_NAMES = ['ens1f0', 'ens2f0np0', 'enp65s0f0', 'eth1']

/** The smallest machine generated: every flavor minimum at or below these is met by every machine. */
export const FLEET_MINIMUMS = { cores: 8, memoryBytes: 32 * GiB, largestDiskBytes: 480 * GB }

export function discoveryFleet(count: number, seed = 20251121): SimulatedMachine[] {
  const random = prng(seed)
  const int = (below: number) => Math.floor(random() * below)
  const pick = <T>(list: readonly T[]): T => list[int(list.length)]!
  const hex = (digits: number) => Array.from({ length: digits }, () => int(16).toString(16)).join('')
  const byte = () => int(256).toString(16).padStart(2, '0')

  const uuids = new Set<string>()
  const macs = new Set<string>()
  const ips = new Set<string>()
  const unique = (seen: Set<string>, make: () => string): string => {
    for (;;) {
      const value = make()
      if (!seen.has(value)) {
        seen.add(value)
        return value
      }
    }
  }
  const newMac = () => unique(macs, () => `${pick(OUIS)}:${byte()}:${byte()}:${byte()}`)

  const fleet: SimulatedMachine[] = []
  for (let index = 0; index < count; index++) {
    // SMBIOS UUIDs as firmware reports them: upper case about half of the time (the engine stores lower case).
    const rawUuid = unique(uuids, () => `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`)
    const reportedUuid = random() < 0.5 ? rawUuid.toUpperCase() : rawUuid
    const bootMac = newMac()
    // Boot network: /24 racks in 10.0.0.0/8, gateway .1, hosts from .10.
    const bootIp = unique(ips, () => `10.${int(256)}.${int(256)}.${10 + int(240)}`)
    const rack = bootIp.split('.').slice(1, 3).join('-')
    const hostname = `r${rack}-h${bootIp.split('.')[3]}`
    const bootNic = {
      name: pick(BOOT_NIC_NAMES),
      mac: bootMac,
      ipv4: bootIp,
      cidrv4: `${bootIp}/24`,
      gateway: bootIp.replace(/\.\d+$/, '.1'),
      fqdn: [`${hostname}.dc1.example.com`],
    }
    // Second NIC on the storage network; about one in ten has no address (cable not patched).
    const dataIp = unique(ips, () => `172.${16 + int(16)}.${int(256)}.${1 + int(254)}`)
    const dataNic =
      random() < 0.1
        ? { name: pick(DATA_NIC_NAMES), mac: newMac() }
        : { name: pick(DATA_NIC_NAMES), mac: newMac(), ipv4: dataIp, cidrv4: `${dataIp}/12`, gateway: '172.16.0.1', fqdn: [`${hostname}.storage.example.com`] }
    // On about a third of the machines the boot NIC is not listed first (Enjoliver's interfaces[0] mistake).
    const bootNicNotFirst = random() < 0.35
    const interfaces = bootNicNotFirst ? [dataNic, bootNic] : [bootNic, dataNic]

    const diskCount = 1 + int(4)
    const disks: Record<string, unknown>[] = []
    const nvme = random() < 0.4
    for (let d = 0; d < diskCount; d++) {
      const kind = d >= 2 && random() < 0.5 ? pick(HDD) : pick(SSD)
      disks.push({
        path: nvme && d < 2 ? `/dev/nvme${d}n1` : `/dev/sd${String.fromCharCode(97 + d)}`,
        'size-bytes': kind.bytes,
        model: kind.model,
        serial: `${hex(4).toUpperCase()}${hex(8).toUpperCase()}`,
      })
    }
    const cpu = pick(CPUS)
    const cores = pick(cpu.cores)
    const memoryBytes = pick(MEMORY_GIB) * GiB
    const vendor = pick(VENDORS)
    const document: Record<string, unknown> = {
      'boot-info': { uuid: reportedUuid, mac: bootMac, 'random-id': `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}` },
      interfaces,
      disks,
      cpu: { model: cpu.model, cores, threads: cores * 2 },
      memory: { 'total-bytes': memoryBytes },
      firmware: random() < 0.8 ? 'uefi' : 'bios',
      dmi: { vendor: vendor.vendor, product: pick(vendor.products), serial: `${hex(3).toUpperCase()}${hex(4).toUpperCase()}` },
    }
    // The top-of-rack switch's LLDP neighbours, on about half of the machines (lldpd installed).
    if (random() < 0.5) {
      document.lldp = {
        data: {
          interfaces: interfaces.map((nic, port) => ({
            name: nic.name,
            port: { id: `Ethernet${1 + int(48)}/${port + 1}` },
            chassis: { id: `${pick(OUIS)}:${byte()}:${byte()}:${byte()}`, name: `tor-${rack}` },
          })),
        },
      }
    }
    fleet.push({
      uuid: rawUuid.toLowerCase(),
      bootMac,
      bootIp,
      bootNicNotFirst,
      cores,
      memoryBytes,
      largestDiskBytes: Math.max(...disks.map((disk) => disk['size-bytes'] as number)),
      diskCount,
      document,
    })
  }
  return fleet
}

/** The same report after a reboot: a new `random-id`, everything else unchanged. */
export function rebootedDocument(machine: SimulatedMachine, random: () => number): Record<string, unknown> {
  const hex = (digits: number) => Array.from({ length: digits }, () => Math.floor(random() * 16).toString(16)).join('')
  const bootInfo = machine.document['boot-info'] as Record<string, string>
  return { ...machine.document, 'boot-info': { ...bootInfo, 'random-id': `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}` } }
}
