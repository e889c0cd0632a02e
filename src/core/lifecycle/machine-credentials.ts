import { timingSafeEqual } from 'node:crypto'

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

/** What signs credentials: an HMAC under the engine's secret key (storage/secret-box.ts). */
export interface CredentialSigner {
  tag(purpose: string, text: string): string
}

const PURPOSE = 'machine-credential:v1'
// Generation 0 keeps the form engines issued before generations existed (`<uuid>.<tag>`), so that
// machines installed by them keep their credential until it is rotated or revoked.
const FORMAT = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(?:g([1-9][0-9]{0,8})\.)?([A-Za-z0-9_-]{43})$/
const signed = (uuid: string, generation: number) => (generation === 0 ? uuid : `${uuid}:${generation}`)

/**
 * `<uuid>.g<generation>.<HMAC-SHA256(key, uuid:generation)>`: the uuid says who, the tag proves the
 * engine issued it, and the machine's stored credential state says whether its generation still
 * counts (undefined: the machine is not, or no longer, in the inventory, and nothing of it counts).
 */
export function signedMachineCredentials(signer: CredentialSigner, stateOf: (uuid: string) => Promise<CredentialState | undefined>, clock: () => Date = () => new Date()): MachineCredentials {
  return {
    issue: (machineUuid, generation) => `${machineUuid}.${generation === 0 ? '' : `g${generation}.`}${signer.tag(PURPOSE, signed(machineUuid, generation))}`,
    verify: async (credential) => {
      const match = FORMAT.exec(credential)
      if (!match) return undefined
      const [, uuid, generationText, tag] = match
      const generation = generationText === undefined ? 0 : Number(generationText)
      const expected = Buffer.from(signer.tag(PURPOSE, signed(uuid!, generation)))
      const presented = Buffer.from(tag!)
      if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return undefined
      const state = await stateOf(uuid!)
      return state && generationCounts(state, generation, clock()) ? uuid : undefined
    },
  }
}
