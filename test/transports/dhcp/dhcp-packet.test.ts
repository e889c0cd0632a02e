import t from 'tap'
import { clientArchOf, clientMacOf, DhcpCodecError, emptyPacket, formatDhcpPacket, MESSAGE_TYPE, messageTypeOf, OPTION, optionIpv4, optionText, parseDhcpPacket, userClassesOf } from '../../../src/transports/dhcp/dhcp-packet.ts'

function discover() {
  const packet = emptyPacket()
  packet.xid = 0xdeadbeef
  Buffer.from('525400aabbcc', 'hex').copy(packet.chaddr)
  packet.options.set(OPTION.MESSAGE_TYPE, Buffer.from([MESSAGE_TYPE.DISCOVER]))
  packet.options.set(OPTION.CLIENT_ID, Buffer.from([1, 0x52, 0, 0, 0, 0, 0]))
  packet.options.set(OPTION.CLIENT_ARCH, Buffer.from([0, 7]))
  packet.options.set(OPTION.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00007:UNDI:003016'))
  return packet
}

t.test('a packet survives a round trip', async (t) => {
  const bytes = formatDhcpPacket(discover())
  t.ok(bytes.length >= 300, 'padded to the BOOTP minimum')
  const parsed = parseDhcpPacket(bytes)
  t.equal(parsed.xid, 0xdeadbeef)
  t.equal(messageTypeOf(parsed), MESSAGE_TYPE.DISCOVER)
  t.equal(clientMacOf(parsed), '52:54:00:aa:bb:cc')
  t.equal(clientArchOf(parsed), 7)
  t.equal(optionText(parsed, OPTION.VENDOR_CLASS), 'PXEClient:Arch:00007:UNDI:003016')
  t.equal(parsed.options.get(OPTION.CLIENT_ID)?.toString('hex'), '01520000000000', 'option 61 stays binary, NULs included')
})

t.test('pad bytes between options and a missing END are tolerated', async (t) => {
  const bytes = formatDhcpPacket(discover())
  const withPads = Buffer.concat([bytes.subarray(0, 240), Buffer.alloc(50, 0), bytes.subarray(240, bytes.indexOf(255, 240))])
  const parsed = parseDhcpPacket(withPads)
  t.equal(messageTypeOf(parsed), MESSAGE_TYPE.DISCOVER)
  t.equal(clientArchOf(parsed), 7)
})

t.test('repeated options are concatenated (RFC 3396) and long values split on output', async (t) => {
  const packet = discover()
  packet.options.set(OPTION.PARAMETER_REQUEST_LIST, Buffer.from(Array.from({ length: 300 }, (_, i) => i % 254 + 1)))
  const parsed = parseDhcpPacket(formatDhcpPacket(packet))
  t.equal(parsed.options.get(OPTION.PARAMETER_REQUEST_LIST)?.length, 300)
})

t.test('malformed datagrams are rejected with a stable code, never a crash', async (t) => {
  const bytes = formatDhcpPacket(discover())
  t.throws(() => parseDhcpPacket(bytes.subarray(0, 100)), new DhcpCodecError('TRUNCATED', ''))
  const noCookie = Buffer.from(bytes)
  noCookie[236] = 0
  t.throws(() => parseDhcpPacket(noCookie), { code: 'NO_MAGIC_COOKIE' })
  const overrun = Buffer.concat([bytes.subarray(0, 240), Buffer.from([60, 200, 1, 2])])
  t.throws(() => parseDhcpPacket(overrun), { code: 'OPTION_OVERRUN' })
  const bigHlen = Buffer.from(bytes)
  bigHlen[2] = 40
  t.throws(() => parseDhcpPacket(bigHlen), { code: 'BAD_HLEN' })
})

t.test('typed readers return undefined for values of the wrong size', async (t) => {
  const packet = discover()
  packet.options.set(OPTION.SERVER_ID, Buffer.from([1, 2, 3]))
  packet.options.set(OPTION.CLIENT_ARCH, Buffer.from([7]))
  packet.htype = 6
  t.equal(optionIpv4(packet, OPTION.SERVER_ID), undefined)
  t.equal(clientArchOf(packet), undefined)
  t.equal(clientMacOf(packet), undefined, 'not Ethernet')
})

t.test('option 77: RFC 3004 lists and plain iPXE strings', async (t) => {
  const packet = discover()
  packet.options.set(OPTION.USER_CLASS, Buffer.from('iPXE'))
  t.same(userClassesOf(packet), ['iPXE'])
  packet.options.set(OPTION.USER_CLASS, Buffer.from([4, ...Buffer.from('iPXE'), 3, ...Buffer.from('foo')]))
  t.same(userClassesOf(packet), ['iPXE', 'foo'])
})

t.test('overload (option 52) is ignored: sname and file stay text', async (t) => {
  const packet = discover()
  packet.options.set(OPTION.OVERLOAD, Buffer.from([3]))
  packet.file = 'undionly.kpxe'
  const parsed = parseDhcpPacket(formatDhcpPacket(packet))
  t.equal(parsed.file, 'undionly.kpxe')
  t.equal(messageTypeOf(parsed), MESSAGE_TYPE.DISCOVER)
})
