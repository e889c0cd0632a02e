import Type from 'typebox'
import { DRIFT_STATES, type DriftRecord } from '../../../core/lifecycle/drift.ts'
import { REFUSAL_REASONS, type RollingRefusal } from '../../../core/lifecycle/rolling-refusals.ts'
import { Nullable } from '../../../lib/nullable.ts'

export const DriftResponse = Type.Object({
  uuid: Type.String(),
  state: Type.Enum([...DRIFT_STATES]),
  reported_sha256: Type.String(),
  expected_sha256: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  reported_at: Type.String(),
  state_changed_at: Type.String(),
  checked_at: Type.String(),
})
export const toDriftResponse = (record: DriftRecord) => ({
  uuid: record.uuid,
  state: record.state,
  reported_sha256: record.reportedSha256,
  expected_sha256: record.expectedSha256,
  reason: record.reason,
  reported_at: record.reportedAt,
  state_changed_at: record.stateChangedAt,
  checked_at: record.checkedAt,
})

export const RollingSlotResponse = Type.Object({
  uuid: Type.String(),
  mode: Type.Enum(['engine', 'machine'], { description: 'machine: the machine rolls itself (label slipway.io/rolling=machine); engine: rollout runs do.' }),
  drain: Type.Enum(['required', 'skip'], { description: 'required: the agent drains its node before restarting and does not restart when it cannot; skip: label slipway.io/rolling-drain=skip.' }),
  group: Type.String(),
  holding: Type.Boolean(),
  slots: Type.Integer(),
  holders: Type.Integer(),
})

export const RollingRefusalResponse = Type.Object({
  uuid: Type.String(),
  reason: Type.Enum([...REFUSAL_REASONS]),
  message: Type.String(),
  at: Type.String({ description: 'When the agent reported it (ISO time).' }),
})

export const toRefusalResponse = (refusal: RollingRefusal) => ({ uuid: refusal.uuid, reason: refusal.reason, message: refusal.message, at: refusal.at })
