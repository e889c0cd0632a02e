// The two responders and the reply builders, without sockets: each answer is a value.
import t from 'tap'
import { clientPacket, dhcpSettings } from '../../helpers/dhcp-lab.ts'
import { memoryLeaseStore } from '../../fakes/dhcp-lease-store.ts'
import { DEFAULT_IPXE_BINARIES, type BootServer } from '../../../src/core/dhcp/boot-decision.ts'
import { ipv4FromBytes, ipv4ToBytes, parseCidr } from '../../../src/lib/ipv4.ts'
import type { DhcpArrival } from '../../../src/transports/dhcp/dhcp-handler.ts'
import { BOOTREPLY, MESSAGE_TYPE, messageTypeOf, OPTION, optionIpv4, optionText, type DhcpPacket } from '../../../src/transports/dhcp/dhcp-packet.ts'
import { BROADCAST_PEER, peerOf } from '../../../src/transports/dhcp/dhcp-peer.ts'
import { nakReply, offerReply } from '../../../src/transports/dhcp/dhcp-replies.ts'
import { FullResponder } from '../../../src/transports/dhcp/full-responder.ts'
import { ProxyResponder, PXE_PORT } from '../../../src/transports/dhcp/proxy-responder.ts'

const SERVER = '10.0.0.1'
const settings = dhcpSettings({ serverAddress: SERVER, subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.101', router: SERVER, dnsServers: [SERVER, '10.0.0.2'], domain: 'lab.test', leaseSeconds: 600 })
const bootServer: BootServer = { address: SERVER, httpUrl: 'http://10.0.0.1:8080', binaries: DEFAULT_IPXE_BINARIES }
const RESERVED = { mac: '52:54:00:00:0e:01', ip: '10.0.0.50', hostname: 'reserved-node' }
const PXE_BIOS: Array<[number, Buffer]> = [
  [OPTION.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00000:UNDI:002001')],
  [OPTION.CLIENT_ARCH, Buffer.from([0, 0])],
  [OPTION.CLIENT_UUID, Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0x11)])],
]

const ip = (text: string) => ipv4ToBytes(text)
/** As the socket loop fills it in for a datagram on `localPort`. */
const arrival = (request: DhcpPacket, localPort = 67, sender = { address: '0.0.0.0', port: 68 }): DhcpArrival => ({ localPort, sender, peer: peerOf(request, 67) })

function fullResponder() {
  const leases = memoryLeaseStore([RESERVED])
  let now = new Date('2026-11-21T10:00:00Z')
  const responder = new FullResponder({ settings, leases, bootServer, clock: () => now })
  const ask = (request: DhcpPacket, on = arrival(request)) => responder.respond(request, on)
  return { leases, ask, advance: (seconds: number) => (now = new Date(now.getTime() + seconds * 1000)) }
}

t.test('full: a PXE DISCOVER is offered the first pool address with boot information, by broadcast', async (t) => {
  const { ask, leases } = fullResponder()
  const response = await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000a01', PXE_BIOS, { flags: 0 }))
  const reply = response!.reply!
  t.same(response!.destination, BROADCAST_PEER, 'no address yet: 255.255.255.255:68 even without the broadcast flag')
  t.equal(reply.op, BOOTREPLY)
  t.equal(messageTypeOf(reply), MESSAGE_TYPE.OFFER)
  t.equal(reply.yiaddr, '10.0.0.100')
  t.equal(optionIpv4(reply, OPTION.SERVER_ID), SERVER)
  t.equal(reply.options.get(OPTION.LEASE_TIME)?.readUInt32BE(0), 600)
  t.equal(reply.options.get(OPTION.RENEWAL_TIME)?.readUInt32BE(0), 300)
  t.equal(reply.options.get(OPTION.REBINDING_TIME)?.readUInt32BE(0), 525)
  t.equal(optionIpv4(reply, OPTION.SUBNET_MASK), '255.255.255.0')
  t.equal(optionIpv4(reply, OPTION.BROADCAST_ADDRESS), '10.0.0.255')
  t.equal(optionIpv4(reply, OPTION.ROUTER), SERVER)
  t.same([ipv4FromBytes(reply.options.get(OPTION.DNS_SERVERS)!, 0), ipv4FromBytes(reply.options.get(OPTION.DNS_SERVERS)!, 4)], [SERVER, '10.0.0.2'])
  t.equal(optionText(reply, OPTION.DOMAIN_NAME), 'lab.test')
  t.equal(reply.siaddr, SERVER, 'siaddr is the next server')
  t.equal(reply.sname, SERVER)
  t.equal(reply.file, 'undionly.kpxe', 'BOOTP file field')
  t.equal(optionText(reply, OPTION.BOOTFILE_NAME), 'undionly.kpxe', 'option 67')
  t.equal(optionText(reply, OPTION.TFTP_SERVER_NAME), SERVER, 'option 66')
  t.equal(optionText(reply, OPTION.VENDOR_CLASS), 'PXEClient')
  t.equal(reply.options.get(OPTION.VENDOR_SPECIFIC)?.toString('hex'), '060108ff', 'option 43: PXE discovery control 8')
  t.equal(reply.options.get(OPTION.CLIENT_UUID)?.toString('hex'), '00' + '11'.repeat(16), 'option 97 echoed')
  t.notOk(reply.options.has(OPTION.RELAY_AGENT_INFO))
  t.match(response!.outcome, { message: 'offer', level: 'info', requestType: 'DISCOVER', boot: 'tftp-binary', fields: { mac: '52:54:00:00:0a:01', type: 'DISCOVER', arch: 0, offered: { ip: '10.0.0.100', file: 'undionly.kpxe' }, addressFrom: 'pool' } })
  t.match(response!.outcome.fields.reason, /PXE firmware/)
  t.match(leases.leases.get('10.0.0.100'), { mac: '52:54:00:00:0a:01', state: 'offered' }, 'the address is held for the client')
})

t.test('full: a relayed DISCOVER is answered to giaddr:67 with option 82 echoed', async (t) => {
  const { ask } = fullResponder()
  const relayInfo = Buffer.from([1, 4, 0xde, 0xad, 0xbe, 0xef])
  const response = await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000a02', [[OPTION.RELAY_AGENT_INFO, relayInfo]], { giaddr: '10.0.9.1', hops: 1 }))
  t.same(response!.destination, { address: '10.0.9.1', port: 67 })
  t.equal(response!.reply!.giaddr, '10.0.9.1')
  t.same(response!.reply!.options.get(OPTION.RELAY_AGENT_INFO), relayInfo)
  t.equal(response!.reply!.file, '', 'no boot information for a client that does not netboot')
  t.notOk(response!.reply!.options.has(OPTION.BOOTFILE_NAME))
  t.match(response!.outcome, { boot: 'none', fields: { relay: '10.0.9.1' } })
})

t.test('full: REQUEST in SELECTING binds the offered address; RENEWING is answered by unicast', async (t) => {
  const { ask, leases } = fullResponder()
  const offer = await ask(clientPacket(MESSAGE_TYPE.DISCOVER))
  const offered = offer!.reply!.yiaddr
  const selecting = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [[OPTION.REQUESTED_IP, ip(offered)], [OPTION.SERVER_ID, ip(SERVER)]]))
  t.equal(messageTypeOf(selecting!.reply!), MESSAGE_TYPE.ACK)
  t.equal(selecting!.reply!.yiaddr, offered)
  t.same(selecting!.destination, BROADCAST_PEER)
  t.match(selecting!.outcome, { message: 'ack', fields: { state: 'selecting', offered: { ip: offered } } })
  t.match(leases.leases.get(offered), { state: 'bound' })

  const initReboot = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [[OPTION.REQUESTED_IP, ip(offered)]]))
  t.match(initReboot!.outcome, { message: 'ack', fields: { state: 'init-reboot' } })

  const renewing = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [], { ciaddr: offered }))
  t.equal(messageTypeOf(renewing!.reply!), MESSAGE_TYPE.ACK)
  t.same(renewing!.destination, { address: offered, port: 68 }, 'unicast to ciaddr:68')
  t.match(renewing!.outcome, { fields: { state: 'renewing' } })

  const broadcastFlag = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [], { ciaddr: offered, flags: 0x8000 }))
  t.same(broadcastFlag!.destination, BROADCAST_PEER, 'the broadcast flag wins over ciaddr')
})

t.test('full: a REQUEST naming another server gets no answer and frees our offer', async (t) => {
  const { ask, leases } = fullResponder()
  const offer = await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000d01'))
  const offered = offer!.reply!.yiaddr
  const response = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400000d01', [[OPTION.REQUESTED_IP, ip(offered)], [OPTION.SERVER_ID, ip('10.0.0.99')]]))
  t.notOk(response!.reply, 'no ACK, no NAK')
  t.notOk(response!.destination)
  t.match(response!.outcome, { message: 'request for another server: silent', fields: { serverId: '10.0.0.99', releasedOurOffer: true, reason: 'option 54 names another server' } })
  t.match(leases.leases.get(offered), { state: 'released' }, 'our offer was forgotten')
})

t.test('full: a REQUEST the policy refuses is NAKed by broadcast, or to the relay with the broadcast flag', async (t) => {
  const { ask } = fullResponder()
  const direct = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400001001', [[OPTION.REQUESTED_IP, ip('10.0.0.250')]], { ciaddr: '10.0.0.250' }))
  t.equal(messageTypeOf(direct!.reply!), MESSAGE_TYPE.NAK)
  t.equal(direct!.reply!.yiaddr, '0.0.0.0')
  t.same(direct!.destination, BROADCAST_PEER, 'broadcast although ciaddr is set and the flag is not')
  t.equal(optionText(direct!.reply!, OPTION.MESSAGE), '10.0.0.250 is outside the pool')
  t.equal(direct!.reply!.flags & 0x8000, 0)
  t.match(direct!.outcome, { message: 'nak', level: 'warn', fields: { requested: '10.0.0.250', code: 'OUTSIDE_POOL' } })

  const relayed = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400001001', [[OPTION.REQUESTED_IP, ip('10.1.0.5')]], { giaddr: '10.0.9.1' }))
  t.same(relayed!.destination, { address: '10.0.9.1', port: 67 })
  t.equal(relayed!.reply!.flags & 0x8000, 0x8000, 'RFC 2131 4.3.2: the relay must broadcast it')
  t.match(relayed!.outcome, { fields: { code: 'WRONG_NETWORK' } })

  const reserved = await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400001001', [[OPTION.REQUESTED_IP, ip(RESERVED.ip)]]))
  t.match(reserved!.outcome, { message: 'nak', fields: { code: 'RESERVED_FOR_OTHER' } })
})

t.test('full: a REQUEST that names no address is ignored', async (t) => {
  const { ask } = fullResponder()
  t.equal(await ask(clientPacket(MESSAGE_TYPE.REQUEST)), undefined)
})

t.test('full: RELEASE frees the address silently; one for another server is ignored', async (t) => {
  const { ask, leases } = fullResponder()
  const offered = (await ask(clientPacket(MESSAGE_TYPE.DISCOVER)))!.reply!.yiaddr
  await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [[OPTION.REQUESTED_IP, ip(offered)]]))
  t.equal(await ask(clientPacket(MESSAGE_TYPE.RELEASE, '525400000a01', [[OPTION.SERVER_ID, ip('10.0.0.99')]], { ciaddr: offered })), undefined)
  t.match(leases.leases.get(offered), { state: 'bound' })
  const response = await ask(clientPacket(MESSAGE_TYPE.RELEASE, '525400000a01', [[OPTION.SERVER_ID, ip(SERVER)]], { ciaddr: offered }))
  t.notOk(response!.reply)
  t.match(response!.outcome, { message: 'release', fields: { ip: offered, released: true, reason: 'client released its lease' } })
  t.match(leases.leases.get(offered), { state: 'released' })
})

t.test('full: a DECLINEd address is quarantined and not offered again', async (t) => {
  const { ask, leases } = fullResponder()
  const offered = (await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400001002')))!.reply!.yiaddr
  await ask(clientPacket(MESSAGE_TYPE.REQUEST, '525400001002', [[OPTION.REQUESTED_IP, ip(offered)]]))
  t.equal(await ask(clientPacket(MESSAGE_TYPE.DECLINE, '525400001002')), undefined, 'no option 50: ignored')
  const response = await ask(clientPacket(MESSAGE_TYPE.DECLINE, '525400001002', [[OPTION.REQUESTED_IP, ip(offered)], [OPTION.SERVER_ID, ip(SERVER)]]))
  t.notOk(response!.reply)
  t.match(response!.outcome, { message: 'decline', level: 'warn', fields: { ip: offered, quarantined: true } })
  t.match(leases.leases.get(offered), { state: 'declined' })
  const again = await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400001002'))
  t.not(again!.reply!.yiaddr, offered)
})

t.test('full: INFORM gets configuration by unicast, without address or lease time', async (t) => {
  const { ask } = fullResponder()
  const response = await ask(clientPacket(MESSAGE_TYPE.INFORM, '525400001003', PXE_BIOS, { ciaddr: '10.0.0.200' }))
  const reply = response!.reply!
  t.equal(messageTypeOf(reply), MESSAGE_TYPE.ACK)
  t.equal(reply.yiaddr, '0.0.0.0')
  t.equal(reply.ciaddr, '10.0.0.200')
  t.notOk(reply.options.has(OPTION.LEASE_TIME), 'RFC 2131 3.4')
  t.notOk(reply.options.has(OPTION.HOSTNAME))
  t.equal(optionIpv4(reply, OPTION.SUBNET_MASK), '255.255.255.0')
  t.equal(reply.file, 'undionly.kpxe')
  t.same(response!.destination, { address: '10.0.0.200', port: 68 })
  t.match(response!.outcome, { message: 'inform ack', fields: { ip: '10.0.0.200', offered: { file: 'undionly.kpxe' } } })
})

t.test('full: an exhausted pool answers nothing and says why', async (t) => {
  const { ask } = fullResponder()
  await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000a01'))
  await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000b01'))
  const response = await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000c01'))
  t.notOk(response!.reply)
  t.match(response!.outcome, { message: 'no offer', level: 'warn', fields: { code: 'POOL_EXHAUSTED', reason: /no free address/ } })
})

t.test('full: a reservation brings its address and hostname; iPXE gets the script and no-pxedhcp', async (t) => {
  const { ask } = fullResponder()
  const response = await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000e01', [[OPTION.USER_CLASS, Buffer.from('iPXE')]]))
  const reply = response!.reply!
  t.equal(reply.yiaddr, RESERVED.ip)
  t.equal(optionText(reply, OPTION.HOSTNAME), 'reserved-node')
  t.equal(reply.file, 'http://10.0.0.1:8080/boot.ipxe')
  t.equal(reply.options.get(OPTION.IPXE_ENCAPSULATED)?.toString('hex'), 'b00101', 'option 175.176 = 1')
  t.notOk(reply.options.has(OPTION.VENDOR_SPECIFIC), 'no option 43 for iPXE')
  t.match(response!.outcome, { boot: 'ipxe-script', fields: { addressFrom: 'reservation' } })
})

t.test('full: what a DHCP server does not answer', async (t) => {
  const { ask } = fullResponder()
  t.equal(await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000a01', [], { op: BOOTREPLY })), undefined, 'a BOOTREPLY')
  t.equal(await ask(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000a01', [], { htype: 6 })), undefined, 'not Ethernet')
  t.equal(await ask(clientPacket(MESSAGE_TYPE.OFFER)), undefined, 'a server message from a client')
  const bootp = clientPacket(MESSAGE_TYPE.DISCOVER)
  bootp.options.delete(OPTION.MESSAGE_TYPE)
  t.equal(await ask(bootp), undefined, 'BOOTP without option 53')
})

const proxy = new ProxyResponder({ serverAddress: SERVER, bootServer })

t.test('proxy: a PXE DISCOVER on port 67 gets boot information and no address', async (t) => {
  const request = clientPacket(MESSAGE_TYPE.DISCOVER, '525400001d01', PXE_BIOS, { flags: 0x8000 })
  const response = await proxy.respond(request, arrival(request))
  const reply = response!.reply!
  t.same(response!.destination, BROADCAST_PEER)
  t.equal(messageTypeOf(reply), MESSAGE_TYPE.OFFER)
  t.equal(reply.yiaddr, '0.0.0.0', 'a proxy offer carries no address')
  t.equal(reply.ciaddr, '0.0.0.0')
  t.equal(reply.siaddr, SERVER)
  t.equal(reply.file, 'undionly.kpxe')
  t.equal(optionIpv4(reply, OPTION.SERVER_ID), SERVER)
  t.equal(optionText(reply, OPTION.VENDOR_CLASS), 'PXEClient')
  t.equal(reply.options.get(OPTION.VENDOR_SPECIFIC)?.toString('hex'), '060108ff')
  t.equal(reply.options.get(OPTION.CLIENT_UUID)?.toString('hex'), '00' + '11'.repeat(16), 'option 97 echoed')
  t.notOk(reply.options.has(OPTION.LEASE_TIME), 'no lease time')
  t.notOk(reply.options.has(OPTION.SUBNET_MASK), 'no network configuration')
  t.match(response!.outcome, { message: 'proxy offer', requestType: 'DISCOVER', boot: 'tftp-binary', fields: { offered: { ip: null, file: 'undionly.kpxe' } } })
})

t.test('proxy: a REQUEST on port 4011 is ACKed straight to its sender', async (t) => {
  const request = clientPacket(MESSAGE_TYPE.REQUEST, '525400001d01', PXE_BIOS, { ciaddr: '10.0.0.120', flags: 0x8000 })
  const response = await proxy.respond(request, arrival(request, PXE_PORT, { address: '10.0.0.120', port: 4011 }))
  t.same(response!.destination, { address: '10.0.0.120', port: 4011 }, 'not broadcast, whatever the flag')
  t.equal(messageTypeOf(response!.reply!), MESSAGE_TYPE.ACK)
  t.equal(response!.reply!.ciaddr, '10.0.0.120')
  t.equal(response!.reply!.yiaddr, '0.0.0.0')
  t.equal(response!.reply!.options.get(OPTION.VENDOR_SPECIFIC)?.toString('hex'), '060108ff')
  t.match(response!.outcome, { message: 'proxy ack (port 4011)' })
  const inform = clientPacket(MESSAGE_TYPE.INFORM, '525400001d01', PXE_BIOS, { ciaddr: '10.0.0.120' })
  t.ok((await proxy.respond(inform, arrival(inform, PXE_PORT, { address: '10.0.0.120', port: 68 })))?.reply, 'INFORM on 4011 too')
})

t.test('proxy: only netboot clients, only DISCOVER on 67, only REQUEST or INFORM on 4011', async (t) => {
  const plain = clientPacket(MESSAGE_TYPE.DISCOVER, '525400001c01')
  t.equal(await proxy.respond(plain, arrival(plain)), undefined, 'a client that does not netboot')
  const request = clientPacket(MESSAGE_TYPE.REQUEST, '525400001d01', PXE_BIOS, { ciaddr: '10.0.0.120' })
  t.equal(await proxy.respond(request, arrival(request)), undefined, 'REQUEST on 67 is the address server’s')
  const discover = clientPacket(MESSAGE_TYPE.DISCOVER, '525400001d01', PXE_BIOS)
  t.equal(await proxy.respond(discover, arrival(discover, PXE_PORT)), undefined, 'DISCOVER on 4011')
})

t.test('proxy: UEFI HTTP boot says HTTPClient without option 43; iPXE is told PXEClient with it', async (t) => {
  const http = clientPacket(MESSAGE_TYPE.DISCOVER, '525400001e01', [[OPTION.VENDOR_CLASS, Buffer.from('HTTPClient:Arch:00016:UNDI:003001')], [OPTION.CLIENT_ARCH, Buffer.from([0, 16])]])
  const httpReply = (await proxy.respond(http, arrival(http)))!.reply!
  t.equal(optionText(httpReply, OPTION.VENDOR_CLASS), 'HTTPClient')
  t.equal(httpReply.file, 'http://10.0.0.1:8080/pxe/ipxe.efi')
  t.notOk(httpReply.options.has(OPTION.VENDOR_SPECIFIC))
  const ipxe = clientPacket(MESSAGE_TYPE.DISCOVER, '525400001e02', [[OPTION.USER_CLASS, Buffer.from('iPXE')]])
  const ipxeReply = (await proxy.respond(ipxe, arrival(ipxe)))!.reply!
  t.equal(optionText(ipxeReply, OPTION.VENDOR_CLASS), 'PXEClient', 'a proxy offer always names PXEClient when the decision names none')
  t.equal(ipxeReply.options.get(OPTION.VENDOR_SPECIFIC)?.toString('hex'), '060108ff')
  t.equal(ipxeReply.options.get(OPTION.IPXE_ENCAPSULATED)?.toString('hex'), 'b00101')
})

t.test('replies: a boot file too long for the BOOTP field travels only in option 67', async (t) => {
  const network = { serverAddress: SERVER, leaseSeconds: 600, subnet: parseCidr('10.0.0.0/24')!, router: '', dnsServers: [], domain: '' }
  const filename = `http://10.0.0.1:8080/${'x'.repeat(120)}/boot.ipxe`
  const decision = { kind: 'ipxe-script' as const, filename, nextServer: SERVER, ipxeNoProxyDhcp: true, reason: 'test' }
  const reply = offerReply(clientPacket(MESSAGE_TYPE.DISCOVER), { ip: '10.0.0.100', hostname: null }, decision, network)
  t.equal(reply.file, '')
  t.equal(optionText(reply, OPTION.BOOTFILE_NAME), filename)
  t.notOk(reply.options.has(OPTION.ROUTER), 'no router configured: no option 3')
  t.notOk(reply.options.has(OPTION.DNS_SERVERS))
  t.notOk(reply.options.has(OPTION.DOMAIN_NAME))
})

t.test('replies: a NAK carries at most 255 bytes of explanation and only echoes option 82 through a relay', async (t) => {
  const request = clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [[OPTION.RELAY_AGENT_INFO, Buffer.from([1, 1, 7])]])
  const reply = nakReply(request, 'y'.repeat(400), SERVER)
  t.equal(reply.options.get(OPTION.MESSAGE)?.length, 255)
  t.notOk(reply.options.has(OPTION.RELAY_AGENT_INFO), 'not relayed: option 82 is not ours to send')
  t.equal(reply.xid, request.xid)
  t.same(reply.chaddr, request.chaddr)
})

t.test('peer: RFC 2131 4.1 with broadcast for clients without an address', async (t) => {
  t.same(peerOf(clientPacket(MESSAGE_TYPE.DISCOVER, '525400000a01', [], { giaddr: '10.0.9.1', ciaddr: '10.0.0.5' }), 1067), { address: '10.0.9.1', port: 1067 }, 'a relay, on the server port')
  t.same(peerOf(clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [], { ciaddr: '10.0.0.5' }), 67), { address: '10.0.0.5', port: 68 })
  t.same(peerOf(clientPacket(MESSAGE_TYPE.REQUEST, '525400000a01', [], { ciaddr: '10.0.0.5', flags: 0x8000 }), 67), BROADCAST_PEER)
  t.same(peerOf(clientPacket(MESSAGE_TYPE.DISCOVER), 67), { address: '255.255.255.255', port: 68 }, 'the limited broadcast, not the subnet one')
})
