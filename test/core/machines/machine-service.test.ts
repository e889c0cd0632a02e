import t from 'tap'
import { MachineService } from '../../../src/core/machines/machine-service.ts'
import { EmptyMachineRepository } from '../../fakes/machine-repository.ts'

const UUID = '4c4c4544-0042-3510-8050-b4c04f4e3432'
const OTHER = '4c4c4544-0042-3510-8050-b4c04f4e3466'
const MAC = '52:54:00:00:0b:01'
const report = (mac = MAC, ipv4?: string) => ({ 'boot-info': { uuid: UUID, mac }, interfaces: [{ name: 'eth0', mac, ...(ipv4 ? { ipv4 } : {}) }] })
const at = (minute: number) => new Date(`2026-11-21T10:${String(minute).padStart(2, '0')}:00.000Z`)

t.test('discover creates, then refreshes without changing state', async (t) => {
  const memory = new EmptyMachineRepository()
  const service = new MachineService(memory)
  const created = await service.discover(report(), at(0))
  t.equal(created.isNew, true)
  t.equal(created.machine.state, 'discovered')
  t.same(created.machine.credential, { generation: 0, previousGeneration: null, previousValidUntil: null }, 'the first credential generation')
  t.same(memory.events, [{ uuid: UUID, fromState: null, toState: 'discovered', reason: 'first discovery report', at: at(0).toISOString() }])

  const again = await service.discover(report(undefined, '10.0.0.9'), at(5))
  t.equal(again.isNew, false)
  t.equal(again.machine.firstSeenAt, at(0).toISOString())
  t.equal(again.machine.lastSeenAt, at(5).toISOString())
  t.equal(again.machine.interfaces[0]!.ipv4, '10.0.0.9', 'a machine that reported no address may report its first')
  t.equal(memory.events.length, 1)
  await t.rejects(service.discover(report(undefined, '10.0.0.10'), at(6)), { code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'address-changed' } }, 'but not move to another')
})

t.test("a report claiming a known machine's identity changes nothing and is kept as a conflict", async (t) => {
  const memory = new EmptyMachineRepository()
  const refused: string[] = []
  const service = new MachineService(memory, undefined, undefined, (kind) => void refused.push(kind))
  await service.discover(report(MAC, '10.0.0.5'), at(0))
  const victim = structuredClone(memory.machines.get(UUID)!)

  // A new uuid with the victim's boot MAC.
  const claim = { 'boot-info': { uuid: OTHER, mac: MAC }, interfaces: [{ name: 'eth0', mac: MAC, ipv4: '10.0.0.66' }] }
  await t.rejects(service.discover(claim, at(1), { address: '10.0.0.66' }), { code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'mac-claimed', conflict: 1 } })
  await t.rejects(service.discover(claim, at(2), { address: '10.0.0.66' }), { code: 'MACHINE_IDENTITY_CONFLICT' }, 'again')
  t.notOk(memory.machines.has(OTHER), 'the claimant was not added')
  t.same(memory.machines.get(UUID), victim, 'the victim is unchanged')
  t.match(memory.conflicts, [{ id: 1, kind: 'mac-claimed', machineUuid: UUID, claimedUuid: OTHER, claimedMac: MAC, claimedIpv4: '10.0.0.66', sourceIp: '10.0.0.66', reports: 2, state: 'open' }], 'one conflict, two reports')
  t.match(memory.events.at(-1), { uuid: UUID, fromState: 'discovered', toState: 'discovered', reason: /identity conflict #1: a report from 10\.0\.0\.66 as machine .* claimed this machine's boot MAC/ }, 'one event on the victim')
  t.equal(memory.events.length, 2)

  // The victim's uuid with another MAC; its uuid and MAC with another address.
  await t.rejects(service.discover(report('52:54:00:00:0b:66'), at(3), { address: '10.0.0.66' }), { code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'mac-changed' } })
  await t.rejects(service.discover(report(MAC, '10.0.0.66'), at(4), { address: '10.0.0.66' }), { code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'address-changed' } })
  t.equal(memory.machines.get(UUID)!.interfaces[0]!.ipv4, '10.0.0.5')
  // Before it has a role, its exact report from elsewhere is taken (facts only); once it has one, only from its own address.
  await service.discover(report(MAC, '10.0.0.5'), at(5), { address: '10.0.0.77' })
  memory.machines.set(UUID, { ...memory.machines.get(UUID)!, state: 'installed' })
  await t.rejects(service.discover(report(MAC, '10.0.0.5'), at(5), { address: '10.0.0.77' }), { code: 'MACHINE_IDENTITY_CONFLICT', details: { kind: 'foreign-source' } })
  await service.discover(report(MAC, '10.0.0.5'), at(5), { address: '::ffff:10.0.0.5' })
  t.equal(memory.machines.get(UUID)!.lastSeenAt, at(5).toISOString(), 'the machine itself still reports (an IPv4 peer on a dual-stack socket too)')
  t.same(refused, ['mac-claimed', 'mac-claimed', 'mac-changed', 'address-changed', 'foreign-source'], 'every refusal is counted')
  const lenient = new MachineService(memory, undefined, undefined, undefined, { addressIsIdentity: false })
  await lenient.discover(report(MAC, '10.0.0.5'), at(6), { address: '192.0.2.1' })
  t.equal(memory.machines.get(UUID)!.lastSeenAt, at(6).toISOString(), 'behind NAT (bindSecretsToAddress off) the source is not checked')

  // An operator decides: dismissed claims change nothing, an accepted one is applied.
  t.match(await service.resolveConflict(2, 'dismiss', 'ops', at(6)), { state: 'dismissed', resolvedBy: 'ops' })
  await t.rejects(service.resolveConflict(2, 'accept', 'ops', at(6)), { code: 'CONFLICT_RESOLVED' })
  await t.rejects(service.resolveConflict(99, 'accept', 'ops', at(6)), { code: 'CONFLICT_NOT_FOUND' })
  t.match(await service.resolveConflict(3, 'accept', 'admin-1', at(7)), { state: 'accepted', resolvedBy: 'admin-1' })
  t.equal(memory.machines.get(UUID)!.interfaces[0]!.ipv4, '10.0.0.66', 'the accepted move is applied')
  t.match(memory.events.at(-1), { uuid: UUID, reason: 'identity conflict #3 accepted (the report was applied) by admin-1' })
  t.same((await service.conflicts({ state: 'open' })).map((conflict) => conflict.id), [4, 1])
})

t.test('open conflicts are bounded: claims on one machine are one conflict, a flood over many fills a counter, not the store', async (t) => {
  const memory = new EmptyMachineRepository()
  let refused = 0
  const service = new MachineService(memory, undefined, undefined, () => void refused++)
  const macOf = (n: number) => `52:54:00:0b:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`
  const uuidOf = (n: number, base = 1) => `4c4c4544-0042-${3510 + base}-8050-${String(n).padStart(12, '0')}`
  await service.discover(report(), at(0))
  for (let n = 0; n < 1005; n++) {
    await t.rejects(service.discover({ 'boot-info': { uuid: uuidOf(n), mac: MAC }, interfaces: [{ name: 'eth0', mac: MAC }] }, at(1)), { code: 'MACHINE_IDENTITY_CONFLICT' })
  }
  t.match(memory.conflicts, [{ kind: 'mac-claimed', machineUuid: UUID, claimedUuid: uuidOf(1004), reports: 1005 }], "1,005 claims of one machine's MAC: one conflict, holding the latest claim")
  for (let n = 0; n < 1005; n++) await service.discover({ 'boot-info': { uuid: uuidOf(n, 2), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n) }] }, at(2))
  for (let n = 0; n < 1005; n++) {
    await t.rejects(service.discover({ 'boot-info': { uuid: uuidOf(n, 3), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n) }] }, at(3)), { code: 'MACHINE_IDENTITY_CONFLICT' })
  }
  t.equal(memory.conflicts.filter((conflict) => conflict.state === 'open').length, 1000, 'at most 1,000 open conflicts are kept')
  t.equal(refused, 2010, 'every refusal is counted')
  t.match(memory.events.filter((event) => event.uuid === uuidOf(1004, 2)).at(-1), { reason: /identity conflict \(not kept: 1000 conflicts are open\)/ }, "past the cap, the machine's history still says so")
})

t.test('credentials: rotation keeps the previous generation for its grace, revocation does not', async (t) => {
  const memory = new EmptyMachineRepository()
  const service = new MachineService(memory)
  await service.discover(report(), at(0))
  const rotated = await service.renewCredential(UUID, 600, 'credential rotated by ops', at(1))
  t.same(rotated.credential, { generation: 1, previousGeneration: 0, previousValidUntil: '2026-11-21T10:11:00.000Z' })
  t.same(memory.machines.get(UUID)!.credential, rotated.credential)
  const revoked = await service.renewCredential(UUID, 0, 'credential revoked by ops', at(2))
  t.same(revoked.credential, { generation: 2, previousGeneration: null, previousValidUntil: null })
  t.match(memory.events.at(-1)!.reason, 'credential revoked by ops: credential generation 2, the previous one no longer counts')
  const window = await service.setReprovisionWindow(UUID, 3600, 'ops', at(3))
  t.equal(window.reprovisionUntil, '2026-11-21T11:03:00.000Z')
  t.equal((await service.setReprovisionWindow(UUID, 0, 'ops', at(4))).reprovisionUntil, null)
})

t.test('a booting machine becomes discovered; scheduled and installed ones keep their state', async (t) => {
  for (const state of ['booting', 'scheduled', 'installed'] as const) {
    const memory = new EmptyMachineRepository()
    const service = new MachineService(memory)
    await service.discover(report(), at(0))
    memory.machines.set(UUID, { ...memory.machines.get(UUID)!, state })
    const { machine } = await service.discover(report(), at(1))
    t.equal(machine.state, state === 'booting' ? 'discovered' : state, state)
    t.equal(memory.events.length, state === 'booting' ? 2 : 1)
  }
})

t.test('a refused transition writes nothing', async (t) => {
  const memory = new EmptyMachineRepository()
  const service = new MachineService(memory)
  await service.discover(report(), at(0))
  await t.rejects(service.transition(UUID, 'installed', 'skip ahead', at(1)), { name: 'SlipwayError', code: 'INVALID_TRANSITION' })
  await t.rejects(service.transition(UUID, 'floating', 'x', at(1)), { name: 'SlipwayError', code: 'INVALID_STATE' })
  await t.rejects(service.transition('4c4c4544-0042-3510-8050-b4c04f4e3499', 'scheduled', 'x'), { name: 'SlipwayError', code: 'MACHINE_NOT_FOUND' })
  t.equal(memory.machines.get(UUID)!.state, 'discovered')
  t.equal(memory.events.length, 1)
  const moved = await service.transition(UUID.toUpperCase(), 'scheduled', 'scheduler', at(2))
  t.same(moved.event, { uuid: UUID, fromState: 'discovered', toState: 'scheduled', reason: 'scheduler', at: at(2).toISOString() })
  t.same(await service.events(UUID), memory.events)
})

t.test('an invalid report writes nothing', async (t) => {
  const memory = new EmptyMachineRepository()
  const service = new MachineService(memory)
  await t.rejects(service.discover({ ...report(), interfaces: [{ name: 'eth0', mac: '52:54:00:00:0b:09' }] }, at(0)), { name: 'SlipwayError', code: 'BOOT_INTERFACE_MISSING' })
  t.equal(memory.machines.size, 0)
  t.equal(memory.events.length, 0)
})
