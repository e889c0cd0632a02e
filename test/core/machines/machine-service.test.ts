import t from 'tap'
import { MachineService, type Machine, type MachineRepository } from '../../../src/core/machines/machine-service.ts'
import type { MachineEvent } from '../../../src/core/machines/machine-state.ts'

/** An in-memory repository; `transaction` works on a copy and commits it only if `work` succeeds. */
function memoryRepository(machines = new Map<string, Machine>(), events: MachineEvent[] = []): MachineRepository & { machines: Map<string, Machine>; events: MachineEvent[] } {
  const repository = {
    machines,
    events,
    findMachine: async (uuid: string) => machines.get(uuid),
    listMachines: async () => [...machines.values()],
    saveMachine: async (machine: Machine) => void machines.set(machine.uuid, { ...machine, labels: machines.get(machine.uuid)?.labels ?? machine.labels }),
    replaceLabels: async (uuid: string, labels: Record<string, string>) => void machines.set(uuid, { ...machines.get(uuid)!, labels }),
    appendEvent: async (event: MachineEvent) => void events.push(event),
    recordTransition: async (machine: Machine, event: MachineEvent) => {
      const stored = machines.get(machine.uuid)!
      machines.set(machine.uuid, { ...stored, state: machine.state, stateChangedAt: machine.stateChangedAt })
      events.push(event)
    },
    listEvents: async (uuid: string) => events.filter((event) => event.uuid === uuid),
    transaction: async <T>(work: (inner: MachineRepository) => Promise<T>) => {
      const draft = memoryRepository(new Map(machines), [...events])
      const result = await work(draft)
      machines.clear()
      for (const [key, value] of draft.machines) machines.set(key, value)
      events.splice(0, events.length, ...draft.events)
      return result
    },
  }
  return repository
}

const UUID = '4c4c4544-0042-3510-8050-b4c04f4e3432'
const report = (mac = '52:54:00:00:0b:01') => ({ 'boot-info': { uuid: UUID, mac }, interfaces: [{ name: 'eth0', mac }] })
const at = (minute: number) => new Date(`2026-11-21T10:${String(minute).padStart(2, '0')}:00.000Z`)

t.test('discover creates, then refreshes without changing state', async (t) => {
  const repository = memoryRepository()
  const service = new MachineService(repository)
  const created = await service.discover(report(), at(0))
  t.equal(created.isNew, true)
  t.equal(created.machine.state, 'discovered')
  t.same(repository.events, [{ uuid: UUID, fromState: null, toState: 'discovered', reason: 'first discovery report', at: at(0).toISOString() }])

  const again = await service.discover(report('52:54:00:00:0b:02'), at(5))
  t.equal(again.isNew, false)
  t.equal(again.machine.firstSeenAt, at(0).toISOString())
  t.equal(again.machine.lastSeenAt, at(5).toISOString())
  t.equal(again.machine.bootMac, '52:54:00:00:0b:02')
  t.equal(repository.events.length, 1)
})

t.test('a booting machine becomes discovered; scheduled and installed ones keep their state', async (t) => {
  for (const state of ['booting', 'scheduled', 'installed'] as const) {
    const repository = memoryRepository()
    const service = new MachineService(repository)
    await service.discover(report(), at(0))
    repository.machines.set(UUID, { ...repository.machines.get(UUID)!, state })
    const { machine } = await service.discover(report(), at(1))
    t.equal(machine.state, state === 'booting' ? 'discovered' : state, state)
    t.equal(repository.events.length, state === 'booting' ? 2 : 1)
  }
})

t.test('a refused transition writes nothing', async (t) => {
  const repository = memoryRepository()
  const service = new MachineService(repository)
  await service.discover(report(), at(0))
  await t.rejects(service.transition(UUID, 'installed', 'skip ahead', at(1)), { name: 'SlipwayError', code: 'INVALID_TRANSITION' })
  await t.rejects(service.transition(UUID, 'floating', 'x', at(1)), { name: 'SlipwayError', code: 'INVALID_STATE' })
  await t.rejects(service.transition('4c4c4544-0042-3510-8050-b4c04f4e3499', 'scheduled', 'x'), { name: 'SlipwayError', code: 'MACHINE_NOT_FOUND' })
  t.equal(repository.machines.get(UUID)!.state, 'discovered')
  t.equal(repository.events.length, 1)
  const moved = await service.transition(UUID.toUpperCase(), 'scheduled', 'scheduler', at(2))
  t.same(moved.event, { uuid: UUID, fromState: 'discovered', toState: 'scheduled', reason: 'scheduler', at: at(2).toISOString() })
  t.same(await service.events(UUID), repository.events)
})

t.test('an invalid report writes nothing', async (t) => {
  const repository = memoryRepository()
  const service = new MachineService(repository)
  await t.rejects(service.discover({ ...report(), interfaces: [{ name: 'eth0', mac: '52:54:00:00:0b:09' }] }, at(0)), { name: 'SlipwayError', code: 'BOOT_INTERFACE_MISSING' })
  t.equal(repository.machines.size, 0)
  t.equal(repository.events.length, 0)
})
