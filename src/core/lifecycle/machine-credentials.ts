/**
 * Per-machine credentials for the machine-facing lifecycle endpoints (FleetLock, /lifecycle/*) and
 * for fetching the machine's own next config: a machine presents its own, and the engine acts only
 * on that machine's behalf, so one machine cannot take, release or report for another.
 *
 * A credential names its machine and a generation, and is signed with the engine's key: nothing is
 * stored but each machine's current generation. Raising the generation revokes the credential:
 * at once (`revoke`, and every new install, which starts a new generation), or after a grace period
 * (`rotate`: the machine fetches its next config, which carries the new credential, with the old one).
 */
export interface MachineCredentials {
  /** The credential of a machine at a generation (the same inputs always give the same credential). */
  issue(machineUuid: string, generation: number): string
  /** The machine a credential belongs to while its generation counts; undefined for anything forged, malformed or revoked. */
  verify(credential: string): Promise<string | undefined>
}

/** Where a machine's credential stands. */
export interface CredentialState {
  generation: number
  /** The generation before the last rotation, which still counts until `previousValidUntil`. */
  previousGeneration: number | null
  previousValidUntil: string | null
}

export const FIRST_CREDENTIAL: CredentialState = { generation: 0, previousGeneration: null, previousValidUntil: null }

/** Whether a presented generation counts now: the current one, or the previous one within its grace. */
export function generationCounts(state: CredentialState, generation: number, now: Date): boolean {
  if (generation === state.generation) return true
  return generation === state.previousGeneration && state.previousValidUntil !== null && now.getTime() < Date.parse(state.previousValidUntil)
}

/** The next generation: the current credential keeps counting for `graceSeconds` (0: revoked at once). */
export function nextGeneration(state: CredentialState, now: Date, graceSeconds: number): CredentialState {
  if (graceSeconds <= 0) return { generation: state.generation + 1, previousGeneration: null, previousValidUntil: null }
  return { generation: state.generation + 1, previousGeneration: state.generation, previousValidUntil: new Date(now.getTime() + graceSeconds * 1000).toISOString() }
}
