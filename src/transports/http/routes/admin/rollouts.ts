import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { PHASES, RolloutDocument } from '../../../../core/lifecycle/rollout-plan.ts'
import { RUN_STATES, type RolloutRun, type RolloutService, type RolloutView } from '../../../../core/lifecycle/rollout-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const RunSummary = Type.Object({
  id: Type.String(),
  clusters: Type.Array(Type.String(), { description: "The clusters of the run's machines." }),
  state: Type.Enum([...RUN_STATES]),
  failures: Type.Integer(),
  spec: Type.Unknown({ description: 'The run as created, with defaults filled in.' }),
  created_at: Type.String(),
  updated_at: Type.String(),
  finished_at: Nullable(Type.String()),
})
const RunDetail = Type.Object({
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
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) })

const toSummary = (run: RolloutRun) => ({
  id: run.id,
  clusters: run.clusters,
  state: run.state,
  failures: run.failures,
  spec: run.spec,
  created_at: run.createdAt,
  updated_at: run.updatedAt,
  finished_at: run.finishedAt,
})
const toDetail = (view: RolloutView) => ({
  ...toSummary(view),
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

/** Rolling-update runs: create, watch, pause, resume, cancel. */
export const rolloutRoutes: FastifyPluginAsyncTypebox<{ rollouts: RolloutService }> = async (app, { rollouts }) => {
  const tags = ['lifecycle']
  app.post(
    '/rollouts',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: "Start a rolling update of the outdated machines of a cluster or label selector (409 NOTHING_TO_ROLL, ROLLOUT_ACTIVE)",
        body: Type.Unknown({ description: 'See RolloutDocument: cluster, selector, max_parallel, strategy, window, drain, ready_timeout_seconds, max_failures, ssh, kubernetes_api_server.' }),
        response: { 201: RunDetail, ...adminErrors },
      },
    },
    async (request, reply) => reply.status(201).send(toDetail(await rollouts.create(request.body))),
  )
  app.get('/rollouts', { config: { access: read() }, schema: { tags, summary: 'Every run, oldest first', response: { 200: Type.Array(RunSummary), ...adminErrors } } }, async () =>
    (await rollouts.list()).map(toSummary),
  )
  app.get('/rollouts/:id', { config: { access: read() }, schema: { tags, summary: 'A run with each machine\'s phase and the latest events', params: IdParams, response: { 200: RunDetail, ...adminErrors } } }, async (request) =>
    toDetail(await rollouts.get(request.params.id)),
  )
  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post(
      `/rollouts/:id/${action}`,
      { config: { access: operate() }, schema: { tags, summary: `${action[0]!.toUpperCase()}${action.slice(1)} a run (machines in flight always finish)`, params: IdParams, response: { 200: RunDetail, ...adminErrors } } },
      async (request) => toDetail(await rollouts[action](request.params.id)),
    )
  }
}
// The document the POST body follows, for readers of this file.
export { RolloutDocument }
