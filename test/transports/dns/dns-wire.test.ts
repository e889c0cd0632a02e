import dns2 from 'dns2'
import t from 'tap'
import type { DnsAnswer } from '../../../src/core/dns/dns-zone.ts'
import { plausibleQuery, readQuery, writeReply } from '../../../src/transports/dns/dns-wire.ts'

const { Packet } = dns2

/** A query as dns2 (an independent encoder) writes it. */
function query(name: string, type: number, ecs?: string, family: 1 | 2 = 1): Buffer {
  const packet = new Packet()
  packet.header.id = 4242
  packet.header.rd = 1
  packet.questions.push({ name, type, class: Packet.CLASS.IN } as (typeof packet.questions)[number])
  if (ecs) {
    const [ip, prefix] = ecs.split('/')
    // dns2's EDNS.ECS() helper always says family 1: the option is written out here.
    const option = { ednsCode: Packet.EDNS_OPTION_CODE.ECS, family, sourcePrefixLength: Number(prefix), scopePrefixLength: 0, ip }
    packet.additionals.push(Packet.Resource.EDNS([option]) as unknown as (typeof packet.additionals)[number])
  }
  return packet.toBuffer()
}

const answer = (records: DnsAnswer['answers'], extra: Partial<DnsAnswer> = {}): DnsAnswer => ({ rcode: 'NOERROR', authoritative: true, answers: records, authority: [], additional: [], scopePrefixLength: 0, ...extra })

t.test('queries are read, replies decode with dns2', async (t) => {
  const wire = query('Web.Shop.Apps.Test', 1, '10.2.3.0/24')
  t.ok(plausibleQuery(wire))
  const read = readQuery(wire)!
  t.match(read, { id: 4242, rd: true, name: 'web.shop.apps.test', type: 1, class: 1, edns: { subnet: { family: 1, sourcePrefixLength: 24, ip: '10.2.3.0' } } })
  const reply = writeReply(
    read,
    answer(
      [
        { name: 'web.shop.apps.test', type: 1, ttl: 30, data: '192.0.2.1' },
        { name: 'web.shop.apps.test', type: 28, ttl: 30, data: '2001:db8::1' },
      ],
      { authority: [{ name: 'apps.test', type: 6, ttl: 15, data: { primary: 'ns1.apps.test', admin: 'hostmaster.apps.test', serial: 9, refresh: 3600, retry: 600, expiration: 604800, minimum: 15 } }], scopePrefixLength: 16 },
    ),
    'udp',
  )
  const decoded = Packet.parse(reply)
  t.match(decoded.header, { id: 4242, qr: 1, aa: 1, rd: 1, tc: 0, rcode: 0 })
  t.match(decoded.answers, [{ name: 'Web.Shop.Apps.Test', type: 1, ttl: 30, address: '192.0.2.1' }, { type: 28, address: '2001:db8::1' }], 'answers point back at the question name')
  t.match(decoded.authorities, [{ name: 'apps.test', type: 6, primary: 'ns1.apps.test', admin: 'hostmaster.apps.test', serial: 9, minimum: 15 }])
  const opt = decoded.additionals.find((record) => record.type === 41) as unknown as { class: number; rdata: { scopePrefixLength: number; sourcePrefixLength: number; ip: string }[] }
  t.match(opt, { class: 1232, rdata: [{ sourcePrefixLength: 24, scopePrefixLength: 16, ip: '10.2.3.0' }] }, 'the ECS option comes back with the scope')
  t.ok(reply.length < 200, `names compressed: ${reply.length} bytes`)
})

t.test('an IPv6 /56 subnet, truncation, malformed input', async (t) => {
  const v6 = readQuery(query('a.apps.test', 28, '2001:db8:aaaa:100::/56', 2))!
  t.match(v6.edns?.subnet, { family: 2, sourcePrefixLength: 56, ip: '2001:db8:aaaa:100:0:0:0:0' })
  t.equal(v6.edns?.subnet?.address.length, 7, 'ceil(56 / 8) address bytes')
  t.equal(readQuery(query('a.apps.test', 1, '2001:db8:aaaa:100::/56', 1)), undefined, 'a /56 said to be IPv4: FORMERR (RFC 7871 §7.1.1)')
  const plain = readQuery(query('many.apps.test', 1))!
  t.equal(plain.edns, undefined)
  const records = Array.from({ length: 60 }, (_, index) => ({ name: 'many.apps.test', type: 1 as const, ttl: 30, data: `192.0.2.${index}` }))
  const truncated = Packet.parse(writeReply(plain, answer(records), 'udp'))
  t.match(truncated.header, { tc: 1, ancount: 0 }, 'over 512 bytes without EDNS: TC, for the client to retry over TCP')
  t.equal(Packet.parse(writeReply(plain, answer(records), 'tcp')).answers.length, 60, 'over TCP: everything')
  const wire = query('x.apps.test', 1)
  t.equal(readQuery(Buffer.concat([wire.subarray(0, 14)])), undefined, 'a truncated name')
  const looped = Buffer.from(wire)
  looped[12] = 0xc0
  looped[13] = 12
  t.equal(readQuery(looped), undefined, 'a compression pointer loop')
  const counts = Buffer.from(wire)
  counts.writeUInt16BE(0xffff, 6)
  t.notOk(plausibleQuery(counts), 'answer records in a query')
})
