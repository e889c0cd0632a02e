import path from 'node:path'
import t from 'tap'
import { removeTree } from '../../helpers/engine.ts'
import { dhcpSettings, runProbe, runToEnd, scratchDir, startClient, startServerChild, writeEnvScript, type ServerChild } from '../../helpers/dhcp-lab.ts'
import { createLab, randomLabSubnet } from '../../helpers/netns.ts'
import { emptyPacket, formatDhcpPacket, MESSAGE_TYPE, messageTypeOf, OPTION, optionIpv4, optionText, parseDhcpPacket, type DhcpPacket } from '../../../src/transports/dhcp/dhcp-packet.ts'
import { sleep } from '../../helpers/wait.ts'

const net = randomLabSubnet()
const ENGINE = `${net}.1`
const DNSMASQ = `${net}.2`
const PROBE = `${net}.200`
const dir = scratchDir()
const lab = createLab([
  { name: 'engine', address: `${ENGINE}/24` },
  { name: 'dnsmasq', address: `${DNSMASQ}/24` },
  { name: 'probe', address: `${PROBE}/24` },
  { name: 'client', mac: '52:54:00:00:1c:01' },
])
t.teardown(() => {
  lab.destroy()
  removeTree(dir)
})

let engine: ServerChild
let dnsmasqLogs = () => ''
t.before(async () => {
  // The site's own DHCP server: addresses only, no boot information.
  const dnsmasq = startClient(lab, 'dnsmasq', '/usr/sbin/dnsmasq', [
    '--no-daemon', '--port=0', '--conf-file=/dev/null', `--pid-file=${path.join(dir, 'dnsmasq.pid')}`, '--user=root',
    `--dhcp-range=${net}.100,${net}.150,255.255.255.0,10m`, '--interface=eth0', '--bind-interfaces', '--leasefile-ro', '--log-dhcp', '--log-facility=-', '--no-ping',
  ])
  t.teardown(() => dnsmasq.stop())
  dnsmasqLogs = () => dnsmasq.logs()
  const server = await startServerChild(lab, 'engine', { db: path.join(dir, 'slipway.db'), settings: dhcpSettings({ mode: 'proxy', serverAddress: ENGINE, subnet: `${net}.0/24` }) })
  t.teardown(() => server.stop())
  engine = server
  await sleep(500) // dnsmasq has no ready line
})

function pxePacket(type: number, ciaddr = '0.0.0.0'): DhcpPacket {
  const packet = emptyPacket()
  packet.xid = 0xc0ffee
  packet.flags = 0x8000
  packet.ciaddr = ciaddr
  Buffer.from('525400001d01', 'hex').copy(packet.chaddr)
  packet.options.set(OPTION.MESSAGE_TYPE, Buffer.from([type]))
  packet.options.set(OPTION.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00000:UNDI:002001'))
  packet.options.set(OPTION.CLIENT_ARCH, Buffer.from([0, 0]))
  packet.options.set(OPTION.CLIENT_UUID, Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0x42)]))
  packet.options.set(OPTION.PARAMETER_REQUEST_LIST, Buffer.from([1, 3, 6, 43, 54, 60, 66, 67, 97, 128, 175]))
  return packet
}

t.test('a PXE client gets its address from dnsmasq and its boot information from the engine', async (t) => {
  const result = await runProbe(lab, 'probe', dir, {
    sends: [
      { hex: formatDhcpPacket(pxePacket(MESSAGE_TYPE.DISCOVER)).toString('hex'), to: { address: `${net}.255`, port: 67 }, atMs: 0 },
      { hex: formatDhcpPacket(pxePacket(MESSAGE_TYPE.REQUEST, PROBE)).toString('hex'), to: { address: ENGINE, port: 4011 }, atMs: 1000 },
    ],
    listenMs: 1500,
  })
  const replies = result.replies.map((reply) => ({ ...reply, packet: parseDhcpPacket(reply.bytes) }))
  const offers = replies.filter((reply) => messageTypeOf(reply.packet) === MESSAGE_TYPE.OFFER)
  const fromDnsmasq = offers.find((offer) => optionIpv4(offer.packet, OPTION.SERVER_ID) === DNSMASQ)
  const fromEngine = offers.find((offer) => optionIpv4(offer.packet, OPTION.SERVER_ID) === ENGINE)
  t.ok(fromDnsmasq, 'dnsmasq offered')
  if (!fromDnsmasq) t.comment(dnsmasqLogs())
  t.match(fromDnsmasq?.packet.yiaddr, new RegExp(`^${net.replaceAll('.', '\\.')}\\.1[0-5]\\d$`), 'the address comes from dnsmasq')
  t.ok(fromEngine, 'the engine offered')
  const offer = fromEngine!.packet
  t.equal(offer.yiaddr, '0.0.0.0', 'a proxy offer carries no address')
  t.equal(offer.siaddr, ENGINE)
  t.equal(offer.file, 'undionly.kpxe')
  t.equal(optionText(offer, OPTION.BOOTFILE_NAME), 'undionly.kpxe')
  t.equal(optionText(offer, OPTION.VENDOR_CLASS), 'PXEClient')
  t.equal(offer.options.get(OPTION.VENDOR_SPECIFIC)?.toString('hex'), '060108ff', 'option 43 sub-option 6 = 8')
  t.equal(offer.options.get(OPTION.CLIENT_UUID)?.toString('hex'), '00' + '42'.repeat(16), 'option 97 echoed')
  t.notOk(offer.options.has(OPTION.LEASE_TIME), 'no lease time')

  const ack = replies.find((reply) => messageTypeOf(reply.packet) === MESSAGE_TYPE.ACK && reply.port === 4011)
  t.ok(ack, 'the engine answered the REQUEST on port 4011, unicast')
  t.equal(ack?.from, ENGINE)
  t.equal(ack?.packet.yiaddr, '0.0.0.0')
  t.equal(ack?.packet.file, 'undionly.kpxe')
  t.equal(ack?.packet.siaddr, ENGINE)
  t.equal(ack?.packet.options.get(OPTION.VENDOR_SPECIFIC)?.toString('hex'), '060108ff')
})

t.test('a client that does not netboot gets nothing from the engine', async (t) => {
  const server = engine
  const before = (await server.stats()) as { replied: number }
  const run = await runToEnd(lab, 'client', '/usr/sbin/udhcpc', ['-i', 'eth0', '-n', '-q', '-f', '-t', '3', '-T', '1', '-s', writeEnvScript(dir)])
  const bound = run.events.find((event) => event.event === 'bound')
  t.equal(bound?.env.serverid, DNSMASQ, 'leased by dnsmasq')
  t.notOk(bound?.env.boot_file, 'no boot file')
  const after = (await server.stats()) as { replied: number }
  t.equal(after.replied, before.replied, 'the engine sent nothing')
})
