import t from 'tap'
import { InstallAuthorization, planInstallSlots } from '../../../src/core/machines/install-authorization.ts'
import type { Machine } from '../../../src/core/machines/machine-service.ts'
import type { MachineState } from '../../../src/core/machines/machine-state.ts'
import { FIRST_CREDENTIAL } from '../../../src/core/lifecycle/machine-credentials.ts'
import { EmptyMachineRepository, FixedMachineRepository } from '../../fakes/machine-repository.ts'
import { SlipwayError } from '../../../src/core/errors.ts'

const uuidOf = (n: number) => `4c4c4544-0042-3510-8050-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:0c:${n.toString(16).padStart(2, '0')}`
/** Both halves of a machine's identity, as the installer routes require. */
const idOf = (n: number) => ({ uuid: uuidOf(n), mac: macOf(n) })
const at = (seconds: number) => new Date(Date.parse('2026-11-21T10:00:00.000Z') + seconds * 1000)

function machine(n: number, state: MachineState, since = at(0)): Machine {
  return {
    uuid: uuidOf(n),
    bootMac: macOf(n),
    bootRandomId: null,
    state,
    stateChangedAt: since.toISOString(),
    facts: {},
    firstSeenAt: at(0).toISOString(),
    lastSeenAt: at(0).toISOString(),
    interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: null, cidr: null, gateway: null, fqdn: [], isBoot: true }],
    disks: [],
    labels: {},
    credential: FIRST_CREDENTIAL,
    reprovisionUntil: null,
  }
}

function setup(states: MachineState[], policy = { maxConcurrent: 2, timeoutSeconds: 600 }) {
  const memory = new FixedMachineRepository(states.map((state, index) => machine(index + 1, state)))
  const changed: string[] = []
  let now = at(10)
  const installs = new InstallAuthorization(memory, policy, () => now, (uuid) => void changed.push(uuid))
  return { machines: memory.machines, events: memory.events, installs, changed, setNow: (seconds: number) => (now = at(seconds)) }
}

const codeOf = async (promise: Promise<unknown>) => {
  try {
    await promise
    return 'resolved'
  } catch (error) {
    return error instanceof SlipwayError ? `${error.kind}:${error.code}` : String(error)
  }
}

t.test('planInstallSlots: only slots within the timeout count', async (t) => {
  const policy = { maxConcurrent: 2, timeoutSeconds: 60 }
  const installing = [
    { uuid: 'a', stateChangedAt: at(0).toISOString() },
    { uuid: 'b', stateChangedAt: at(50).toISOString() },
  ]
  t.same(planInstallSlots(installing, policy, at(60)), { expired: [], held: 2, free: false }, 'exactly at the timeout still holds')
  t.same(planInstallSlots(installing, policy, at(61)), { expired: ['a'], held: 1, free: true })
  t.same(planInstallSlots([], policy, at(0)), { expired: [], held: 0, free: true })
})

t.test('K slots: two granted, the third denied with an event, then granted after a success report', async (t) => {
  const { installs, events, machines, changed } = setup(['scheduled', 'scheduled', 'scheduled'])
  t.match(await installs.authorizeInstall(idOf(1)), { authorized: true, machine: { state: 'installing' } })
  t.match(await installs.authorizeInstall({ uuid: uuidOf(2), mac: '52-54-00-00-0C-02' }), { authorized: true }, 'the boot MAC in any form')
  const denied = await installs.authorizeInstall({ uuid: uuidOf(3).toUpperCase(), mac: macOf(3) })
  t.match(denied, { authorized: false, installing: 2, maxConcurrent: 2, message: /2\/2 installing/ })
  t.equal(machines.get(uuidOf(3))!.state, 'scheduled')
  t.same(
    events.map((event) => [event.uuid, event.fromState, event.toState, event.reason]),
    [
      [uuidOf(1), 'scheduled', 'installing', 'install authorization granted'],
      [uuidOf(2), 'scheduled', 'installing', 'install authorization granted'],
      [uuidOf(3), 'scheduled', 'scheduled', 'install authorization denied: 2/2 installing'],
    ],
  )

  const reported = await installs.reportInstall(idOf(1), 'success', 'flatcar-install finished')
  t.equal(reported.state, 'installed')
  t.equal(events.at(-1)!.reason, 'install report: success: flatcar-install finished')
  t.match(await installs.authorizeInstall(idOf(3)), { authorized: true })
  t.equal(machines.get(uuidOf(3))!.state, 'installing')
  t.same(changed, [uuidOf(1), uuidOf(2), uuidOf(3), uuidOf(1), uuidOf(3)], 'every change is announced after commit')
})

t.test('asking again while installing is granted without a new event', async (t) => {
  const { installs, events } = setup(['scheduled', 'scheduled'], { maxConcurrent: 1, timeoutSeconds: 600 })
  t.match(await installs.authorizeInstall(idOf(1)), { authorized: true })
  t.match(await installs.authorizeInstall(idOf(1)), { authorized: true }, 'even with every slot taken (by itself)')
  t.equal(events.length, 1)
})

t.test('20 concurrent asks never grant more than K', async (t) => {
  const { installs, machines, events } = setup(Array.from({ length: 20 }, () => 'scheduled' as const), { maxConcurrent: 3, timeoutSeconds: 600 })
  const answers = await Promise.all(Array.from({ length: 20 }, (_, index) => installs.authorizeInstall(idOf(index + 1))))
  t.equal(answers.filter((answer) => answer.authorized).length, 3)
  t.equal([...machines.values()].filter((m) => m.state === 'installing').length, 3)
  t.equal(events.filter((event) => event.toState === 'scheduled').length, 17, 'one denial event each')
})

t.test('a slot held past the timeout is released as a failed install', async (t) => {
  const { installs, machines, events, setNow } = setup(['scheduled', 'scheduled', 'scheduled'], { maxConcurrent: 1, timeoutSeconds: 60 })
  setNow(0)
  t.match(await installs.authorizeInstall(idOf(1)), { authorized: true })
  setNow(60)
  t.match(await installs.authorizeInstall(idOf(2)), { authorized: false }, 'not yet expired')
  setNow(61)
  t.match(await installs.authorizeInstall(idOf(2)), { authorized: true })
  t.equal(machines.get(uuidOf(1))!.state, 'install_failed')
  t.match(events.find((event) => event.uuid === uuidOf(1) && event.toState === 'install_failed'), { fromState: 'installing', reason: 'install timed out', at: at(61).toISOString() })
  t.equal(await codeOf(installs.reportInstall(idOf(1), 'success')), 'conflict:INVALID_TRANSITION', 'a late report after the timeout is refused')

  // The asker's own slot can expire too: it is then failed, not re-granted.
  setNow(200)
  t.equal(await codeOf(installs.authorizeInstall(idOf(2))), 'conflict:INVALID_TRANSITION')
  t.equal(machines.get(uuidOf(2))!.state, 'install_failed', 'the timeout is kept even though the answer is an error')
})

t.test('reports move installing machines and refuse the others', async (t) => {
  const { installs, machines, events } = setup(['installing', 'installing', 'scheduled', 'installed'])
  t.equal((await installs.reportInstall(idOf(1), 'success')).state, 'installed')
  t.equal((await installs.reportInstall(idOf(2), 'fail', '  disk /dev/vda not found  ')).state, 'install_failed')
  t.equal(events.at(-1)!.reason, 'install report: fail: disk /dev/vda not found')
  t.equal(events.at(-2)!.reason, 'install report: success')
  const before = events.length
  for (const n of [3, 4]) t.equal(await codeOf(installs.reportInstall(idOf(n), 'success')), 'conflict:INVALID_TRANSITION', machines.get(uuidOf(n))!.state)
  t.equal(await codeOf(installs.reportInstall(idOf(1), 'fail')), 'conflict:INVALID_TRANSITION', 'a second report is refused')
  t.equal(events.length, before, 'refusals write nothing')
})

t.test('only scheduled machines may ask; both halves of the identity, matching the record', async (t) => {
  const { installs, events, machines } = setup(['discovered', 'installed', 'install_failed', 'scheduled'])
  for (const n of [1, 2, 3]) t.equal(await codeOf(installs.authorizeInstall(idOf(n))), 'conflict:INVALID_TRANSITION')
  t.equal(await codeOf(installs.authorizeInstall(idOf(9))), 'not_found:MACHINE_NOT_FOUND')
  t.equal(await codeOf(installs.authorizeInstall({ uuid: uuidOf(4), mac: macOf(9) })), 'not_found:MACHINE_NOT_FOUND', "a machine's uuid with another MAC")
  t.equal(await codeOf(installs.authorizeInstall({ uuid: uuidOf(9), mac: macOf(4) })), 'not_found:MACHINE_NOT_FOUND', "a machine's MAC with another uuid")
  t.equal(await codeOf(installs.authorizeInstall({ mac: macOf(4) })), 'invalid:MACHINE_IDENTITY_MISSING', 'the MAC alone names nobody')
  t.equal(await codeOf(installs.authorizeInstall({ uuid: uuidOf(4) })), 'invalid:MACHINE_IDENTITY_MISSING', 'the uuid alone names nobody')
  t.equal(await codeOf(installs.reportInstall({ mac: macOf(4) }, 'fail')), 'invalid:MACHINE_IDENTITY_MISSING')
  t.equal(await codeOf(installs.authorizeInstall({ uuid: uuidOf(4), mac: 'nope' })), 'invalid:INVALID_MAC')
  t.equal(await codeOf(installs.authorizeInstall({ uuid: 'nope', mac: macOf(4) })), 'invalid:INVALID_UUID')
  t.equal(await codeOf(installs.authorizeInstall({ uuid: '', mac: '' })), 'invalid:MACHINE_IDENTITY_MISSING')
  t.equal(await codeOf(installs.reportInstall({}, 'success')), 'invalid:MACHINE_IDENTITY_MISSING')
  t.equal(events.length, 0)
  t.equal(machines.get(uuidOf(4))!.state, 'scheduled', 'nothing moved the scheduled machine')
  t.throws(() => new InstallAuthorization(new EmptyMachineRepository(), { maxConcurrent: 0, timeoutSeconds: 1 }))
})

t.test('a grant starts a new credential generation, at once', async (t) => {
  const { installs, machines } = setup(['scheduled', 'scheduled'], { maxConcurrent: 1, timeoutSeconds: 600 })
  t.match(await installs.authorizeInstall(idOf(1)), { authorized: true })
  t.same(machines.get(uuidOf(1))!.credential, { generation: 1, previousGeneration: null, previousValidUntil: null }, 'the previous credential no longer counts')
  t.match(await installs.authorizeInstall(idOf(1)), { authorized: true })
  t.equal(machines.get(uuidOf(1))!.credential.generation, 1, 'asking again while installing starts no other')
  t.match(await installs.authorizeInstall(idOf(2)), { authorized: false })
  t.equal(machines.get(uuidOf(2))!.credential.generation, 0, 'a denial changes nothing')
})
