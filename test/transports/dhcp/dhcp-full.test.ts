import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t from 'tap'
import { removeTree } from '../../helpers/engine.ts'
import { dhcpSettings, runProbe, runToEnd, scratchDir, startClient, startServerChild, writeEnvScript, type ServerChild } from '../../helpers/dhcp-lab.ts'
import { createLab, randomLabSubnet } from '../../helpers/netns.ts'
import { emptyPacket, formatDhcpPacket, MESSAGE_TYPE, messageTypeOf, OPTION, parseDhcpPacket } from '../../../src/transports/dhcp/dhcp-packet.ts'
import { ipv4ToBytes } from '../../../src/lib/ipv4.ts'
import { sleep } from '../../helpers/wait.ts'

const net = randomLabSubnet()
const SERVER = `${net}.1`
const MAC = { a: '52:54:00:00:0a:01', b: '52:54:00:00:0b:01', c: '52:54:00:00:0c:01', reserved: '52:54:00:00:0e:01' }

const dir = scratchDir()
const lab = createLab([{ name: 'server', address: `${SERVER}/24` }, { name: 'client', mac: MAC.a }, { name: 'probe', address: `${net}.200/24` }])
t.teardown(() => {
  lab.destroy()
  removeTree(dir)
})
const db = path.join(dir, 'slipway.db')
// A pool of two, so exhaustion and release are observable; the reservation is outside the pool.
const settings = dhcpSettings({ serverAddress: SERVER, subnet: `${net}.0/24`, rangeStart: `${net}.100`, rangeEnd: `${net}.101`, router: SERVER, dnsServers: [SERVER], domain: 'lab.test', leaseSeconds: 600 })
const reservations = [{ mac: MAC.reserved, ip: `${net}.50`, hostname: 'reserved-node' }]
const script = writeEnvScript(dir)
mkdirSync(path.join(dir, 'configure'))
const configuringScript = writeEnvScript(path.join(dir, 'configure'), true)

let server: ServerChild
t.before(async () => {
  server = await startServerChild(lab, 'server', { db, settings, reservations })
})
t.teardown(async () => {
  if (server?.child.exitCode === null) await server.stop()
})

const udhcpc = (extra: string[] = []) => ['-i', 'eth0', '-n', '-q', '-f', '-t', '3', '-T', '1', '-s', script, ...extra]
const pxe = ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '93:0000', '-x', '0x61:00' + '11'.repeat(16)]

function activeLeases() {
  const sqlite = new SQLite(db, { readonly: true, fileMustExist: true })
  try {
    return sqlite.prepare(`select ip, mac, state, expires_at from dhcp_leases where state in ('offered', 'bound') and expires_at > ?`).all(new Date().toISOString()) as Array<{ ip: string; mac: string; state: string }>
  } finally {
    sqlite.close()
  }
}

t.test('udhcpc as a PXE client gets an address and boot information', async (t) => {
  const run = await runToEnd(lab, 'client', '/usr/sbin/udhcpc', udhcpc(pxe))
  t.equal(run.code, 0, run.stderr)
  const bound = run.events.find((event) => event.event === 'bound')
  t.ok(bound, 'bound')
  const env = bound!.env
  t.equal(env.ip, `${net}.100`)
  t.equal(env.router, SERVER)
  t.equal(env.dns?.trim(), SERVER)
  t.equal(env.domain, 'lab.test')
  t.equal(env.serverid, SERVER)
  t.equal(env.siaddr, SERVER, 'BOOTP siaddr is the next server')
  t.equal(env.boot_file, 'undionly.kpxe', 'BOOTP file field')
  t.equal(env.bootfile, 'undionly.kpxe', 'option 67')
  t.equal(env.tftp, SERVER, 'option 66')
  t.equal(env.lease, '600')
  // udhcpc exports options it has no name for as optNN (hex); it keeps 60 to itself (checked in dhcp-proxy.test.ts).
  t.equal(env.opt43, '060108ff', 'option 43: PXE discovery control 8')
  t.equal(env.opt97, '00' + '11'.repeat(16), 'option 97 echoed')
})

t.test('dhclient gets the other address of the pool, without boot information', async (t) => {
  lab.setMac('client', MAC.b)
  const leaseFile = path.join(dir, 'dhclient-b.leases')
  const args = ['-d', '-1', '-v', '-sf', script, '-lf', leaseFile, '-pf', path.join(dir, 'dhclient-b.pid'), 'eth0']
  const client = startClient(lab, 'client', '/usr/sbin/dhclient', args)
  const bound = await client.waitForEvent('BOUND', 20_000)
  // dhclient writes its lease file just after the script ran; the reboot below needs it.
  for (let tries = 0; tries < 50 && !(existsSync(leaseFile) && readFileSync(leaseFile, 'utf8').includes('fixed-address')); tries++) await sleep(50)
  await client.stop()
  t.equal(bound.env.new_ip_address, `${net}.101`)
  t.equal(bound.env.new_routers, SERVER)
  t.equal(bound.env.new_dhcp_server_identifier, SERVER)
  t.notOk(bound.env.new_filename, 'no boot file for a client that does not netboot')

  t.test('a reboot (INIT-REBOOT) keeps the same address', async (t) => {
    const again = startClient(lab, 'client', '/usr/sbin/dhclient', args)
    const event = await Promise.race([again.waitForEvent('REBOOT', 20_000), again.waitForEvent('BOUND', 20_000)])
    await again.stop()
    t.equal(event.event, 'REBOOT', 'dhclient confirmed its old lease')
    t.equal(event.env.new_ip_address, `${net}.101`)
  })
})

t.test('a third client finds the pool exhausted and the server keeps answering others', async (t) => {
  lab.setMac('client', MAC.c)
  const started = Date.now()
  const run = await runToEnd(lab, 'client', '/usr/sbin/udhcpc', udhcpc())
  t.not(run.code, 0, 'no lease')
  t.notOk(run.events.some((event) => event.event === 'bound'))
  t.ok(Date.now() - started < 15_000, 'gave up in bounded time')
  t.match(server.logs(), /POOL_EXHAUSTED/, 'a warning says why')
  const leases = activeLeases()
  t.equal(new Set(leases.map((lease) => lease.ip)).size, leases.length, 'no address twice')
  t.notOk(leases.some((lease) => lease.mac === MAC.c))
})

t.test('a reservation is honoured', async (t) => {
  lab.setMac('client', MAC.reserved)
  const run = await runToEnd(lab, 'client', '/usr/sbin/udhcpc', udhcpc())
  const bound = run.events.find((event) => event.event === 'bound')
  t.equal(bound?.env.ip, `${net}.50`)
  t.equal(bound?.env.hostname, 'reserved-node')
})

t.test('renewal (unicast, RENEWING) keeps the address; release frees it for another client', async (t) => {
  lab.setMac('client', MAC.a)
  const client = startClient(lab, 'client', '/usr/sbin/udhcpc', ['-i', 'eth0', '-f', '-R', '-t', '3', '-T', '1', '-s', configuringScript])
  t.teardown(() => client.stop())
  const bound = await client.waitForEvent('bound')
  t.equal(bound.env.ip, `${net}.100`, 'MAC a gets its earlier address back')
  client.child.kill('SIGUSR1') // udhcpc: renew now
  const renewed = await client.waitForEventAfter('renew', 0)
  t.equal(renewed.env.ip, `${net}.100`, 'renewed the same address')
  await client.stop() // -R: release on exit
  lab.run('client', 'ip', ['addr', 'flush', 'dev', 'eth0'])
  await sleep(300)
  t.notOk(activeLeases().some((lease) => lease.mac === MAC.a), 'the lease of MAC a is released')
  t.match(server.logs(), /"message_type":"RELEASE"|"type":"RELEASE"/)

  lab.setMac('client', MAC.c)
  const run = await runToEnd(lab, 'client', '/usr/sbin/udhcpc', udhcpc())
  t.equal(run.events.find((event) => event.event === 'bound')?.env.ip, `${net}.100`, 'the released address goes to the waiting client')
})

t.test('a REQUEST naming another server gets no answer and frees our offer', async (t) => {
  const mac = Buffer.from('525400000d01', 'hex')
  const discover = emptyPacket()
  discover.xid = 0x1234
  mac.copy(discover.chaddr)
  discover.flags = 0x8000
  discover.options.set(OPTION.MESSAGE_TYPE, Buffer.from([MESSAGE_TYPE.DISCOVER]))
  const request = { ...discover, options: new Map(discover.options) }
  request.options.set(OPTION.MESSAGE_TYPE, Buffer.from([MESSAGE_TYPE.REQUEST]))
  request.options.set(OPTION.SERVER_ID, ipv4ToBytes(`${net}.99`))
  request.options.set(OPTION.REQUESTED_IP, ipv4ToBytes(`${net}.101`))
  const to = { address: `${net}.255`, port: 67 }
  // Pool is full (b and c): free b's address first so that an offer can be made.
  const sqlite = new SQLite(db)
  sqlite.prepare(`update dhcp_leases set state = 'released' where mac = ?`).run(MAC.b)
  sqlite.close()
  const result = await runProbe(lab, 'probe', dir, {
    sends: [
      { hex: formatDhcpPacket(discover).toString('hex'), to, atMs: 0 },
      { hex: formatDhcpPacket(request).toString('hex'), to, atMs: 500 },
    ],
    listenMs: 1500,
  })
  const types = result.replies.map((reply) => messageTypeOf(parseDhcpPacket(reply.bytes)))
  t.same(types, [MESSAGE_TYPE.OFFER], 'one OFFER, then silence (no ACK, no NAK)')
  t.notOk(activeLeases().some((lease) => lease.mac === '52:54:00:00:0d:01'), 'our offer was forgotten')
})

t.test('leases survive an engine restart', async (t) => {
  await server.stop()
  server = await startServerChild(lab, 'server', { db, settings, reservations })
  lab.setMac('client', MAC.c)
  const run = await runToEnd(lab, 'client', '/usr/sbin/udhcpc', udhcpc())
  t.equal(run.events.find((event) => event.event === 'bound')?.env.ip, `${net}.100`, 'MAC c keeps its address after the restart')
  const leases = activeLeases()
  t.equal(new Set(leases.map((lease) => lease.ip)).size, leases.length, 'no address leased twice')
  t.equal(new Set(leases.map((lease) => lease.mac)).size, leases.length, 'one active lease per MAC')
})
