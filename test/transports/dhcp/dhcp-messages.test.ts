// NAK, DECLINE, INFORM and relays on the wire: a scripted raw client in its own namespace.
import path from 'node:path'
import t from 'tap'
import { removeTree } from '../../helpers/engine.ts'
import { clientPacket, dhcpSettings, runProbe, scratchDir, startServerChild, type ServerChild } from '../../helpers/dhcp-lab.ts'
import { createLab, randomLabSubnet } from '../../helpers/netns.ts'
import { formatDhcpPacket, MESSAGE_TYPE, messageTypeOf, OPTION, parseDhcpPacket, type DhcpPacket } from '../../../src/transports/dhcp/dhcp-packet.ts'
import { ipv4ToBytes } from '../../../src/lib/ipv4.ts'

const net = randomLabSubnet()
const SERVER = `${net}.1`
const PROBE = `${net}.200`
const dir = scratchDir()
const lab = createLab([{ name: 'server', address: `${SERVER}/24` }, { name: 'probe', address: `${PROBE}/24` }])
t.teardown(() => {
  lab.destroy()
  removeTree(dir)
})
const settings = dhcpSettings({ serverAddress: SERVER, subnet: `${net}.0/24`, rangeStart: `${net}.100`, rangeEnd: `${net}.109`, leaseSeconds: 600 })
let server: ServerChild
t.before(async () => {
  server = await startServerChild(lab, 'server', { db: path.join(dir, 'slipway.db'), settings, reservations: [] })
})
t.teardown(async () => {
  if (server?.child.exitCode === null) await server.stop()
})

function message(type: number, macHex: string, options: [number, Buffer][] = [], fields: Partial<DhcpPacket> = {}): string {
  return formatDhcpPacket(clientPacket(type, macHex, options, fields)).toString('hex')
}
// The probe has no default route, so it broadcasts to the subnet (a send to 255.255.255.255 would fail).
const broadcast = { address: `${net}.255`, port: 67 }
const replies = (result: { replies: { bytes: Buffer; from: string; port: number }[] }) =>
  result.replies.map((reply) => ({ ...reply, packet: parseDhcpPacket(reply.bytes) }))

t.test('a REQUEST for an address outside the pool is NAKed', async (t) => {
  const result = await runProbe(lab, 'probe', dir, {
    sends: [{ hex: message(MESSAGE_TYPE.REQUEST, '525400001001', [[OPTION.REQUESTED_IP, ipv4ToBytes(`${net}.250`)]], { flags: 0x8000 }), to: broadcast, atMs: 0 }],
    listenMs: 1000,
  })
  const [nak] = replies(result)
  t.equal(nak && messageTypeOf(nak.packet), MESSAGE_TYPE.NAK)
  t.equal(nak?.packet.yiaddr, '0.0.0.0')
})

t.test('a DECLINEd address is not offered again', async (t) => {
  const mac = '525400001002'
  const first = replies(await runProbe(lab, 'probe', dir, { sends: [{ hex: message(MESSAGE_TYPE.DISCOVER, mac, [], { flags: 0x8000 }), to: broadcast, atMs: 0 }], listenMs: 800 }))
  const offered = first[0]?.packet.yiaddr
  t.equal(first[0] && messageTypeOf(first[0].packet), MESSAGE_TYPE.OFFER)
  const declined = replies(
    await runProbe(lab, 'probe', dir, {
      sends: [
        { hex: message(MESSAGE_TYPE.REQUEST, mac, [[OPTION.REQUESTED_IP, ipv4ToBytes(offered!)], [OPTION.SERVER_ID, ipv4ToBytes(SERVER)]], { flags: 0x8000 }), to: broadcast, atMs: 0 },
        { hex: message(MESSAGE_TYPE.DECLINE, mac, [[OPTION.REQUESTED_IP, ipv4ToBytes(offered!)], [OPTION.SERVER_ID, ipv4ToBytes(SERVER)]]), to: broadcast, atMs: 400 },
        { hex: message(MESSAGE_TYPE.DISCOVER, mac, [], { flags: 0x8000 }), to: broadcast, atMs: 800 },
      ],
      listenMs: 800,
    }),
  )
  t.same(declined.map((reply) => messageTypeOf(reply.packet)), [MESSAGE_TYPE.ACK, MESSAGE_TYPE.OFFER], 'ACK, no answer to the DECLINE, then a new OFFER')
  t.ok(declined[1] && declined[1].packet.yiaddr !== offered, `the new offer (${declined[1]?.packet.yiaddr}) is not the declined ${offered}`)
})

t.test('INFORM is answered by unicast with configuration but no address or lease time', async (t) => {
  const [ack] = replies(await runProbe(lab, 'probe', dir, { sends: [{ hex: message(MESSAGE_TYPE.INFORM, '525400001003', [], { ciaddr: PROBE }), to: { address: SERVER, port: 67 }, atMs: 0 }], listenMs: 800 }))
  t.equal(ack && messageTypeOf(ack.packet), MESSAGE_TYPE.ACK)
  t.equal(ack?.packet.yiaddr, '0.0.0.0')
  t.notOk(ack?.packet.options.has(OPTION.LEASE_TIME), 'no lease time (RFC 2131 3.4)')
})

t.test('a relayed DISCOVER is answered to the relay (giaddr:67)', async (t) => {
  const result = await runProbe(lab, 'probe', dir, {
    sends: [{ hex: message(MESSAGE_TYPE.DISCOVER, '525400001004', [], { giaddr: PROBE, hops: 1 }), to: { address: SERVER, port: 67 }, atMs: 0 }],
    listenMs: 800,
    bindPort: 67,
  })
  const [offer] = replies(result)
  t.equal(offer && messageTypeOf(offer.packet), MESSAGE_TYPE.OFFER)
  t.equal(offer?.port, 67, 'from the server port, unicast to the relay')
  t.equal(offer?.packet.giaddr, PROBE)
})
