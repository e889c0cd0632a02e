import t, { type Test } from 'tap'
import { SlipwayError } from '../../../src/core/errors.ts'
import { MAX_INTERFACES, parseDiscovery } from '../../../src/core/machines/discovery-document.ts'

const UUID = '4C4C4544-0042-3510-8050-B4C04F4E3432'
type Nic = { name: string; mac: string; ipv4?: string; netmask?: string; cidrv4?: string; gateway?: string; fqdn?: string[] }
const document = () => ({
  'boot-info': { uuid: UUID, mac: '52-54-00-AA-00-02', 'random-id': 'b7f5c1e0' },
  interfaces: <Nic[]>[
    { name: 'eth0', mac: '52:54:00:aa:00:01', ipv4: '10.0.0.11', netmask: '255.255.255.0', gateway: '10.0.0.1', fqdn: ['a.example'] },
    { name: 'eth1', mac: '525400aa0002', ipv4: '172.20.0.11', cidrv4: '172.20.0.11/21' },
  ],
  disks: [{ path: '/dev/sda', 'size-bytes': 21474836480, model: 'QEMU HARDDISK' }],
  cpu: { model: 'EPYC', cores: 8, threads: 16 },
  memory: { 'total-bytes': 8589934592 },
  firmware: 'uefi',
  dmi: { vendor: 'QEMU' },
  lldp: { data: { interfaces: [{ name: 'eth0', port: { id: 'Ethernet1/3' }, chassis: { id: '00:11:22:33:44:55', name: 'tor-1' } }] } },
  'ignition-journal': ['line'],
})

const failsWith = (t: Test, input: unknown, code: string, message?: RegExp) => {
  try {
    parseDiscovery(input)
    t.fail(`expected ${code}`)
  } catch (error) {
    t.ok(error instanceof SlipwayError, String(error))
    t.equal((error as SlipwayError).code, code)
    t.equal((error as SlipwayError).kind, 'invalid')
    if (message) t.match((error as SlipwayError).message, message)
  }
}

t.test('a full Enjoliver document is normalised', async (t) => {
  const discovery = parseDiscovery(document())
  t.equal(discovery.uuid, UUID.toLowerCase())
  t.equal(discovery.bootMac, '52:54:00:aa:00:02')
  t.equal(discovery.bootRandomId, 'b7f5c1e0')
  t.same(discovery.interfaces[0], { name: 'eth0', mac: '52:54:00:aa:00:01', ipv4: '10.0.0.11', cidr: '10.0.0.11/24', gateway: '10.0.0.1', fqdn: ['a.example'], isBoot: false })
  t.same(discovery.interfaces[1], { name: 'eth1', mac: '52:54:00:aa:00:02', ipv4: '172.20.0.11', cidr: '172.20.0.11/21', gateway: null, fqdn: [], isBoot: true })
  t.same(discovery.disks, [{ path: '/dev/sda', sizeBytes: 21474836480, model: 'QEMU HARDDISK', serial: null }])
  t.same(discovery.facts, {
    cpu: { model: 'EPYC', cores: 8, threads: 16 },
    memory: { totalBytes: 8589934592 },
    firmware: 'uefi',
    dmi: { vendor: 'QEMU' },
    lldp: { interfaces: [{ name: 'eth0', portId: 'Ethernet1/3', chassisId: '00:11:22:33:44:55', chassisName: 'tor-1' }] },
  })
})

t.test('the boot interface is chosen by MAC, not by position', async (t) => {
  const discovery = parseDiscovery(document())
  t.same(discovery.interfaces.map((nic) => nic.isBoot), [false, true], 'interfaces[1] carries boot-info.mac')
  const duplicated = document()
  duplicated.interfaces.push({ name: 'bond0', mac: '52:54:00:aa:00:02', ipv4: '172.20.0.12', cidrv4: '172.20.0.12/21' })
  t.same(parseDiscovery(duplicated).interfaces.map((nic) => nic.isBoot), [false, true, false], 'only the first NIC with the boot MAC')
})

t.test('a minimal document is enough', async (t) => {
  const discovery = parseDiscovery({ 'boot-info': { uuid: UUID, mac: '52:54:00:aa:00:01' }, interfaces: [{ name: 'eth0', mac: '52:54:00:aa:00:01' }] })
  t.same(discovery.disks, [])
  t.same(discovery.facts, {})
  t.equal(discovery.bootRandomId, null)
})

t.test('bad documents are refused with a stable code', async (t) => {
  const without = (mutate: (d: ReturnType<typeof document>) => void) => {
    const d = document()
    mutate(d)
    return d
  }
  failsWith(t, without((d) => delete (d['boot-info'] as Partial<typeof d['boot-info']>).uuid), 'INVALID_DISCOVERY', /boot-info/)
  failsWith(t, without((d) => (d['boot-info'].uuid = 'not-a-uuid')), 'INVALID_DISCOVERY', /uuid/)
  failsWith(t, without((d) => (d['boot-info'].mac = '52:54:00:zz:00:02')), 'INVALID_MAC', /boot-info\.mac/)
  failsWith(t, without((d) => (d.interfaces[0]!.mac = '52:54:00:aa:00')), 'INVALID_MAC', /interfaces\.0\.mac/)
  failsWith(t, without((d) => (d['boot-info'].mac = '52:54:00:aa:00:99')), 'BOOT_INTERFACE_MISSING', /52:54:00:aa:00:99/)
  failsWith(t, without((d) => (d.interfaces = Array.from({ length: MAX_INTERFACES + 1 }, (_, i) => ({ name: `eth${i}`, mac: '52:54:00:aa:00:02' })))), 'INVALID_DISCOVERY', /interfaces/)
  failsWith(t, without((d) => (d.interfaces = [])), 'INVALID_DISCOVERY')
  failsWith(t, without((d) => ((d.disks[0] as Record<string, unknown>)['size-bytes'] = '20G')), 'INVALID_DISCOVERY', /disks\.0\.size-bytes/)
  failsWith(t, without((d) => ((d as Record<string, unknown>).interfaces = { name: 'eth0' })), 'INVALID_DISCOVERY')
  failsWith(t, without((d) => ((d as Record<string, unknown>).firmware = 'coreboot')), 'INVALID_DISCOVERY', /firmware/)
  failsWith(t, without((d) => ((d.interfaces[0] as Record<string, unknown>).fqdn = 'a.example')), 'INVALID_DISCOVERY', /fqdn/)
  failsWith(t, without((d) => ((d as Record<string, unknown>).surprise = 1)), 'INVALID_DISCOVERY', /surprise/)
  failsWith(t, without((d) => (d.interfaces[0]!.name = 'x'.repeat(65))), 'INVALID_DISCOVERY', /name/)
  failsWith(t, without((d) => (d.interfaces[0]!.ipv4 = '10.0.0.300')), 'INVALID_IP')
  failsWith(t, without((d) => (d.interfaces[0]!.netmask = '255.0.255.0')), 'INVALID_IP')
  failsWith(t, without((d) => d.disks.push({ path: '/dev/sda', 'size-bytes': 1, model: 'x' })), 'DUPLICATE_DISK')
  failsWith(t, null, 'INVALID_DISCOVERY')
  failsWith(t, [], 'INVALID_DISCOVERY')
})

t.test("the BMC the agent read is kept in the facts, normalised; Enjoliver's agent never sends it", async (t) => {
  const reported = parseDiscovery({ ...document(), bmc: { mac: '00-17-A4-49-AB-70', ipv4: '192.168.1.41', ipv6: '2001:DB8::41', 'ipv4-assignment': 'dhcp', channel: 2, source: 'ipmitool lan print' } })
  t.same(reported.facts.bmc, { mac: '00:17:a4:49:ab:70', ipv4: '192.168.1.41', ipv6: '2001:db8::41', ipv4Assignment: 'dhcp', channel: 2, source: 'ipmitool lan print' })
  t.same(parseDiscovery({ ...document(), bmc: { mac: '00:17:a4:49:ab:70', source: 'ipmitool lan print' } }).facts.bmc, { mac: '00:17:a4:49:ab:70', source: 'ipmitool lan print' }, 'a BMC without an address yet: its MAC alone')
  t.notOk('bmc' in parseDiscovery(document()).facts, 'absent stays absent')
})

t.test('a hostile or broken bmc object is refused with a stable code', async (t) => {
  const withBmc = (bmc: unknown) => ({ ...document(), bmc })
  const good = { mac: '00:17:a4:49:ab:70', ipv4: '192.168.1.41', source: 'ipmitool lan print' }
  failsWith(t, withBmc({ ...good, ipv4: '999.1.1.1' }), 'INVALID_IP', /bmc\.ipv4/)
  failsWith(t, withBmc({ ...good, ipv4: '10.10.10.10.' }), 'INVALID_IP', /bmc\.ipv4/)
  failsWith(t, withBmc({ ...good, ipv4: '0.0.0.0' }), 'INVALID_IP', /leave ipv4 out/)
  failsWith(t, withBmc({ ...good, ipv4: 'x'.repeat(10_000) }), 'INVALID_DISCOVERY', /bmc\/ipv4|bmc\.ipv4/)
  failsWith(t, withBmc({ ...good, ipv6: 'fe80::1' }), 'INVALID_IP', /link-local/)
  failsWith(t, withBmc({ ...good, ipv6: '::' }), 'INVALID_IP', /bmc\.ipv6/)
  failsWith(t, withBmc({ ...good, ipv6: '2001:db8::zz' }), 'INVALID_IP', /bmc\.ipv6/)
  failsWith(t, withBmc({ ...good, ipv6: '2001:db8::1%eth0' }), 'INVALID_IP', /bmc\.ipv6/)
  failsWith(t, withBmc({ ...good, mac: '00:00:00:00:00:00' }), 'INVALID_MAC', /bmc\.mac/)
  failsWith(t, withBmc({ ...good, mac: 'nope' }), 'INVALID_MAC', /bmc\.mac/)
  failsWith(t, withBmc({ ipv4: '192.168.1.41', source: 'ipmitool lan print' }), 'INVALID_DISCOVERY', /mac/)
  failsWith(t, withBmc({ ...good, source: 'ipmitool\nlan print' }), 'INVALID_DISCOVERY', /source/)
  failsWith(t, withBmc({ ...good, channel: 0 }), 'INVALID_DISCOVERY', /channel/)
  failsWith(t, withBmc({ ...good, channel: '1' }), 'INVALID_DISCOVERY', /channel/)
  failsWith(t, withBmc({ ...good, 'ipv4-assignment': 'magic' }), 'INVALID_DISCOVERY', /ipv4-assignment/)
  failsWith(t, withBmc({ ...good, password: 'calvin' }), 'INVALID_DISCOVERY', /password/)
  failsWith(t, withBmc({ ...good, ipv4: { nested: [{ deeper: '10.0.0.1' }] } }), 'INVALID_DISCOVERY', /ipv4/)
  failsWith(t, withBmc([good]), 'INVALID_DISCOVERY', /bmc/)
  failsWith(t, withBmc('192.168.1.41'), 'INVALID_DISCOVERY', /bmc/)
})
