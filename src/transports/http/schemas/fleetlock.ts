import Type from 'typebox'

/** FleetLock's error body `{kind, value}`, with a small, fixed set of kinds. */
export const FLEETLOCK_ERROR_KINDS = [
  'missing_fleet_lock_header',
  'invalid_client_params',
  'invalid_machine_credential',
  'failed_lock_semaphore_full',
  // A control-plane member: etcd cannot lose it now, has not got it back yet, or cannot be asked.
  'failed_lock_etcd_quorum',
  'failed_unlock_etcd_member_not_ready',
  'failed_etcd_unreachable',
  'internal_error',
] as const
export type FleetLockErrorKind = (typeof FLEETLOCK_ERROR_KINDS)[number]

export const FleetLockError = Type.Object({ kind: Type.Enum([...FLEETLOCK_ERROR_KINDS]), value: Type.String() })
export const ClientParams = Type.Object({ client_params: Type.Object({ id: Type.String(), group: Type.String() }) })
export const CredentialParams = Type.Object({ credential: Type.String({ maxLength: 128 }) })
