import { writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { removeTree } from '../../helpers/engine.ts'
import { dhcpSettings, runProbe, runToEnd, scratchDir, startServerChild, writeEnvScript, type ServerChild } from '../../helpers/dhcp-lab.ts'
import { createLab, randomLabSubnet } from '../../helpers/netns.ts'
import { ipv4ToBytes } from '../../../src/lib/ipv4.ts'
import { emptyPacket, formatDhcpPacket, MESSAGE_TYPE, messageTypeOf, OPTION, parseDhcpPacket, type DhcpPacket } from '../../../src/transports/dhcp/dhcp-packet.ts'

const DATAGRAMS = Number(process.env.SLW_FUZZ_DATAGRAMS ?? 50_000)
const net = randomLabSubnet()
const SERVER = `${net}.1`
const PROBE = `${net}.200`
const dir = scratchDir()
const lab = createLab([{ name: 'server', address: `${SERVER}/24` }, { name: 'probe', address: `${PROBE}/24` }, { name: 'client', mac: '52:54:00:00:2f:01' }])
t.teardown(() => {
  lab.destroy()
  removeTree(dir)
})
let server: ServerChild
t.before(async () => {
  server = await startServerChild(lab, 'server', {
    db: path.join(dir, 'slipway.db'),
    settings: dhcpSettings({ serverAddress: SERVER, subnet: `${net}.0/24`, rangeStart: `${net}.10`, rangeEnd: `${net}.190` }),
    // The flood's random MACs may hold every pool address for a minute: the final check uses a reservation.
    reservations: [{ mac: '52:54:00:00:2f:01', ip: `${net}.250`, hostname: null }],
    logLevel: 'error',
  })
})
t.teardown(async () => {
  if (server?.child.exitCode === null) await server.stop()
})

// A small deterministic PRNG (mulberry32): a failing run can be replayed with the same seed.
function prng(seed: number) {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let value = state
    value = Math.imul(value ^ (value >>> 15), value | 1)
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61)
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296
  }
  return { next, int: (max: number) => Math.floor(next() * max), bytes: (length: number) => Buffer.from(Array.from({ length }, () => Math.floor(next() * 256))) }
}

function validPacket(type: number, macIndex: number): DhcpPacket {
  const packet = emptyPacket()
  packet.xid = 0x5eed0000 + macIndex
  packet.flags = 0x8000
  Buffer.from([0x52, 0x54, 0x00, 0x00, 0x3f, macIndex]).copy(packet.chaddr)
  packet.options.set(OPTION.MESSAGE_TYPE, Buffer.from([type]))
  packet.options.set(OPTION.CLIENT_ID, Buffer.concat([Buffer.from([1]), packet.chaddr.subarray(0, 6)]))
  packet.options.set(OPTION.PARAMETER_REQUEST_LIST, Buffer.from([1, 3, 6, 15, 43, 60, 66, 67, 128, 175]))
  packet.options.set(OPTION.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00007:UNDI:003016'))
  packet.options.set(OPTION.CLIENT_ARCH, Buffer.from([0, 7]))
  packet.options.set(OPTION.CLIENT_UUID, Buffer.concat([Buffer.from([0]), Buffer.alloc(16, macIndex)]))
  if (type === MESSAGE_TYPE.REQUEST) {
    packet.options.set(OPTION.SERVER_ID, ipv4ToBytes(SERVER))
    packet.options.set(OPTION.REQUESTED_IP, ipv4ToBytes(`${net}.${10 + macIndex}`))
  }
  return packet
}

function corpus(seed: number, count: number): Buffer {
  const random = prng(seed)
  const parts: Buffer[] = []
  const mutations: Array<(base: Buffer) => Buffer> = [
    (base) => base.subarray(0, random.int(base.length)), // truncated anywhere
    (base) => {
      const copy = Buffer.from(base)
      for (let i = 0, n = 1 + random.int(8); i < n; i++) copy[random.int(copy.length)] = random.int(256)
      return copy
    },
    (base) => {
      const copy = Buffer.from(base) // a bad length byte inside the options
      copy[241 + random.int(Math.max(1, copy.length - 241))] = random.int(256)
      return copy
    },
    (base) => Buffer.concat([base.subarray(0, 240), Buffer.alloc(200 + random.int(1000), 0), base.subarray(240)]), // pad flood
    (base) => {
      // A huge (split, RFC 3396) parameter request list naming 60, 128, 175 and everything else.
      const list = Buffer.from(Array.from({ length: 255 }, (_, i) => [60, 128, 175][i % 3] ?? i))
      return Buffer.concat([base.subarray(0, 240), Buffer.from([55, 255]), list, Buffer.from([55, 255]), list, base.subarray(240)])
    },
    (base) => {
      const copy = Buffer.from(base)
      copy[2] = 17 + random.int(239) // hlen beyond the chaddr field
      return copy
    },
    (base) => {
      const copy = Buffer.from(base)
      ipv4ToBytes(PROBE).copy(copy, 24) // relayed: replies go to giaddr:67
      return Buffer.concat([copy.subarray(0, 240), Buffer.from([82, 6, 1, 4, 0xde, 0xad, 0xbe, 0xef]), copy.subarray(240)])
    },
    (base) => {
      const copy = Buffer.from(base) // overload: options "in" sname and file
      random.bytes(192).copy(copy, 44)
      return Buffer.concat([copy.subarray(0, 240), Buffer.from([52, 1, 3]), copy.subarray(240)])
    },
    (base) => {
      const copy = Buffer.from(base)
      copy[1] = random.int(256) // htype
      return copy
    },
    (base) => Buffer.concat([base.subarray(0, 240), random.bytes(random.int(1200))]), // random options
    () => random.bytes(random.int(600)), // noise
    (base) => base.subarray(0, base.length - 1 - random.int(3)), // END missing, last option cut
  ]
  for (let i = 0; i < count; i++) {
    const base = formatDhcpPacket(validPacket(random.next() < 0.5 ? MESSAGE_TYPE.DISCOVER : MESSAGE_TYPE.REQUEST, random.int(20)))
    let datagram = mutations[random.int(mutations.length)]!(base)
    if (random.next() < 0.3) datagram = mutations[random.int(mutations.length)]!(datagram)
    const length = Buffer.alloc(2)
    length.writeUInt16BE(Math.min(datagram.length, 65_000))
    parts.push(length, datagram.subarray(0, 65_000))
  }
  return Buffer.concat(parts)
}

t.test('forty clients discovering at once get forty different addresses', async (t) => {
  const sends = Array.from({ length: 40 }, (_, index) => {
    const packet = validPacket(MESSAGE_TYPE.DISCOVER, 0)
    Buffer.from([0x52, 0x54, 0x00, 0x01, 0x00, index]).copy(packet.chaddr)
    packet.xid = 0xd15c0000 + index
    return { hex: formatDhcpPacket(packet).toString('hex'), to: { address: `${net}.255`, port: 67 }, atMs: 0 }
  })
  const result = await runProbe(lab, 'probe', dir, { sends, listenMs: 1500 })
  const offers = result.replies.map((reply) => parseDhcpPacket(reply.bytes)).filter((packet) => messageTypeOf(packet) === MESSAGE_TYPE.OFFER && packet.xid >= 0xd15c0000)
  t.comment(`${result.replies.length} replies, ${offers.length} offers: ${offers.map((offer) => offer.yiaddr).join(' ')}`)
  t.equal(new Set(offers.map((offer) => offer.xid)).size, 40, 'every client got an offer')
  t.equal(new Set(offers.map((offer) => offer.yiaddr)).size, 40, 'no address offered twice')
})

t.test(`${DATAGRAMS} random and mutated datagrams do not stop the server`, async (t) => {
  const file = path.join(dir, 'corpus.bin')
  writeFileSync(file, corpus(20261121, DATAGRAMS))
  const started = Date.now()
  const result = await runProbe(lab, 'probe', dir, { sends: [{ file, to: { address: SERVER, port: 67 }, atMs: 0 }], listenMs: 500, bindPort: 6868, paceEvery: 2 }, 150_000)
  const elapsed = Date.now() - started
  t.equal(result.sent, DATAGRAMS, 'all sent')
  t.ok(elapsed < 120_000, `bounded in time (${elapsed} ms)`)
  const stats = (await server.stats()) as { received: number; malformed: number; failed: number; malformedByCode: Record<string, number> }
  t.comment(`server saw ${stats.received} datagrams, ${stats.malformed} malformed ${JSON.stringify(stats.malformedByCode)}, ${stats.failed} failed`)
  t.ok(stats.received > DATAGRAMS * 0.9, 'the server read most of them')
  t.ok(stats.malformed > 0, 'malformed ones were counted')
  if (stats.failed > 0) t.comment(server.logs().split('\n').slice(0, 5).join('\n'))
  t.equal(server.child.exitCode, null, 'still running')

  const run = await runToEnd(lab, 'client', '/usr/sbin/udhcpc', ['-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', writeEnvScript(dir)])
  t.equal(run.events.find((event) => event.event === 'bound')?.env.ip, `${net}.250`, 'udhcpc still gets a lease')
})

