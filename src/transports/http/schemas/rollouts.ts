import Type from 'typebox'
import { PHASES } from '../../../core/lifecycle/rollout-plan.ts'
import { RUN_STATES, type RolloutRun, type RolloutView } from '../../../core/lifecycle/rollout-service.ts'
import { Nullable } from '../../../lib/nullable.ts'

export const RunSummary = Type.Object({
  id: Type.String(),
  clusters: Type.Array(Type.String(), { description: "The clusters of the run's machines." }),
  state: Type.Enum([...RUN_STATES]),
  failures: Type.Integer(),
  spec: Type.Unknown({ description: 'The run as created, with defaults filled in.' }),
  created_at: Type.String(),
  updated_at: Type.String(),
  finished_at: Nullable(Type.String()),
})
export const RunDetail = Type.Object({
  ...RunSummary.properties,
  machines: Type.Array(
    Type.Object({
      uuid: Type.String(),
      cluster: Type.String(),
      hostname: Type.String(),
      role: Type.String(),
      phase: Type.Enum([...PHASES]),
      error: Nullable(Type.String()),
      started_at: Nullable(Type.String()),
      finished_at: Nullable(Type.String()),
      phase_changed_at: Type.String(),
    }),
  ),
  events: Type.Array(Type.Object({ at: Type.String(), uuid: Nullable(Type.String()), message: Type.String() })),
})
export const RunIdParams = Type.Object({ id: Type.String({ maxLength: 64 }) })

export const toRunSummary = (run: RolloutRun) => ({
  id: run.id,
  clusters: run.clusters,
  state: run.state,
  failures: run.failures,
  spec: run.spec,
  created_at: run.createdAt,
  updated_at: run.updatedAt,
  finished_at: run.finishedAt,
})
export const toRunDetail = (view: RolloutView) => ({
  ...toRunSummary(view),
  machines: view.machines.map((machine) => ({
    uuid: machine.uuid,
    cluster: machine.cluster,
    hostname: machine.hostname,
    role: machine.role,
    phase: machine.phase,
    error: machine.error,
    started_at: machine.startedAt,
    finished_at: machine.finishedAt,
    phase_changed_at: machine.phaseChangedAt,
  })),
  events: view.events,
})
