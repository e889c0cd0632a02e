import Type from 'typebox'

/** FleetLock's error body `{kind, value}`, with a small, fixed set of kinds. */
export const FLEETLOCK_ERROR_KINDS = [
  'missing_fleet_lock_header',
  'invalid_client_params',
  'invalid_machine_credential',
  'failed_lock_semaphore_full',
  'internal_error',
] as const
export type FleetLockErrorKind = (typeof FLEETLOCK_ERROR_KINDS)[number]

export const FleetLockError = Type.Object({ kind: Type.Enum([...FLEETLOCK_ERROR_KINDS]), value: Type.String() })
export const ClientParams = Type.Object({ client_params: Type.Object({ id: Type.String(), group: Type.String() }) })
export const CredentialParams = Type.Object({ credential: Type.String({ maxLength: 128 }) })
