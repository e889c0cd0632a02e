/**
 * Per-machine credentials for the machine-facing lifecycle endpoints (FleetLock, /lifecycle/*): a
 * machine presents its own, and the engine acts only on that machine's behalf, so one machine cannot
 * take, release or report for another. The store derives them from its secret key.
 */
export interface MachineCredentials {
  /** The credential of a machine (stable: the same machine always gets the same one). */
  issue(machineUuid: string): string
  /** The machine a credential belongs to, or undefined for anything forged or malformed. */
  verify(credential: string): string | undefined
}
