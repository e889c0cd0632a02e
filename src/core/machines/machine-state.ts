import { conflict } from '../errors.ts'

/**
 * The life of a machine, after Enjoliver (booting -> discovery -> os_installation_granted |
 * os_installation_denied -> installation_succeed | installation_failed), with two deliberate changes:
 *
 * - An install denial is not a state. A denied machine is still waiting for its turn exactly like
 *   before it asked, so it stays `scheduled`; the denial is recorded as a `scheduled -> scheduled`
 *   event whose reason says why (the only self-transition allowed). A grant is `scheduled -> installing`.
 * - Failed installs and installed machines can be sent back by an operator (`-> discovered`, or
 *   `install_failed -> scheduled` to retry), which Enjoliver could only do by editing its database.
 * - A re-provision (core/power/machine-flows.ts) takes an installed machine back to `scheduled`: it
 *   keeps its role and installs it again from its next network boot.
 */
export const MACHINE_STATES = ['booting', 'discovered', 'scheduled', 'installing', 'installed', 'install_failed'] as const
export type MachineState = (typeof MACHINE_STATES)[number]

/** Every legal move; anything else is INVALID_TRANSITION. */
export const LEGAL_TRANSITIONS: Readonly<Record<MachineState, readonly MachineState[]>> = {
  booting: ['discovered'],
  discovered: ['scheduled'],
  scheduled: ['scheduled', 'installing', 'discovered'],
  installing: ['installed', 'install_failed'],
  installed: ['discovered', 'scheduled'],
  install_failed: ['scheduled', 'discovered'],
}

export interface MachineEvent {
  uuid: string
  /** null only for the event that created the machine. */
  fromState: MachineState | null
  toState: MachineState
  reason: string
  /** ISO 8601 UTC. */
  at: string
}

export const isMachineState = (text: string): text is MachineState => (MACHINE_STATES as readonly string[]).includes(text)

export const canTransition = (from: MachineState, to: MachineState): boolean => LEGAL_TRANSITIONS[from].includes(to)

/**
 * Moves a machine to `to`, or refuses with 409 INVALID_TRANSITION. Pure: returns the changed machine
 * and the event to record; storing both is the caller's job.
 */
export function transition<M extends { uuid: string; state: MachineState; stateChangedAt: string }>(
  machine: M,
  to: MachineState,
  reason: string,
  now: Date,
): { machine: M; event: MachineEvent } {
  if (!canTransition(machine.state, to)) {
    const allowed = LEGAL_TRANSITIONS[machine.state]
    throw conflict(
      'INVALID_TRANSITION',
      `machine ${machine.uuid} is ${machine.state} and cannot become ${to}; from ${machine.state} it can become ${allowed.length ? allowed.join(', ') : 'nothing'}`,
      { uuid: machine.uuid, from: machine.state, to, allowed },
    )
  }
  const at = now.toISOString()
  return {
    machine: { ...machine, state: to, stateChangedAt: at },
    event: { uuid: machine.uuid, fromState: machine.state, toState: to, reason, at },
  }
}
