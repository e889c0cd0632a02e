import t from 'tap'
import { SlipwayError } from '../../../src/core/errors.ts'
import { LEGAL_TRANSITIONS, MACHINE_STATES, transition, type MachineState } from '../../../src/core/machines/machine-state.ts'

const now = new Date('2026-11-21T10:00:00.000Z')
const machineIn = (state: MachineState) => ({ uuid: '4c4c4544-0000-1000-8000-000000000001', state, stateChangedAt: '2026-11-21T09:00:00.000Z', other: 'kept' })

const LEGAL: [MachineState, MachineState][] = [
  ['booting', 'discovered'],
  ['discovered', 'scheduled'],
  ['scheduled', 'scheduled'], // install denied: recorded, state unchanged
  ['scheduled', 'installing'], // install granted
  ['scheduled', 'discovered'],
  ['installing', 'installed'],
  ['installing', 'install_failed'],
  ['installed', 'discovered'],
  ['installed', 'scheduled'], // re-provision: the same role, installed again
  ['install_failed', 'scheduled'],
  ['install_failed', 'discovered'],
]

t.test('the table holds exactly the documented legal transitions', async (t) => {
  const table = MACHINE_STATES.flatMap((from) => LEGAL_TRANSITIONS[from].map((to) => [from, to]))
  t.same(table.sort(), [...LEGAL].sort())
})

t.test('every legal transition moves the machine and yields an event', async (t) => {
  for (const [from, to] of LEGAL) {
    const { machine, event } = transition(machineIn(from), to, `because ${from}`, now)
    t.equal(machine.state, to, `${from} -> ${to}`)
    t.equal(machine.stateChangedAt, now.toISOString())
    t.equal(machine.other, 'kept', 'other fields are kept')
    t.same(event, { uuid: machineIn(from).uuid, fromState: from, toState: to, reason: `because ${from}`, at: now.toISOString() })
  }
})

t.test('every other pair is refused with 409 INVALID_TRANSITION, and the input is not changed', async (t) => {
  let refused = 0
  for (const from of MACHINE_STATES) {
    for (const to of MACHINE_STATES) {
      if (LEGAL.some(([a, b]) => a === from && b === to)) continue
      const machine = machineIn(from)
      try {
        transition(machine, to, 'nope', now)
        t.fail(`${from} -> ${to} should be refused`)
      } catch (error) {
        t.ok(error instanceof SlipwayError)
        const failure = error as SlipwayError
        t.equal(failure.code, 'INVALID_TRANSITION', `${from} -> ${to}`)
        t.equal(failure.kind, 'conflict')
        t.same(failure.details?.allowed, LEGAL_TRANSITIONS[from])
      }
      t.equal(machine.state, from)
      refused++
    }
  }
  t.equal(refused, MACHINE_STATES.length ** 2 - LEGAL.length)
})
